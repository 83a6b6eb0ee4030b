"""TFLite integer requantization, vectorised and exact in int64.

These are the gemmlowp/TFLite primitives the C helpers in ``firmware/runtime/include/th_requant.h`` implement
bit for bit:

* ``srdhm(a, b)`` = SaturatingRoundingDoublingHighMul: ``a * b / 2**31`` rounded to nearest with ties toward
  +infinity (gemmlowp's nudge then a truncating division), saturating the one overflowing case
  ``a == b == INT32_MIN`` to ``INT32_MAX``.
* ``rdbpot(x, e)`` = RoundingDivideByPOT: ``x / 2**e`` rounded half away from zero, ``e`` in 0..31.
* ``mbqm(x, m, s)`` = MultiplyByQuantizedMultiplier: ``rdbpot(srdhm(x * 2**max(s, 0), m), max(-s, 0))``.

One choice TFLite leaves undefined: the left shift ``x * 2**s`` of a large ``x`` overflows int32 (undefined
behaviour in C). tinyhil defines it as two's-complement wrap-around, which is what the C helper does (it shifts in
``uint32_t``) and what the LSL instruction does on Cortex-M.
"""

from __future__ import annotations

import math

import numpy as np

from harness.errors import ConfigError

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def wrap_int32(x: np.ndarray) -> np.ndarray:
    """Two's-complement wrap of int64 values into the int32 range (returned as int64)."""
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def srdhm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul of int32 values (int64 in, int64 out)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b  # |ab| <= 2**62: exact in int64
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    v = ab + nudge
    # C divides toward zero, numpy's >> floors: divide the magnitude and restore the sign
    q = np.where(v >= 0, v >> 31, -((-v) >> 31))
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, INT32_MAX, q).astype(np.int64)


def rdbpot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """RoundingDivideByPOT: ``x / 2**exponent`` rounded half away from zero, exponent in 0..31."""
    x = np.asarray(x, dtype=np.int64)
    e = np.asarray(exponent, dtype=np.int64)
    if np.any((e < 0) | (e > 31)):
        raise ConfigError(f"rounding shift exponent must be in 0..31, got {np.unique(e).tolist()}")
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def mbqm(x: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """MultiplyByQuantizedMultiplier(x, multiplier, shift) for int32 ``x``; ``shift > 0`` is a left shift.

    ``multiplier`` and ``shift`` broadcast against ``x`` (per-channel values along the last axis).
    """
    x = np.asarray(x, dtype=np.int64)
    m = np.asarray(multiplier, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    if np.any((s < -31) | (s > 31)):
        raise ConfigError(f"requantization shift must be in -31..31, got {np.unique(s).tolist()}")
    left = np.maximum(s, 0)
    right = np.maximum(-s, 0)
    shifted = wrap_int32(x << left)
    return rdbpot(srdhm(shifted, m), right)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """Split a positive real multiplier into ``(multiplier, shift)`` with ``real ~= multiplier * 2**(shift-31)``.

    ``multiplier`` is in ``[2**30, 2**31 - 1]`` (or 0 for ``real == 0``) and ``shift`` in -31..31, as TFLite's
    ``QuantizeMultiplier``: ``q * 2**31`` is rounded half away from zero (``std::round``), not half to even as
    Python's ``round`` would (an exact tie such as ``1342177280.5`` must give ``1342177281``, or a model imported
    from TFLite differs from the interpreter by one on some outputs). Multipliers too small for a 31-bit right
    shift flush to zero.
    """
    if not math.isfinite(real) or real < 0:
        raise ConfigError(f"a requantization multiplier must be finite and >= 0, got {real!r}")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)  # real = q * 2**shift, q in [0.5, 1)
    q_fixed = math.floor(q * (1 << 31) + 0.5)  # q > 0 and q * 2**31 < 2**31: exact in float64
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 31:
        raise ConfigError(f"requantization multiplier {real!r} is too large (needs a left shift > 31)")
    return int(q_fixed), int(shift)


def dequantize_multiplier(multiplier: int, shift: int) -> float:
    """The real value a ``(multiplier, shift)`` pair stands for."""
    return multiplier * 2.0 ** (shift - 31)


def add_params(
    in1_scale: float, in2_scale: float, out_scale: float, left_shift: int = 20
) -> tuple[int, int, int, int, int, int, int]:
    """TFLite ADD requantization from real scales: ``(left_shift, m1, s1, m2, s2, m_out, s_out)``.

    As TFLite's ``PrepareGeneralSubOp``: both inputs are brought to ``2 * max(in scales)`` and shifted left by
    ``left_shift`` (20 for 8-bit) for headroom; the output multiplier undoes both. Build an
    :class:`~harness.ir.model.AddParams` with ``AddParams(*add_params(...))``.
    """
    if min(in1_scale, in2_scale, out_scale) <= 0:
        raise ConfigError("add scales must be positive")
    twice_max = 2.0 * max(in1_scale, in2_scale)
    m1, s1 = quantize_multiplier(in1_scale / twice_max)
    m2, s2 = quantize_multiplier(in2_scale / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << left_shift) * out_scale))
    return left_shift, m1, s1, m2, s2, mo, so
