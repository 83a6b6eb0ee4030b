"""depthwise: a KxK depthwise convolution (channel multiplier 1), weights ``(Kh, Kw, C)``."""

from __future__ import annotations

import numpy as np

from harness.errors import ConfigError
from harness.ir.model import IntLayer, TensorSpec
from harness.ir.requant import wrap_int32
from harness.ops.base import Shape3, WeightedOp, prepared, requantize, taps


def depthwise_acc(x, w, bias, *, in_zp: int, stride: int = 1, padding=(0, 0, 0, 0)) -> np.ndarray:
    """int32 accumulators ``(OH, OW, C)`` of a depthwise conv (multiplier 1) with weights ``(Kh, Kw, C)``."""
    w = np.asarray(w, dtype=np.int64)
    kh, kw, c = w.shape
    xp, oh, ow = prepared("depthwise", x, kh, kw, c, in_zp, stride, padding)
    acc = np.zeros((oh, ow, c), dtype=np.int64)  # int64 elementwise: exact, no matmul needed
    for i, j, v in taps(xp, kh, kw, stride, oh, ow):
        acc += v * w[i, j, :]
    return wrap_int32(acc + np.asarray(bias, dtype=np.int64))


def depthwise(x, w, bias, multiplier, shift, *, in_zp, out_zp, stride=1, padding=(0, 0, 0, 0), act_min,
              act_max):
    """Quantized depthwise conv; weights ``(Kh, Kw, C)``; returns ``(OH, OW, C)`` int8 values."""
    acc = depthwise_acc(x, w, bias, in_zp=in_zp, stride=stride, padding=padding)
    return requantize(acc, multiplier, shift, out_zp, act_min, act_max)


class Depthwise(WeightedOp):
    kind = "depthwise"
    c_enum = "TH_OP_DEPTHWISE"

    def macs(self, in_shape: Shape3, out_shape: Shape3, kernel: tuple[int, int]) -> int:
        oh, ow, oc = out_shape
        return oh * ow * oc * kernel[0] * kernel[1]

    def weight_shape(self, in_shape: Shape3, out_shape: Shape3, kernel: tuple[int, int]) -> tuple[int, ...]:
        return (kernel[0], kernel[1], out_shape[2])

    def check_shapes(self, layer: IntLayer, ins: TensorSpec, outs: TensorSpec) -> None:
        if ins.shape[2] != outs.shape[2]:
            raise ConfigError(
                f"layer {layer.name!r}: depthwise needs equal in/out channels, got {ins.shape[2]} -> "
                f"{outs.shape[2]}"
            )

    def abs_weight_sums(self, w: np.ndarray) -> np.ndarray:
        return np.abs(w.astype(np.int64)).sum(axis=(0, 1))

    def accumulate(self, layer: IntLayer, x: np.ndarray, in_zp: int) -> np.ndarray:
        return depthwise_acc(x, layer.weight, layer.bias, in_zp=in_zp, stride=layer.stride,
                             padding=tuple(layer.padding))


OP = Depthwise()
