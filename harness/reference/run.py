"""Run a whole :class:`~harness.codegen.ir.IntModel` with the numpy integer reference."""

from __future__ import annotations

import numpy as np

from harness.codegen.ir import IntLayer, IntModel, qrange
from harness.codegen.validate import validate_model
from harness.errors import ConfigError
from harness.reference import kernels as K


def run_layer(model: IntModel, layer: IntLayer, values: dict[str, np.ndarray]) -> np.ndarray:
    """Output values of one layer given the values of its input tensors (unpacked, int)."""
    x = values[layer.inputs[0]]
    ins, outs = model.in_spec(layer), model.out_spec(layer)
    common = {
        "in_zp": ins.zero_point,
        "out_zp": outs.zero_point,
        "act_min": layer.act_min,
        "act_max": layer.act_max,
    }
    if layer.op in ("conv2d", "depthwise"):
        kernel = K.conv2d if layer.op == "conv2d" else K.depthwise
        return kernel(
            x,
            layer.weight,
            layer.bias,
            layer.multiplier,
            layer.shift,
            stride=layer.stride,
            padding=tuple(layer.padding),
            **common,
        )
    if layer.op == "pointwise":
        return K.pointwise(
            x, layer.weight, layer.bias, layer.multiplier, layer.shift, stride=layer.stride, **common
        )
    if layer.op == "fc":
        return K.fc(x, layer.weight, layer.bias, layer.multiplier, layer.shift, **common)
    if layer.op == "avgpool":
        return K.avgpool(
            x,
            kernel=tuple(layer.kernel),
            stride=layer.stride,
            multiplier=layer.multiplier,
            shift=layer.shift,
            **common,
        )
    if layer.op == "add":
        p = layer.add
        return K.add(
            x,
            values[layer.inputs[1]],
            in1_zp=ins.zero_point,
            in2_zp=model.in_spec(layer, 1).zero_point,
            out_zp=outs.zero_point,
            left_shift=p.left_shift,
            in1_multiplier=p.in1_multiplier,
            in1_shift=p.in1_shift,
            in2_multiplier=p.in2_multiplier,
            in2_shift=p.in2_shift,
            out_multiplier=p.out_multiplier,
            out_shift=p.out_shift,
            act_min=layer.act_min,
            act_max=layer.act_max,
        )
    raise ConfigError(f"layer {layer.name!r}: unknown op {layer.op!r}")  # unreachable after validation


def checked_input(model: IntModel, x: np.ndarray) -> np.ndarray:
    """``x`` as int8 after checking it has the model input's shape and fits its precision (clear errors)."""
    spec = model.tensors[model.input]
    x = np.asarray(x)
    if tuple(x.shape) != tuple(spec.shape):
        raise ConfigError(f"model input must have shape {spec.shape}, got {x.shape}")
    lo, hi = qrange(spec.bits)
    if x.size and (not np.issubdtype(x.dtype, np.integer) or x.min() < lo or x.max() > hi):
        raise ConfigError(f"model input must hold {spec.bits}-bit integers in [{lo}, {hi}]")
    return x.astype(np.int8)


def run_model(model: IntModel, x: np.ndarray, validate: bool = True) -> dict[str, np.ndarray]:
    """Every tensor's values (unpacked int8 arrays), the input first, then layer outputs in execution order."""
    if validate:
        validate_model(model)
    values: dict[str, np.ndarray] = {model.input: checked_input(model, x)}
    for layer in model.layers:
        values[layer.output] = run_layer(model, layer, values)
    return values
