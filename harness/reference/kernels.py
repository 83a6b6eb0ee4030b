"""Numpy integer reference kernels (TFLite semantics) on *unpacked* integer arrays.

Every function takes activations as ``(H, W, C)`` integer arrays holding the quantized values ``q`` of
:mod:`harness.codegen.ir` and returns the output ``q`` values as an ``int8`` array. Bit-widths only matter
through the zero points and the ``[act_min, act_max]`` clamp, which the caller sets inside the output range;
the same functions therefore serve every (a_bits, w_bits, o_bits) combination.

Accumulators are exact: the products are summed in float64 BLAS matmuls (exact while ``|acc| < 2**53``, which the
bound check in :func:`_exact_limit` guarantees) and converted to int64, then wrapped to int32 like the C code.
"""

from __future__ import annotations

import numpy as np

from harness.errors import ConfigError
from harness.reference.requant import mbqm, wrap_int32

_EXACT = float(1 << 52)


def _exact_limit(k: int, x: np.ndarray, w: np.ndarray) -> None:
    xm = float(np.abs(x).max()) if x.size else 0.0
    wm = float(np.abs(w).max()) if w.size else 0.0
    if k * xm * wm >= _EXACT:
        raise ConfigError(f"accumulation of {k} products of |x|<={xm}, |w|<={wm} exceeds exact float64 range")


def _as_hwc(x: np.ndarray, name: str = "x") -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3:
        raise ConfigError(f"{name} must be an (H, W, C) array, got shape {x.shape}")
    return x.astype(np.int64)


def out_size(size: int, k: int, stride: int, pad_before: int, pad_after: int) -> int:
    """Output length of a sliding window (floor mode), as the C kernels compute it."""
    return (size + pad_before + pad_after - k) // stride + 1


def requantize(
    acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray, out_zp: int, act_min: int, act_max: int
) -> np.ndarray:
    """``clamp(out_zp + MultiplyByQuantizedMultiplier(acc, m, s), act_min, act_max)``, per channel (last axis)."""
    out = mbqm(wrap_int32(acc), multiplier, shift) + int(out_zp)
    # exact in int64; the C code clamps mbqm to [lo - zp, hi - zp] first, which is the same function
    return np.clip(out, act_min, act_max).astype(np.int8)


def _centered_padded(x: np.ndarray, in_zp: int, padding: tuple[int, int, int, int]) -> np.ndarray:
    """``x - in_zp`` padded with zeros (padded taps contribute nothing, as 'valid taps only')."""
    pt, pl, pb, pr = padding
    xc = x - int(in_zp)
    return np.pad(xc, ((pt, pb), (pl, pr), (0, 0)))


def _taps(xp: np.ndarray, kh: int, kw: int, stride: int, oh: int, ow: int):
    """Yield ``(i, j, view)``: the input samples each output pixel sees at kernel tap (i, j)."""
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride, :]


def _prepared(op: str, x, kh: int, kw: int, cin: int, in_zp: int, stride: int, padding):
    """The centred, padded input and the output size of a ``kh x kw`` window op (clear errors on bad shapes)."""
    x = _as_hwc(x)
    if x.shape[2] != cin:
        raise ConfigError(f"{op}: input has {x.shape[2]} channels, weights expect {cin}")
    xp = _centered_padded(x, in_zp, padding)
    oh = out_size(x.shape[0], kh, stride, padding[0], padding[2])
    ow = out_size(x.shape[1], kw, stride, padding[1], padding[3])
    if oh <= 0 or ow <= 0:
        raise ConfigError(f"{op}: kernel {kh}x{kw} larger than padded input {xp.shape[:2]}")
    return xp, oh, ow


def conv2d_acc(
    x: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray,
    *,
    in_zp: int,
    stride: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
) -> np.ndarray:
    """int32 accumulators ``(OH, OW, Cout)`` of a conv with weights ``(Cout, Kh, Kw, Cin)``."""
    w = np.asarray(w, dtype=np.int64)
    cout, kh, kw, cin = w.shape
    xp, oh, ow = _prepared("conv2d", x, kh, kw, cin, in_zp, stride, padding)
    _exact_limit(kh * kw * cin, xp, w)
    acc = np.zeros((oh * ow, cout), dtype=np.float64)
    for i, j, v in _taps(xp, kh, kw, stride, oh, ow):
        acc += v.reshape(oh * ow, cin).astype(np.float64) @ w[:, i, j, :].T.astype(np.float64)
    acc = acc.astype(np.int64).reshape(oh, ow, cout)
    return wrap_int32(acc + np.asarray(bias, dtype=np.int64))


def depthwise_acc(
    x: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray,
    *,
    in_zp: int,
    stride: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
) -> np.ndarray:
    """int32 accumulators ``(OH, OW, C)`` of a depthwise conv (multiplier 1) with weights ``(Kh, Kw, C)``."""
    w = np.asarray(w, dtype=np.int64)
    kh, kw, c = w.shape
    xp, oh, ow = _prepared("depthwise", x, kh, kw, c, in_zp, stride, padding)
    acc = np.zeros((oh, ow, c), dtype=np.int64)  # int64 elementwise: exact, no matmul needed
    for i, j, v in _taps(xp, kh, kw, stride, oh, ow):
        acc += v * w[i, j, :]
    return wrap_int32(acc + np.asarray(bias, dtype=np.int64))


