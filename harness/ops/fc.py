"""fc: fully connected on a ``(1, 1, Cin)`` vector, weights ``(Cout, Cin)``."""

from __future__ import annotations

import numpy as np

from harness.errors import ConfigError
from harness.ir.model import IntLayer, TensorSpec
from harness.ops.pointwise import Pointwise, pointwise


def fc(x, w, bias, multiplier, shift, *, in_zp, out_zp, act_min, act_max):
    """Fully connected on a ``(1, 1, Cin)`` vector; weights ``(Cout, Cin)``; returns ``(1, 1, Cout)``."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[:2] != (1, 1):
        raise ConfigError(f"fc: input must be a (1, 1, C) vector, got shape {x.shape}")
    return pointwise(x, w, bias, multiplier, shift, in_zp=in_zp, out_zp=out_zp, act_min=act_min,
                     act_max=act_max)


class Fc(Pointwise):
    kind = "fc"
    c_enum = "TH_OP_FC"

    def check_shapes(self, layer: IntLayer, ins: TensorSpec, outs: TensorSpec) -> None:
        super().check_shapes(layer, ins, outs)
        if tuple(ins.shape[:2]) != (1, 1) or tuple(outs.shape[:2]) != (1, 1):
            raise ConfigError(
                f"layer {layer.name!r}: fc needs (1, 1, C) input and output, got {ins.shape} -> {outs.shape}"
            )
        if int(layer.stride) != 1:
            raise ConfigError(f"layer {layer.name!r}: fc needs stride 1, got {layer.stride}")

    def accumulate(self, layer: IntLayer, x: np.ndarray, in_zp: int) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[:2] != (1, 1):
            raise ConfigError(f"fc: input must be a (1, 1, C) vector, got shape {x.shape}")
        return super().accumulate(layer, x, in_zp)


OP = Fc()
