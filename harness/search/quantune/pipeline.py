"""QuantuneV2 end to end for one model: parameters, the probe precision, the analysis, saved rankings, and the
``quantune`` starting point for :func:`harness.search.make_start`."""

from __future__ import annotations

import csv
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from harness.config.schema import method_defaults
from harness.data.base import to_model_input
from harness.errors import ConfigError
from harness.graph.spec import INPUT, LayerSpec
from harness.precision.config import ALLOWED_BITS, PrecisionConfig
from harness.results.io import write_table
from harness.search.quantune.analyze import Sensitivity, analyze
from harness.search.quantune.assign import BitPair, bit_pair, topk_config
from harness.search.quantune.probe import build_probe
from harness.search.quantune.ranking import RankRule

#: the method's options and defaults, from the one place they live (harness.config.schema.QuantuneMethod)
DEFAULTS: dict[str, Any] = {k: v for k, v in method_defaults("quantune").items() if k != "name"}


@dataclass(frozen=True)
class QuantuneParams:
    """The ``method=quantune`` options, validated (:class:`~harness.config.schema.QuantuneMethod` documents
    each and holds the defaults; build with :meth:`from_mapping`)."""

    k: int
    high: BitPair
    low: BitPair
    input_bits: int | None
    probe: BitPair
    rule: RankRule
    sqnr_cap_db: float
    n_calib: int
    chunk_size: int | None  # None: the whole calibration set at once (two forward calls)
    ranking: str | None

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> QuantuneParams:
        """Validate method options (unknown keys, e.g. typos in an override, are a ConfigError)."""
        p = dict(params)
        p.pop("name", None)
        unknown = sorted(set(p) - set(DEFAULTS))
        if unknown:
            raise ConfigError(f"method 'quantune' does not take {unknown}; it takes {sorted(DEFAULTS)}")
        p = {**DEFAULTS, **p}
        low = bit_pair(p["low"], "method.low")
        ib = p["input_bits"]
        if ib is not None and ib not in ALLOWED_BITS:
            raise ConfigError(f"method.input_bits must be one of {ALLOWED_BITS} or null, got {ib!r}")
        for key in ("n_calib", "chunk_size"):
            if key == "chunk_size" and p[key] is None:
                continue
            if isinstance(p[key], bool) or not isinstance(p[key], int) or p[key] <= 0:
                raise ConfigError(f"method.{key} must be a positive integer, got {p[key]!r}")
        if isinstance(p["k"], bool) or not isinstance(p["k"], int) or p["k"] < 0:
            raise ConfigError(f"method.k must be an integer >= 0, got {p['k']!r}")
        cap = float(p["sqnr_cap_db"])
        if not cap > 0:
            raise ConfigError(f"method.sqnr_cap_db must be > 0, got {cap}")
        return cls(
            k=p["k"],
            high=bit_pair(p["high"], "method.high"),
            low=low,
            input_bits=ib,
            probe=low if p["probe"] is None else bit_pair(p["probe"], "method.probe"),
            rule=RankRule(str(p["rule"]), float(p["tie_db"]), dict(p["weights"] or {})),
            sqnr_cap_db=cap,
            n_calib=p["n_calib"],
            chunk_size=p["chunk_size"],
            ranking=p["ranking"],
        )


def probe_config(layers: Sequence[LayerSpec], probe: BitPair, input_bits: int | None = 8) -> PrecisionConfig:
    """The quantized pass's precision: every conv/linear at ``probe``, the image read at ``input_bits``."""
    a, w = probe
    cfg = {
        s.name: (input_bits if (INPUT in s.inputs and input_bits is not None) else a, w)
        for s in layers
        if s.has_weights
    }
    return PrecisionConfig(cfg, meta={"method": f"quantune-probe-a{a}w{w}"})


