"""Checks that an :class:`~harness.ir.model.IntModel` is well formed before it is run or exported.

Every problem raises :class:`~harness.errors.ConfigError` (or :class:`~harness.errors.UnsupportedLayerError` for
an unknown op) with the layer name and the offending value, so a user can fix the model without reading C.
Graph-level rules live here; each operator's own rules live with the operator (:meth:`OpDef.check`).
"""

from __future__ import annotations

from harness.errors import ConfigError, UnsupportedLayerError
from harness.ir.model import BITS, IntLayer, IntModel, TensorSpec, qrange
from harness.ops import OPS, get


def check_tensor(t: TensorSpec) -> None:
    """Bit-width, zero point and shape of one tensor."""
    if t.bits not in BITS:
        raise ConfigError(f"tensor {t.name!r}: bits={t.bits!r} not in {BITS}")
    lo, hi = qrange(t.bits)
    if not lo <= int(t.zero_point) <= hi:
        raise ConfigError(
            f"tensor {t.name!r}: zero_point {t.zero_point} outside the {t.bits}-bit range [{lo}, {hi}]"
        )
    if len(t.shape) != 3 or any(int(d) < 1 or int(d) > 65535 for d in t.shape):
        raise ConfigError(f"tensor {t.name!r}: shape {t.shape} must be (H, W, C) with 1 <= each <= 65535")


def check_layer(model: IntModel, layer: IntLayer) -> None:
    """One layer against its tensors (op, bit-widths, shapes, parameter ranges)."""
    if layer.op not in OPS:
        raise UnsupportedLayerError(
            f"layer {layer.name!r}: unknown op {layer.op!r} (supported: {', '.join(OPS)})"
        )
    op = get(layer.op)
    if len(layer.inputs) != op.n_inputs:
        raise ConfigError(
            f"layer {layer.name!r} ({layer.op}): needs {op.n_inputs} input(s), got {len(layer.inputs)}"
        )
    for t in [*layer.inputs, layer.output]:
        if t not in model.tensors:
            raise ConfigError(f"layer {layer.name!r}: unknown tensor {t!r}")
    outs = model.out_spec(layer)
    lo, hi = qrange(outs.bits)
    if not lo <= int(layer.act_min) <= int(layer.act_max) <= hi:
        raise ConfigError(
            f"layer {layer.name!r}: clamp [{layer.act_min}, {layer.act_max}] must be ordered and inside the "
            f"{outs.bits}-bit output range [{lo}, {hi}]"
        )
    op.check(model, layer)


def validate_model(model: IntModel) -> None:
    """Whole-model checks: tensors, graph order (each tensor produced once, before use), every layer."""
    if not model.layers:
        raise ConfigError(f"model {model.name!r} has no layers")
    if len(model.layers) > 32767 or len(model.tensors) > 32767:
        raise ConfigError(f"model {model.name!r}: too many layers/tensors for the int16 firmware table")
    for name, t in model.tensors.items():
        if name != t.name:
            raise ConfigError(f"tensor table key {name!r} differs from the tensor's name {t.name!r}")
        check_tensor(t)
    for t in (model.input, model.output):
        if t not in model.tensors:
            raise ConfigError(f"model {model.name!r}: unknown input/output tensor {t!r}")
    ready = {model.input}
    names = set()
    for layer in model.layers:
        if layer.name in names:
            raise ConfigError(f"duplicate layer name {layer.name!r}")
        names.add(layer.name)
        check_layer(model, layer)
        for t in layer.inputs:
            if t not in ready:
                raise ConfigError(f"layer {layer.name!r} reads tensor {t!r} before any layer produces it")
        if layer.output in ready:
            raise ConfigError(
                f"layer {layer.name!r} writes tensor {layer.output!r}, which is already produced"
            )
        ready.add(layer.output)
    if model.output not in ready:
        raise ConfigError(f"model {model.name!r}: no layer produces the output tensor {model.output!r}")
