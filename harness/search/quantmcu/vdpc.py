"""VDPC, value-driven patch classification (QuantMCU, arXiv 2401.13714, Sec. III-A).

A patch is an *outlier* patch when its branch's feature maps hold values far from 0 on the calibration images;
its whole branch then stays at the base (8-bit) precision. The paper leaves the test open; tinyhil's rule:

* ``rule="sigma"`` (default): a value is an outlier when ``|x| > phi * sigma_t``, with ``sigma_t`` the standard
  deviation of the real values of feature map ``t`` over the whole map and every calibration image;
* ``rule="percentile"``: when ``|x|`` exceeds the ``percentile``-th percentile of ``|x|`` over the whole map
  (``phi`` is then unused);
* a patch is an outlier when, on more than ``min_fraction`` of the calibration images (default 0.5: on most of
  them), one of the checked feature maps of its window holds an outlier value. ``maps`` picks which:
  ``"output"`` (default: the patch's own part of the stage's output feature map, the map the branch produces),
  ``"branch"`` (every feature map VDQS may lower, and the output) or ``"first"`` (the first layer's output).

Larger ``phi`` marks fewer patches as outliers (more branches are searched, more BitOPs saved, more risk).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.errors import ConfigError
from harness.search.quantmcu.branches import Branches
from harness.search.quantmcu.stats import CalibStats

RULES = ("sigma", "percentile")
MAPS = ("output", "branch", "first")


@dataclass(frozen=True)
class Vdpc:
    """Per patch: outlier or not, and the score behind it (the fraction of images with an outlier value)."""

    outlier: tuple[bool, ...]
    fraction: tuple[float, ...]  # per patch: fraction of calibration images with an outlier value
    peak_ratio: tuple[float, ...]  # per patch: largest |x| / threshold seen (> 1 means an outlier value)
    thresholds: dict[str, float]  # per checked tensor: the |x| threshold in real units
    params: dict

    @property
    def n_outliers(self) -> int:
        return int(sum(self.outlier))


def classify(
    br: Branches,
    stats: CalibStats,
    phi: float = 3.0,
    rule: str = "sigma",
    percentile: float = 99.9,
    maps: str = "output",
    min_fraction: float = 0.5,
) -> Vdpc:
    """Classify every patch of ``stats.pm`` (see the module docstring)."""
    if rule not in RULES:
        raise ConfigError(f"VDPC rule must be one of {RULES}, got {rule!r}")
    if maps not in MAPS:
        raise ConfigError(f"VDPC maps must be one of {MAPS}, got {maps!r}")
    if rule == "sigma" and not phi > 0:
        raise ConfigError(f"phi must be > 0, got {phi}")
    if not 0.0 < percentile < 100.0:
        raise ConfigError(f"percentile must be in (0, 100), got {percentile}")
    if not 0.0 <= min_fraction < 1.0:
        raise ConfigError(f"min_fraction must be in [0, 1), got {min_fraction}")
    out = br.pm.stage_output
    if maps == "output":
        tensors = [out]
    elif maps == "first":
        tensors = [br.pm.model.layers[0].output]
    else:
        tensors = [t for fm in br.maps for t in fm.tensors] + [out]
    thresholds = {}
    for t in tensors:
        r = stats.real(t, stats.full[t])
        thresholds[t] = (
            float(phi) * float(r.std()) if rule == "sigma" else float(np.percentile(np.abs(r), percentile))
        )
    n = stats.n_images
    outlier, fraction, ratio = [], [], []
    for p in range(br.num_patches):
        hit = np.zeros(n, dtype=bool)
        peak = 0.0
        for t in tensors:
            r = np.abs(stats.real(t, stats.windows[p][t])).reshape(n, -1)
            m = r.max(axis=1)
            thr = max(thresholds[t], 1e-12)
            hit |= m > thr
            peak = max(peak, float(m.max()) / thr)
        f = float(hit.mean())
        fraction.append(f)
        ratio.append(peak)
        outlier.append(f > min_fraction)
    params = {
        "phi": float(phi),
        "rule": rule,
        "percentile": float(percentile),
        "maps": maps,
        "min_fraction": float(min_fraction),
    }
    return Vdpc(tuple(outlier), tuple(fraction), tuple(ratio), thresholds, params)