def sensitivity(
    model: nn.Module, layers: Sequence[LayerSpec], calib: torch.Tensor, params: QuantuneParams
) -> Sensitivity:
    """Rank ``model``'s layers: build the probe pair (:mod:`.probe`; activation ranges calibrated on ``calib``),
    then the two passes over ``calib``. Building the pair is timed apart from the passes (``meta['quantize_s']``)."""

    t0, c0 = time.perf_counter(), time.process_time()
    probe = build_probe(
        model,
        probe_config(layers, params.probe, params.input_bits),
        calib,
        input_fixed=params.input_bits is not None,
    )
    t_q, c_q = time.perf_counter() - t0, time.process_time() - c0
    s = analyze(
        probe.float_model,
        probe.quant_model,
        calib,
        weight_of=lambda m: (
            m.weight
        ),  # the probe's quantized twin computes with parametrized (quantized) weights
        rule=params.rule,
        chunk_size=params.chunk_size,
        cap_db=params.sqnr_cap_db,
        ops=probe.ops,
        input_op=probe.input_op,
        group_ops=probe.group_ops,
        clone=False,  # the probe pair has no in-place ops (see probe.py)
    )
    s.meta.update({"quantize_s": t_q, "quantize_cpu_s": c_q, "probe": list(params.probe)})
    return s


RANKING_COLUMNS = (
    "rank",
    "layer",
    "kind",
    "score",
    "dsqnr",
    "unit_dsqnr",
    "group_dsqnr",
    "mse",
    "w_sqnr",
    "a_sqnr_in",
    "a_sqnr_out",
)


def save_ranking(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write the ranked layer rows as CSV (the file ``method.ranking`` reads back)."""

    df = pd.DataFrame(list(rows))
    cols = [c for c in RANKING_COLUMNS if c in df.columns] + [
        c for c in df.columns if c not in RANKING_COLUMNS
    ]
    return write_table(df[cols], path)


def load_ranking(path: str | Path) -> list[str]:
    """The layer names of a saved ranking, most sensitive first."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"sensitivity ranking {path} does not exist (write one with `tinyhil sensitivity`)")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "layer" not in rows[0] or "rank" not in rows[0]:
        raise ConfigError(f"{path} is not a sensitivity ranking (needs 'rank' and 'layer' columns)")
    try:
        rows.sort(key=lambda r: int(r["rank"]))
    except ValueError:
        raise ConfigError(f"{path}: the 'rank' column must hold integers") from None
    return [r["layer"] for r in rows]


def calibration_images(data: Any, input_shape: Sequence[int], n: int, seed: int = 0) -> torch.Tensor:
    """``n`` training images of a :class:`~harness.data.DataSplits` in the model's input format."""

    sub = data.train.subset(min(n, len(data.train)), seed)
    return to_model_input(sub.x, input_shape, data.mean, data.std)


def start(params: Mapping[str, Any], layers: list[LayerSpec], context: Mapping[str, Any]) -> PrecisionConfig:
    """The ``quantune`` starting point: the top-k assignment from a saved ranking (``ranking``) or from a fresh
    analysis of ``context['model']`` on ``context['calib']`` (a tensor) or ``context['data']`` (DataSplits)."""
    p = QuantuneParams.from_mapping(params)
    if p.ranking:
        ranking = load_ranking(p.ranking)
        source = str(p.ranking)
    else:
        model = context.get("model")
        if model is None:
            raise ConfigError(
                "method 'quantune' needs the float model (context 'model') to analyse, or "
                "method.ranking=<ranking.csv from `tinyhil sensitivity`>"
            )
        calib = context.get("calib")
        if calib is not None:
            calib = calib[: p.n_calib]  # the caller's calibration set may be larger than the analysis needs
        else:
            data = context.get("data")
            if data is None:
                raise ConfigError(
                    "method 'quantune' needs calibration images: context 'calib' (a tensor) or "
                    "'data' (DataSplits), or method.ranking=<ranking.csv>"
                )
            calib = calibration_images(data, model.input_shape, p.n_calib, int(context.get("seed", 0)))
        ranking = sensitivity(model, layers, calib, p).ranking
        source = "two-pass analysis"
    cfg = topk_config(ranking, layers, p.k, p.high, p.low, input_bits=p.input_bits)
    cfg.meta.update({"rule": p.rule.rule, "ranking_from": source})
    return cfg
