"""Quantization-noise metrics as pure functions: SQNR, MSE, and the streaming sums behind them.

``SQNR(x, q) = 10 log10(sum x^2 / sum (x - q)^2)`` (dB; higher is cleaner) and ``MSE(x, q) = mean((x - q)^2)``.
Both are ratios/means of sums, so they are accumulated as :class:`NoiseStats` (signal power, noise power,
element count) over calibration chunks and merged exactly; ``NoiseStats.of(x, q).sqnr == sqnr(x, q)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# An exactly reproduced tensor (the network input, a layer the probe leaves in float) has infinite SQNR;
# finite values keep dSQNR and z-scores usable. 100 dB is far above any 2/4/8-bit noise level (8-bit uniform
# quantization of a full-scale signal is about 50 dB) yet below float32 rounding noise (~150 dB).
SQNR_CAP_DB = 100.0


def _pair(x: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape != q.shape:
        raise ValueError(
            f"reference and quantized tensors differ in shape: {tuple(x.shape)} vs {tuple(q.shape)}"
        )
    return x.detach().double(), q.detach().double()


def sqnr_db(signal: float, noise: float, cap_db: float | None = SQNR_CAP_DB) -> float:
    """``10 log10(signal / noise)`` from the two power sums, limited to ``cap_db`` (None: no limit).

    Zero noise gives the cap (or +inf); a zero signal with noise gives -inf (capped at ``-cap_db``).
    """
    if signal < 0 or noise < 0:
        raise ValueError(f"power sums must be >= 0, got signal={signal}, noise={noise}")
    if noise == 0:
        v = math.inf if signal > 0 else (math.inf if cap_db is None else cap_db)
    elif signal == 0:
        v = -math.inf
    else:
        v = 10.0 * math.log10(signal / noise)
    if cap_db is not None:
        v = max(-cap_db, min(cap_db, v))
    return v


def sqnr(x: torch.Tensor, q: torch.Tensor, cap_db: float | None = None) -> float:
    """SQNR in dB of ``q`` as an approximation of ``x`` (uncapped by default)."""
    x, q = _pair(x, q)
    return sqnr_db(float((x * x).sum()), float(((x - q) ** 2).sum()), cap_db)


def mse(x: torch.Tensor, q: torch.Tensor) -> float:
    """Mean squared error between ``x`` and ``q``."""
    x, q = _pair(x, q)
    if x.numel() == 0:
        raise ValueError("MSE of an empty tensor")
    return float(((x - q) ** 2).mean())


def delta_sqnr(sqnr_in_db: float, sqnr_out_db: float) -> float:
    """dSQNR: how many dB of SQNR a layer loses between its input and its output (the noise it adds itself).

    Positive when the layer adds noise; near 0 for a layer that passes noise through (e.g. a ReLU).
    """
    return sqnr_in_db - sqnr_out_db


@dataclass
class NoiseStats:
    """Running sums for SQNR/MSE: ``signal = sum x^2``, ``noise = sum (x - q)^2``, ``count`` elements."""

    signal: float = 0.0
    noise: float = 0.0
    count: int = 0

    @classmethod
    def of(cls, x: torch.Tensor, q: torch.Tensor) -> NoiseStats:
        if x.shape != q.shape:
            raise ValueError(
                f"reference and quantized tensors differ in shape: {tuple(x.shape)} vs {tuple(q.shape)}"
            )
        x, q = x.detach().reshape(-1).float(), q.detach().reshape(-1).float()
        # float32 BLAS dot products: blocked accumulation keeps the relative error near 1e-6 (far below what
        # moves an SQNR in dB), and whole activation maps are never copied to float64
        d = x - q
        return cls(float(torch.dot(x, x)), float(torch.dot(d, d)), int(x.numel()))

    def add(self, x: torch.Tensor, q: torch.Tensor) -> NoiseStats:
        """Accumulate one more (reference, quantized) chunk in place; returns self."""
        o = NoiseStats.of(x, q)
        self.signal += o.signal
        self.noise += o.noise
        self.count += o.count
        return self

    def merged(self, other: NoiseStats) -> NoiseStats:
        return NoiseStats(self.signal + other.signal, self.noise + other.noise, self.count + other.count)

    def sqnr(self, cap_db: float | None = SQNR_CAP_DB) -> float:
        return sqnr_db(self.signal, self.noise, cap_db)

    @property
    def mse(self) -> float:
        return self.noise / self.count if self.count else math.nan
