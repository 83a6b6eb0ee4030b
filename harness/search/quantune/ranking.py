"""Turning per-layer noise metrics into a ranked sensitivity list, and comparing two rankings.

Inputs are one row per conv/linear layer (the names a PrecisionConfig uses) with its fused-unit metrics:
``dsqnr`` (dB of SQNR the unit conv+BN+ReLU loses between its input and its output), ``mse`` (MSE of the unit's
output) and ``w_sqnr`` (SQNR of its quantized weights). The paper does not publish how it combines them, so the
combination is a named, configurable rule:

* ``"dsqnr"`` (default): the larger dSQNR, the more sensitive; dSQNR values within ``tie_db`` of each other
  (binned to ``tie_db``-wide steps) tie, and ties go to the larger MSE.
* ``"zscore"``: ``score = w_dsqnr * z(dsqnr) + w_mse * z(log10 mse) + w_wsqnr * z(-w_sqnr)`` with z-scores
  over the ranked layers (MSE spans decades between layers, hence the log); weights are exposed, so
  ``{dsqnr: 0, mse: 0, wsqnr: 1}`` ranks by weight SQNR alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from harness.errors import ConfigError

RULES = ("dsqnr", "zscore")
DEFAULT_WEIGHTS = {"dsqnr": 1.0, "mse": 1.0, "wsqnr": 1.0}


@dataclass(frozen=True)
class RankRule:
    """How per-layer metrics combine into one sensitivity order (see the module docstring)."""

    rule: str = "dsqnr"
    tie_db: float = 0.1
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ConfigError(f"unknown sensitivity rule {self.rule!r}; choose one of {RULES}")
        if not (self.tie_db >= 0 and math.isfinite(self.tie_db)):
            raise ConfigError(f"tie_db must be a finite number >= 0, got {self.tie_db}")
        unknown = sorted(set(self.weights) - set(DEFAULT_WEIGHTS))
        if unknown:
            raise ConfigError(f"unknown sensitivity weight(s) {unknown}; known: {sorted(DEFAULT_WEIGHTS)}")
        w = {**DEFAULT_WEIGHTS, **{k: float(v) for k, v in self.weights.items()}}
        if self.rule == "zscore" and not any(w.values()):
            raise ConfigError("the zscore rule needs at least one non-zero weight")
        object.__setattr__(self, "weights", w)


def zscores(values: Sequence[float]) -> np.ndarray:
    """``(v - mean) / std``; all zeros when the values do not vary."""
    v = np.asarray(values, dtype=float)
    sd = v.std()
    return np.zeros_like(v) if sd == 0 or not np.isfinite(sd) else (v - v.mean()) / sd


def sensitivity_scores(rows: Sequence[Mapping[str, float]], rule: RankRule) -> list[float]:
    """One score per row, larger = more sensitive (for ``"dsqnr"``: the dSQNR itself)."""
    if rule.rule == "dsqnr":
        return [float(r["dsqnr"]) for r in rows]
    w = rule.weights
    log_mse = [math.log10(max(float(r["mse"]), 1e-30)) for r in rows]
    s = (
        w["dsqnr"] * zscores([r["dsqnr"] for r in rows])
        + w["mse"] * zscores(log_mse)
        + w["wsqnr"] * zscores([-float(r["w_sqnr"]) for r in rows])
    )
    return [float(x) for x in s]


def rank_layers(rows: Sequence[Mapping[str, float]], rule: RankRule | None = None) -> list[int]:
    """Indices of ``rows``, most sensitive first (ties keep execution order, for determinism)."""
    rule = rule or RankRule()
    scores = sensitivity_scores(rows, rule)
    if rule.rule == "dsqnr":
        step = rule.tie_db
        binned = [round(s / step) if step > 0 else s for s in scores]
        key = [(-b, -float(r["mse"]), i) for i, (b, r) in enumerate(zip(binned, rows))]
    else:
        key = [(-s, i) for i, s in enumerate(scores)]
    return [k[-1] for k in sorted(key)]


def spearman(order_a: Sequence[str], order_b: Sequence[str]) -> float:
    """Spearman rank correlation of two orderings of the same names (1: identical, -1: reversed)."""
    if sorted(order_a) != sorted(order_b) or len(set(order_a)) != len(order_a):
        raise ConfigError("Spearman correlation needs two orderings of the same, distinct layer names")
    n = len(order_a)
    if n < 2:
        return math.nan
    pos_b = {name: i for i, name in enumerate(order_b)}
    d2 = sum((i - pos_b[name]) ** 2 for i, name in enumerate(order_a))
    return 1.0 - 6.0 * d2 / (n * (n * n - 1))


def topk_overlap(order_a: Sequence[str], order_b: Sequence[str], k: int) -> float:
    """Fraction of the first ``k`` names the two orderings share (1: the same top-k set)."""
    if k <= 0:
        raise ConfigError(f"top-k overlap needs k >= 1, got {k}")
    k = min(k, len(order_a), len(order_b))
    return len(set(order_a[:k]) & set(order_b[:k])) / k if k else math.nan