def pointwise_acc(
    x: np.ndarray, w: np.ndarray, bias: np.ndarray, *, in_zp: int, stride: int = 1
) -> np.ndarray:
    """int32 accumulators of a 1x1 conv with weights ``(Cout, Cin)`` (no padding)."""
    w = np.asarray(w)
    return conv2d_acc(x, w.reshape(w.shape[0], 1, 1, w.shape[1]), bias, in_zp=in_zp, stride=stride)


def conv2d(x, w, bias, multiplier, shift, *, in_zp, out_zp, stride=1, padding=(0, 0, 0, 0), act_min, act_max):
    """Quantized conv2d; weights ``(Cout, Kh, Kw, Cin)``; returns ``(OH, OW, Cout)`` int8 values."""
    acc = conv2d_acc(x, w, bias, in_zp=in_zp, stride=stride, padding=padding)
    return requantize(acc, multiplier, shift, out_zp, act_min, act_max)


def depthwise(
    x, w, bias, multiplier, shift, *, in_zp, out_zp, stride=1, padding=(0, 0, 0, 0), act_min, act_max
):
    """Quantized depthwise conv; weights ``(Kh, Kw, C)``; returns ``(OH, OW, C)`` int8 values."""
    acc = depthwise_acc(x, w, bias, in_zp=in_zp, stride=stride, padding=padding)
    return requantize(acc, multiplier, shift, out_zp, act_min, act_max)


def pointwise(x, w, bias, multiplier, shift, *, in_zp, out_zp, stride=1, act_min, act_max):
    """Quantized 1x1 conv; weights ``(Cout, Cin)``; returns ``(OH, OW, Cout)`` int8 values."""
    acc = pointwise_acc(x, w, bias, in_zp=in_zp, stride=stride)
    return requantize(acc, multiplier, shift, out_zp, act_min, act_max)


def fc(x, w, bias, multiplier, shift, *, in_zp, out_zp, act_min, act_max):
    """Fully connected on a ``(1, 1, Cin)`` vector; weights ``(Cout, Cin)``; returns ``(1, 1, Cout)``."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[:2] != (1, 1):
        raise ConfigError(f"fc: input must be a (1, 1, C) vector, got shape {x.shape}")
    return pointwise(
        x, w, bias, multiplier, shift, in_zp=in_zp, out_zp=out_zp, act_min=act_min, act_max=act_max
    )


def add(
    x1,
    x2,
    *,
    in1_zp: int,
    in2_zp: int,
    out_zp: int,
    left_shift: int,
    in1_multiplier: int,
    in1_shift: int,
    in2_multiplier: int,
    in2_shift: int,
    out_multiplier: int,
    out_shift: int,
    act_min: int,
    act_max: int,
) -> np.ndarray:
    """TFLite ADD: each input centred, shifted left by ``left_shift``, rescaled, summed and rescaled.

    Every rescale is MultiplyByQuantizedMultiplier (identical to TFLite's ...SmallerThanOneExp for shift <= 0).
    """
    x1 = _as_hwc(x1, "x1")
    x2 = _as_hwc(x2, "x2")
    if x1.shape != x2.shape:
        raise ConfigError(f"add: input shapes differ: {x1.shape} vs {x2.shape}")
    if not 0 <= left_shift <= 31:
        raise ConfigError(f"add: left_shift must be in 0..31, got {left_shift}")
    s1 = mbqm(wrap_int32((x1 - in1_zp) << left_shift), in1_multiplier, in1_shift)
    s2 = mbqm(wrap_int32((x2 - in2_zp) << left_shift), in2_multiplier, in2_shift)
    raw = mbqm(wrap_int32(s1 + s2), out_multiplier, out_shift) + int(out_zp)
    return np.clip(raw, act_min, act_max).astype(np.int8)


def avgpool_acc(x: np.ndarray, kernel: tuple[int, int], stride: int, in_zp: int) -> np.ndarray:
    """Window sums of ``x - in_zp`` (no padding), int64 ``(OH, OW, C)``."""
    x = _as_hwc(x)
    kh, kw = kernel
    oh = out_size(x.shape[0], kh, stride, 0, 0)
    ow = out_size(x.shape[1], kw, stride, 0, 0)
    if oh <= 0 or ow <= 0:
        raise ConfigError(f"avgpool: window {kh}x{kw} larger than input {x.shape[:2]}")
    acc = np.zeros((oh, ow, x.shape[2]), dtype=np.int64)
    for _, _, v in _taps(x - int(in_zp), kh, kw, stride, oh, ow):
        acc += v
    return acc


def avgpool(x, *, kernel, stride, multiplier, shift, in_zp, out_zp, act_min, act_max):
    """Average pool (no padding): window sum requantized by one multiplier that includes ``1/window``."""
    acc = avgpool_acc(x, kernel, stride, in_zp)
    return requantize(acc, multiplier, shift, out_zp, act_min, act_max)
