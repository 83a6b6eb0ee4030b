"""add: TFLite's int8 ADD of two equal-shape tensors (left shift, per-input and output multipliers)."""

from __future__ import annotations

import numpy as np

from harness.errors import ConfigError
from harness.ir.model import IntLayer, IntModel
from harness.ir.requant import mbqm, wrap_int32
from harness.ops.base import I32, OpDef, as_hwc


def add(x1, x2, *, in1_zp: int, in2_zp: int, out_zp: int, left_shift: int, in1_multiplier: int, in1_shift: int,
        in2_multiplier: int, in2_shift: int, out_multiplier: int, out_shift: int, act_min: int,
        act_max: int) -> np.ndarray:
    """TFLite ADD: each input centred, shifted left by ``left_shift``, rescaled, summed and rescaled.

    Every rescale is MultiplyByQuantizedMultiplier (identical to TFLite's ...SmallerThanOneExp for shift <= 0).
    """
    x1 = as_hwc(x1, "x1")
    x2 = as_hwc(x2, "x2")
    if x1.shape != x2.shape:
        raise ConfigError(f"add: input shapes differ: {x1.shape} vs {x2.shape}")
    if not 0 <= left_shift <= 31:
        raise ConfigError(f"add: left_shift must be in 0..31, got {left_shift}")
    s1 = mbqm(wrap_int32((x1 - in1_zp) << left_shift), in1_multiplier, in1_shift)
    s2 = mbqm(wrap_int32((x2 - in2_zp) << left_shift), in2_multiplier, in2_shift)
    raw = mbqm(wrap_int32(s1 + s2), out_multiplier, out_shift) + int(out_zp)
    return np.clip(raw, act_min, act_max).astype(np.int8)


class Add(OpDef):
    kind = "add"
    c_enum = "TH_OP_ADD"
    n_inputs = 2

    def requant_bytes(self, out_channels: int) -> int:
        return 28  # seven int32 parameters

    def check(self, model: IntModel, layer: IntLayer) -> None:
        ins, in2, outs = model.in_spec(layer), model.in_spec(layer, 1), model.out_spec(layer)
        if not (tuple(ins.shape) == tuple(in2.shape) == tuple(outs.shape)):
            raise ConfigError(
                f"layer {layer.name!r}: add needs equal shapes, got {ins.shape}, {in2.shape} -> {outs.shape}"
            )
        p = layer.add
        if p is None:
            raise ConfigError(f"layer {layer.name!r}: add needs AddParams")
        if not 0 <= int(p.left_shift) <= 31:
            raise ConfigError(f"layer {layer.name!r}: add left_shift {p.left_shift} must be in 0..31")
        for nm in ("in1", "in2", "out"):
            m, s = int(getattr(p, f"{nm}_multiplier")), int(getattr(p, f"{nm}_shift"))
            if not I32[0] <= m <= I32[1]:
                raise ConfigError(f"layer {layer.name!r}: add {nm}_multiplier {m} is not an int32")
            if not -31 <= s <= 31:
                raise ConfigError(f"layer {layer.name!r}: add {nm}_shift {s} must be in -31..31")

    def reference(self, model: IntModel, layer: IntLayer, values: dict[str, np.ndarray]) -> np.ndarray:
        p = layer.add
        return add(
            values[layer.inputs[0]], values[layer.inputs[1]],
            in1_zp=model.in_spec(layer).zero_point, in2_zp=model.in_spec(layer, 1).zero_point,
            out_zp=model.out_spec(layer).zero_point, left_shift=p.left_shift,
            in1_multiplier=p.in1_multiplier, in1_shift=p.in1_shift, in2_multiplier=p.in2_multiplier,
            in2_shift=p.in2_shift, out_multiplier=p.out_multiplier, out_shift=p.out_shift,
            act_min=layer.act_min, act_max=layer.act_max,
        )  # fmt: skip

    def c_fields(self, layer: IntLayer) -> dict[str, int]:
        p = layer.add
        return {
            "left_shift": p.left_shift, "in1_mult": p.in1_multiplier, "in1_shift": p.in1_shift,
            "in2_mult": p.in2_multiplier, "in2_shift": p.in2_shift, "out_mult": p.out_multiplier,
            "out_shift": p.out_shift,
        }  # fmt: skip


OP = Add()
