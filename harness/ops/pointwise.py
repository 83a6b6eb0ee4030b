"""pointwise: a 1x1 convolution (any stride, no padding), weights ``(Cout, Cin)``."""

from __future__ import annotations

import numpy as np

from harness.errors import ConfigError
from harness.ir.model import IntLayer, TensorSpec
from harness.ops.base import Shape3, WeightedOp, check_no_padding, requantize
from harness.ops.conv2d import conv2d_acc


def pointwise_acc(x, w, bias, *, in_zp: int, stride: int = 1) -> np.ndarray:
    """int32 accumulators of a 1x1 conv with weights ``(Cout, Cin)`` (no padding)."""
    w = np.asarray(w)
    return conv2d_acc(x, w.reshape(w.shape[0], 1, 1, w.shape[1]), bias, in_zp=in_zp, stride=stride)


def pointwise(x, w, bias, multiplier, shift, *, in_zp, out_zp, stride=1, act_min, act_max):
    """Quantized 1x1 conv; weights ``(Cout, Cin)``; returns ``(OH, OW, Cout)`` int8 values."""
    acc = pointwise_acc(x, w, bias, in_zp=in_zp, stride=stride)
    return requantize(acc, multiplier, shift, out_zp, act_min, act_max)


class Pointwise(WeightedOp):
    kind = "pointwise"
    c_enum = "TH_OP_POINTWISE"

    def macs(self, in_shape: Shape3, out_shape: Shape3, kernel: tuple[int, int]) -> int:
        oh, ow, oc = out_shape
        return oh * ow * oc * in_shape[2]

    def weight_shape(self, in_shape: Shape3, out_shape: Shape3, kernel: tuple[int, int]) -> tuple[int, ...]:
        return (out_shape[2], in_shape[2])

    def check_shapes(self, layer: IntLayer, ins: TensorSpec, outs: TensorSpec) -> None:
        if tuple(layer.kernel) != (1, 1):
            raise ConfigError(f"layer {layer.name!r}: {layer.op} needs kernel (1, 1), got {layer.kernel}")
        check_no_padding(layer)

    def accumulate(self, layer: IntLayer, x: np.ndarray, in_zp: int) -> np.ndarray:
        return pointwise_acc(x, layer.weight, layer.bias, in_zp=in_zp, stride=layer.stride)


OP = Pointwise()
