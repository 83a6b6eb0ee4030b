"""conv2d: a KxK convolution, weights ``(Cout, Kh, Kw, Cin)``, per-channel requantization."""

from __future__ import annotations

import numpy as np

from harness.ir.model import IntLayer
from harness.ir.requant import wrap_int32
from harness.ops.base import Shape3, WeightedOp, exact_limit, prepared, requantize, taps


def conv2d_acc(x, w, bias, *, in_zp: int, stride: int = 1, padding=(0, 0, 0, 0)) -> np.ndarray:
    """int32 accumulators ``(OH, OW, Cout)`` of a conv with weights ``(Cout, Kh, Kw, Cin)``."""
    w = np.asarray(w, dtype=np.int64)
    cout, kh, kw, cin = w.shape
    xp, oh, ow = prepared("conv2d", x, kh, kw, cin, in_zp, stride, padding)
    exact_limit(kh * kw * cin, xp, w)
    acc = np.zeros((oh * ow, cout), dtype=np.float64)
    for i, j, v in taps(xp, kh, kw, stride, oh, ow):
        acc += v.reshape(oh * ow, cin).astype(np.float64) @ w[:, i, j, :].T.astype(np.float64)
    acc = acc.astype(np.int64).reshape(oh, ow, cout)
    return wrap_int32(acc + np.asarray(bias, dtype=np.int64))


def conv2d(x, w, bias, multiplier, shift, *, in_zp, out_zp, stride=1, padding=(0, 0, 0, 0), act_min, act_max):
    """Quantized conv2d; weights ``(Cout, Kh, Kw, Cin)``; returns ``(OH, OW, Cout)`` int8 values."""
    acc = conv2d_acc(x, w, bias, in_zp=in_zp, stride=stride, padding=padding)
    return requantize(acc, multiplier, shift, out_zp, act_min, act_max)


class Conv2d(WeightedOp):
    kind = "conv2d"
    c_enum = "TH_OP_CONV2D"

    def macs(self, in_shape: Shape3, out_shape: Shape3, kernel: tuple[int, int]) -> int:
        oh, ow, oc = out_shape
        return oh * ow * oc * kernel[0] * kernel[1] * in_shape[2]

    def weight_shape(self, in_shape: Shape3, out_shape: Shape3, kernel: tuple[int, int]) -> tuple[int, ...]:
        return (out_shape[2], kernel[0], kernel[1], in_shape[2])

    def accumulate(self, layer: IntLayer, x: np.ndarray, in_zp: int) -> np.ndarray:
        return conv2d_acc(x, layer.weight, layer.bias, in_zp=in_zp, stride=layer.stride,
                          padding=tuple(layer.padding))


OP = Conv2d()
