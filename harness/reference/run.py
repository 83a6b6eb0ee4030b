"""Run a whole :class:`~harness.ir.model.IntModel` with the numpy integer reference (each operator's own)."""

from __future__ import annotations

import numpy as np

from harness.errors import ConfigError
from harness.ir.model import IntLayer, IntModel, qrange
from harness.ops import get
from harness.ops.validate import validate_model


def run_layer(model: IntModel, layer: IntLayer, values: dict[str, np.ndarray]) -> np.ndarray:
    """Output values of one layer given the values of its input tensors (unpacked, int)."""
    return get(layer.op).reference(model, layer, values)


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
