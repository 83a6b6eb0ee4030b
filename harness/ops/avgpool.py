"""avgpool: average pooling without padding; one multiplier/shift that includes the ``1/window`` factor.

Division mode (``shift == [DIVIDE]``, the multiplier unused): TFLite's integer AVERAGE_POOL_2D, for imported
``.tflite`` models. The raw window sum (no zero point taken off) is divided by the window's tap count, rounded half
away from zero (``(acc + n/2) / n`` for positive sums, ``(acc - n/2) / n`` otherwise, C's truncating division),
then clamped. No single multiplier reproduces this rounding for every zero point, hence the mode.
"""

from __future__ import annotations

import numpy as np

from harness.errors import ConfigError
from harness.ir.model import IntLayer, IntModel
from harness.ops.base import (
    I32,
    OpDef,
    as_hwc,
    check_geometry,
    check_no_padding,
    int_array,
    out_size,
    requantize,
    taps,
)

#: ``shift[0]`` of an average pool in division mode (outside the -31..31 of a requantization shift).
DIVIDE = 64


def avgpool_divide(x: np.ndarray, kernel: tuple[int, int], stride: int, act_min: int, act_max: int) -> np.ndarray:
    """TFLite's integer average pool (no padding): ``round_half_away(window sum / taps)``, clamped."""
    n = int(kernel[0]) * int(kernel[1])
    acc = avgpool_acc(x, kernel, stride, 0)
    q = np.where(acc > 0, (acc + n // 2) // n, -((-acc + n // 2) // n))
    return np.clip(q, act_min, act_max).astype(np.int8)


def avgpool_acc(x: np.ndarray, kernel: tuple[int, int], stride: int, in_zp: int) -> np.ndarray:
    """Window sums of ``x - in_zp`` (no padding), int64 ``(OH, OW, C)``."""
    x = as_hwc(x)
    kh, kw = kernel
    oh = out_size(x.shape[0], kh, stride, 0, 0)
    ow = out_size(x.shape[1], kw, stride, 0, 0)
    if oh <= 0 or ow <= 0:
        raise ConfigError(f"avgpool: window {kh}x{kw} larger than input {x.shape[:2]}")
    acc = np.zeros((oh, ow, x.shape[2]), dtype=np.int64)
    for _, _, v in taps(x - int(in_zp), kh, kw, stride, oh, ow):
        acc += v
    return acc


def avgpool(x, *, kernel, stride, multiplier, shift, in_zp, out_zp, act_min, act_max):
    """Average pool (no padding): window sum requantized by one multiplier that includes ``1/window``."""
    acc = avgpool_acc(x, kernel, stride, in_zp)
    return requantize(acc, multiplier, shift, out_zp, act_min, act_max)


class AvgPool(OpDef):
    kind = "avgpool"
    c_enum = "TH_OP_AVGPOOL"
    arrays = ("mult", "shift")

    def macs(self, in_shape, out_shape, kernel) -> int:
        oh, ow, oc = out_shape
        return oh * ow * oc * kernel[0] * kernel[1]

    def requant_bytes(self, out_channels: int) -> int:
        return 8  # one multiplier and shift

    def check(self, model: IntModel, layer: IntLayer) -> None:
        ins, outs = model.in_spec(layer), model.out_spec(layer)
        if ins.shape[2] != outs.shape[2]:
            raise ConfigError(
                f"layer {layer.name!r}: avgpool keeps channels, got {ins.shape[2]} -> {outs.shape[2]}"
            )
        check_no_padding(layer)
        check_geometry(layer, ins, outs)
        int_array(layer, "multiplier", layer.multiplier, 1, *I32)
        if int(np.asarray(layer.shift).reshape(-1)[0]) != DIVIDE:
            int_array(layer, "shift", layer.shift, 1, -31, 31)
        # window sum of centred values must fit int32 too
        if int(layer.kernel[0]) * int(layer.kernel[1]) * 255 > I32[1]:
            raise ConfigError(f"layer {layer.name!r}: avgpool window {layer.kernel} too large")

    def reference(self, model: IntModel, layer: IntLayer, values: dict[str, np.ndarray]) -> np.ndarray:
        if int(np.asarray(layer.shift).reshape(-1)[0]) == DIVIDE:
            return avgpool_divide(values[layer.inputs[0]], tuple(layer.kernel), layer.stride, layer.act_min,
                                  layer.act_max)
        return avgpool(
            values[layer.inputs[0]], kernel=tuple(layer.kernel), stride=layer.stride,
            multiplier=layer.multiplier, shift=layer.shift, in_zp=model.in_spec(layer).zero_point,
            out_zp=model.out_spec(layer).zero_point, act_min=layer.act_min, act_max=layer.act_max,
        )  # fmt: skip


OP = AvgPool()
