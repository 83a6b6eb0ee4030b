"""VDPC, value-driven patch classification (QuantMCU, arXiv 2401.13714, Sec. III-A).

A patch is an *outlier* patch when its branch's feature maps hold values far from the usual ones on the
calibration images; its whole branch then stays at the base (8-bit) precision. The paper calls values "around 0"
non-outliers and values "far away from 0" outliers, for feature maps centred on 0. Real feature maps are not
centred per channel (a normalised image's background, a BN shift, a ReLU's positive half), and an offset shared
by every patch is not an outlier: the pooled rule this module used before (``|x| > phi * sigma`` with one sigma
over all channels) flagged a uniform non-zero background everywhere it showed and left the object-bearing
patches to be lowered. tinyhil's rule therefore measures, per channel ``c`` of a feature map ``t``, the
deviation from that channel's own centre:

* ``center="mean"`` (default): ``d = |x - mu_c|`` with ``mu_c`` the mean of channel ``c`` over the whole map and
  every calibration image; ``center="zero"``: ``d = |x|`` (the paper's literal reading, per channel);
* ``rule="sigma"`` (default): a value is an outlier when ``d > phi * sigma_c``, ``sigma_c`` the RMS of ``d``
  over the channel (its standard deviation for ``center="mean"``);
* ``rule="percentile"``: when ``d`` exceeds the ``percentile``-th percentile of ``d`` over the channel (``phi`` is
  then unused);
* a patch is an outlier when, on more than ``min_fraction`` of the calibration images (default: on most of them),
  one of the checked feature maps of its window holds an outlier value. ``maps`` picks which: ``"output"`` (the
  patch's own part of the stage's output feature map, the map the branch produces), ``"input"`` (the branch's
  input: the patch's input window), ``"branch"`` (every feature map VDQS may lower, and the output) or
  ``"first"`` (the first layer's output).

Larger ``phi`` marks fewer patches as outliers (more branches are searched, more BitOPs saved, more risk).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.errors import ConfigError
from harness.search.quantmcu.branches import Branches
from harness.search.quantmcu.stats import CalibStats

RULES = ("sigma", "percentile")
MAPS = ("output", "input", "branch", "first")
CENTERS = ("mean", "zero")
_TINY = 1e-12  # a constant channel has no spread: any deviation from it is an outlier, none is not


@dataclass(frozen=True)
class Vdpc:
    """Per patch: outlier or not, and the score behind it (the fraction of images with an outlier value)."""

    outlier: tuple[bool, ...]
    fraction: tuple[float, ...]  # per patch: fraction of calibration images with an outlier value
    peak_ratio: tuple[float, ...]  # per patch: largest deviation / threshold seen (> 1: an outlier value)
    thresholds: dict[str, tuple[float, ...]]  # per checked tensor and channel: the deviation threshold
    centers: dict[str, tuple[float, ...]]  # per checked tensor and channel: the centre deviations are from
    params: dict

    @property
    def n_outliers(self) -> int:
        return int(sum(self.outlier))


def channel_thresholds(
    real: np.ndarray, rule: str, phi: float, percentile: float, center: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per channel (last axis) of real values ``real``: ``(centre, threshold)`` of the deviation rule."""
    flat = real.reshape(-1, real.shape[-1])
    mu = flat.mean(axis=0) if center == "mean" else np.zeros(flat.shape[1])
    dev = np.abs(flat - mu)
    if rule == "sigma":
        thr = float(phi) * np.sqrt((dev**2).mean(axis=0))
    else:
        thr = np.percentile(dev, percentile, axis=0)
    return mu, thr


def deviation_ratio(real: np.ndarray, mu: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """Per image (first axis): the largest ``|x - mu_c| / thr_c`` over the window's positions and channels."""
    n, c = real.shape[0], real.shape[-1]
    dev = np.abs(real.reshape(n, -1, c) - mu)
    ratio = np.where(thr > _TINY, dev / np.maximum(thr, _TINY), np.where(dev > _TINY, np.inf, 0.0))
    return ratio.reshape(n, -1).max(axis=1) if ratio.size else np.zeros(n)


def checked_tensors(br: Branches, maps: str) -> list[str]:
    """The tensors VDPC looks at under ``maps`` (see the module docstring)."""
    pm = br.pm
    if maps == "output":
        return [pm.stage_output]
    if maps == "input":
        return [pm.model.input]
    if maps == "first":
        return [pm.model.layers[0].output]
    return [t for fm in br.maps for t in fm.tensors] + [pm.stage_output]


def classify(
    br: Branches,
    stats: CalibStats,
    phi: float = 3.0,
    rule: str = "sigma",
    percentile: float = 99.9,
    maps: str = "output",
    min_fraction: float = 0.5,
    center: str = "mean",
) -> Vdpc:
    """Classify every patch of ``stats.pm`` (see the module docstring)."""
    if rule not in RULES:
        raise ConfigError(f"VDPC rule must be one of {RULES}, got {rule!r}")
    if maps not in MAPS:
        raise ConfigError(f"VDPC maps must be one of {MAPS}, got {maps!r}")
    if center not in CENTERS:
        raise ConfigError(f"VDPC center must be one of {CENTERS}, got {center!r}")
    if rule == "sigma" and not phi > 0:
        raise ConfigError(f"phi must be > 0, got {phi}")
    if not 0.0 < percentile < 100.0:
        raise ConfigError(f"percentile must be in (0, 100), got {percentile}")
    if not 0.0 <= min_fraction < 1.0:
        raise ConfigError(f"min_fraction must be in [0, 1), got {min_fraction}")
    tensors = checked_tensors(br, maps)
    thresholds, centers = {}, {}
    for t in tensors:
        mu, thr = channel_thresholds(stats.real(t, stats.full[t]), rule, phi, percentile, center)
        centers[t], thresholds[t] = mu, thr
    n = stats.n_images
    outlier, fraction, ratio = [], [], []
    for p in range(br.num_patches):
        peak = np.zeros(n)
        for t in tensors:
            r = stats.real(t, stats.windows[p][t])
            peak = np.maximum(peak, deviation_ratio(r, centers[t], thresholds[t]))
        f = float((peak > 1.0).mean())
        fraction.append(f)
        ratio.append(float(peak.max()))
        outlier.append(f > min_fraction)
    params = {
        "phi": float(phi),
        "rule": rule,
        "percentile": float(percentile),
        "maps": maps,
        "min_fraction": float(min_fraction),
        "center": center,
    }
    as_tuple = {t: tuple(float(v) for v in a) for t, a in thresholds.items()}
    return Vdpc(
        tuple(outlier),
        tuple(fraction),
        tuple(ratio),
        as_tuple,
        {t: tuple(float(v) for v in a) for t, a in centers.items()},
        params,
    )
