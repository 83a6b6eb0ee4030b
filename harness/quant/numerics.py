"""Quantization numerics as pure functions (torch tensors in, tensors out).

Conventions are those of :mod:`harness.ir.model`:

* weights: symmetric per output channel, narrow range ``[-(2**(b-1) - 1), 2**(b-1) - 1]``, zero point 0;
* activations: ``b``-bit signed integers ``q`` with ``real = scale * (q - zero_point)``; a tensor with real range
  ``[lo, hi]`` (``lo <= 0 <= hi``) uses ``scale = (hi - lo) / (2**b - 1)`` and the zero point that puts real 0
  exactly on the grid, so an unsigned (post-ReLU, ``lo = 0``) tensor has ``zero_point = -2**(b-1)``.

Fake quantization returns the dequantized value and passes gradients straight through (STE); the clamp to
``[lo, hi]`` passes gradients to ``lo``/``hi`` when they are learnable (PACT).
"""

from __future__ import annotations

import torch

EPS = 1e-12


def qrange(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def wmax(bits: int) -> int:
    """Largest weight magnitude in the narrow ``bits``-bit range."""
    return (1 << (bits - 1)) - 1


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to nearest in the forward pass, identity gradient."""
    return x + (torch.round(x) - x).detach()


# -- weights --------------------------------------------------------------------------------------------------
def _per_channel_absmax(w: torch.Tensor) -> torch.Tensor:
    return w.detach().abs().flatten(1).amax(1)


def weight_scales(w: torch.Tensor, bits: int, method: str = "max", grid: int = 20) -> torch.Tensor:
    """Per-output-channel scales (dim 0) of a weight tensor.

    ``max`` maps each channel's largest magnitude to the largest level. ``mse`` tries clip ratios in
    ``[0.3, 1]`` per channel and keeps the one with the least squared error (clipping a few outliers pays off
    at 2 and 4 bits, where the max rule leaves most weights in the zero bin).
    """
    m = wmax(bits)
    amax = _per_channel_absmax(w).clamp_min(EPS)
    if method == "max":
        return amax / m
    if method != "mse":
        raise ValueError(f"unknown weight scale method {method!r} (max | mse)")
    wf = w.detach().flatten(1)
    best_s, best_err = amax / m, torch.full_like(amax, float("inf"))
    for r in torch.linspace(0.3, 1.0, grid, device=w.device):
        s = (amax * r / m)[:, None]
        err = ((torch.clamp(torch.round(wf / s), -m, m) * s - wf) ** 2).sum(1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_s = torch.where(better, s[:, 0], best_s)
    return best_s


def quantize_weight(w: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """Integer weights (as a float tensor of integers) for per-channel ``scale`` along dim 0."""
    m = wmax(bits)
    s = scale.reshape(-1, *([1] * (w.dim() - 1)))
    return torch.clamp(torch.round(w / s), -m, m)


def fake_quant_weight(w: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """Dequantized per-channel weights with a straight-through gradient."""
    s = scale.reshape(-1, *([1] * (w.dim() - 1))).detach()
    return w + (quantize_weight(w.detach(), scale.detach(), bits) * s - w).detach()


def quantize_bias(b: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """int32 bias values at ``scale = s_in * s_w`` (per channel), as a float tensor of integers."""
    return torch.clamp(torch.round(b / scale), -(2 ** 31), 2 ** 31 - 1)


def fake_quant_bias(b: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return b + (quantize_bias(b.detach(), scale.detach()) * scale.detach() - b).detach()


# -- activations ----------------------------------------------------------------------------------------------
def act_qparams(lo: float | torch.Tensor, hi: float | torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, zero_point)`` of a ``bits``-bit tensor with real range ``[lo, hi]`` (``lo`` <= 0 <= ``hi``).

    Real 0 lands exactly on the grid; the zero point is an integer in the signed ``bits``-bit range.
    """
    lo_t = torch.as_tensor(lo, dtype=torch.float32).clamp_max(0.0)
    hi_t = torch.as_tensor(hi, dtype=torch.float32).clamp_min(0.0)
    qmin, qmax = qrange(bits)
    scale = ((hi_t - lo_t) / (qmax - qmin)).clamp_min(EPS)
    zp = torch.clamp(qmin - torch.round(lo_t / scale), qmin, qmax)
    return scale, zp


def quantize_act(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int) -> torch.Tensor:
    """Integer activation values ``clamp(round(x / scale) + zp)`` as a float tensor of integers."""
    qmin, qmax = qrange(bits)
    return torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax)


def fake_quant_act(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int) -> torch.Tensor:
    """Dequantized activation on the grid of :func:`act_qparams`.

    The forward value is exactly ``scale * (quantize_act(x) - zp)`` (what the integer model computes); the
    gradient is 1 inside ``[lo, hi]`` and flows to ``lo``/``hi`` outside it (PACT-style learned clipping).
    """
    scale, zp = act_qparams(lo.detach(), hi.detach(), bits)
    value = (quantize_act(x.detach(), scale, zp, bits) - zp) * scale
    xc = torch.minimum(torch.maximum(x, lo.clamp_max(0.0)), hi.clamp_min(0.0))
    return xc + (value - xc).detach()


def sqnr_db(x: torch.Tensor, q: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB."""
    noise = float(((x - q) ** 2).sum())
    return float("inf") if noise == 0 else 10.0 * float(torch.log10((x ** 2).sum() / noise))


# -- integer requantization (torch mirror of harness.ir.requant, for bit-exact fake quantization) -----
def quantize_multiplier_t(real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Vectorised ``quantize_multiplier``: ``real ~= m * 2**(shift - 31)``, ``m`` in [2**30, 2**31) (int64)."""
    r = real.double()
    if bool((r < 0).any()) or not bool(torch.isfinite(r).all()):
        raise ValueError("requantization multipliers must be finite and >= 0")
    q, e = torch.frexp(r)
    m = torch.floor(q * 2.0 ** 31 + 0.5).long()  # half away from zero (q >= 0), as TFLite; torch.round: to even
    top = m == (1 << 31)
    m = torch.where(top, m // 2, m)
    e = torch.where(top, e + 1, e).long()
    zero = (r == 0) | (e < -31)
    if bool((e[~zero] > 31).any()):
        raise ValueError("requantization multiplier too large (needs a left shift > 31)")
    return torch.where(zero, 0, m), torch.where(zero, 0, e)


def _wrap32(x: torch.Tensor) -> torch.Tensor:
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def srdhm_t(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ab = a * b
    v = ab + torch.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    q = torch.div(v, 1 << 31, rounding_mode="trunc")
    return torch.where((a == -(1 << 31)) & (b == -(1 << 31)), (1 << 31) - 1, q)


def rdbpot_t(x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    mask = (torch.ones_like(e) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0).long()
    return (x >> e) + (remainder > threshold).long()


def mbqm_t(x: torch.Tensor, m: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """MultiplyByQuantizedMultiplier on int64 tensors (TFLite rounding), ``shift > 0`` a left shift."""
    left, right = shift.clamp_min(0), (-shift).clamp_min(0)
    return rdbpot_t(srdhm_t(_wrap32(x << left), m), right)


def act_clamp(bits: int, zero_point: int, scale: float, activation: str | None) -> tuple[int, int]:
    """Integer output clamp of a layer: the tensor's range, narrowed by a fused ReLU (real 0) or ReLU6 (6)."""
    lo, hi = qrange(bits)
    if activation in ("relu", "relu6"):
        lo = max(lo, int(zero_point))
    if activation == "relu6":
        hi = min(hi, int(zero_point) + round(6.0 / scale))
    return lo, hi
