"""Re-quantize activation tensors of an integer model at other bit-widths, without touching the weights.

QuantMCU lowers the precision of feature maps per patch branch after quantization, without training. Given new
tensor specs (bits, scale, zero point) for some activations, :func:`retarget` returns a model in which every
layer that reads or writes one of them has its requantization redone so that it computes the same real-valued
function as before (up to rounding):

* a conv/linear layer with input scale ``s_in`` and output scale ``s_out`` has the real multiplier
  ``M = s_in * s_w / s_out``; with new scales it becomes ``M * (s_in'/s_in) * (s_out/s_out')`` (re-split into a
  TFLite multiplier and shift), and its integer bias ``B / (s_in * s_w)`` becomes ``bias * s_in / s_in'``;
* an average pool's multiplier scales the same way; an add's per-input coefficients ``s_i / s_out`` are
  recomputed and split again with :func:`harness.ir.requant.add_params`;
* a clamp moves with its output tensor: the ends of the integer range stay the ends, a ReLU floor stays at the
  zero point, and a ReLU6 ceiling keeps its real value (clipped to the new range).

:func:`spec_at_bits` gives the natural spec of a tensor at fewer bits: the same real range (``clip = 1``) or a
narrower one (``clip < 1``, e.g. chosen by :func:`mse_clip` on calibration values), with real zero kept at the
same relative position (a post-ReLU tensor stays unsigned: zero point at the bottom of the range).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from harness.errors import ConfigError
from harness.ir.model import AddParams, IntLayer, IntModel, TensorSpec, qrange
from harness.ir.requant import add_params, dequantize_multiplier, quantize_multiplier

#: clip factors :func:`mse_clip` tries (fractions of the tensor's full real range)
CLIP_GRID: tuple[float, ...] = tuple(np.round(np.linspace(1.0, 0.2, 33), 4))


def spec_at_bits(spec: TensorSpec, bits: int, clip: float = 1.0) -> TensorSpec:
    """``spec`` at ``bits``: the real range ``clip`` times the original one, real zero at the same place."""
    if not 0.0 < clip <= 1.0:
        raise ConfigError(f"clip must be in (0, 1], got {clip}")
    lo, hi = qrange(spec.bits)
    lo2, hi2 = qrange(bits)
    if bits == spec.bits and clip == 1.0:
        return spec
    scale = spec.scale * (hi - lo) / (hi2 - lo2) * clip
    frac = (spec.zero_point - lo) / (hi - lo)  # where real zero sits in the integer range
    zp = int(np.clip(round(lo2 + frac * (hi2 - lo2)), lo2, hi2))
    return TensorSpec(spec.name, tuple(spec.shape), int(bits), float(scale), zp)


def quantize_real(real: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Real values quantized to ``spec`` (round to nearest, clamp to the integer range)."""
    lo, hi = qrange(spec.bits)
    return np.clip(
        np.round(np.asarray(real, dtype=np.float64) / spec.scale) + spec.zero_point, lo, hi
    ).astype(np.int64)


def dequantize(q: np.ndarray, spec: TensorSpec) -> np.ndarray:
    return spec.scale * (np.asarray(q, dtype=np.float64) - spec.zero_point)


def mse_clip(values: np.ndarray, spec: TensorSpec, bits: int, grid: Sequence[float] = CLIP_GRID) -> float:
    """The clip factor in ``grid`` whose ``bits``-bit spec reproduces ``values`` (integers at ``spec``) with the
    least mean squared error in real units (the first best one, so ties keep the wider range)."""
    v = np.asarray(values).reshape(-1)
    if v.size == 0:
        return 1.0
    real = dequantize(v, spec)
    best, best_err = 1.0, np.inf
    for c in grid:
        s2 = spec_at_bits(spec, bits, float(c))
        err = float(np.mean((dequantize(quantize_real(real, s2), s2) - real) ** 2))
        if err < best_err - 1e-15:
            best, best_err = float(c), err
    return best


def _move_clamp(v: int, old: TensorSpec, new: TensorSpec) -> int:
    lo, hi = qrange(old.bits)
    lo2, hi2 = qrange(new.bits)
    if v <= lo:
        return lo2
    if v >= hi:
        return hi2
    if v == old.zero_point:
        return new.zero_point
    return int(np.clip(round(new.zero_point + (v - old.zero_point) * old.scale / new.scale), lo2, hi2))


def _rescale_mult(mult: np.ndarray, shift: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    m, s = [], []
    for a, b in zip(np.asarray(mult).reshape(-1), np.asarray(shift).reshape(-1)):
        q, e = quantize_multiplier(dequantize_multiplier(int(a), int(b)) * factor)
        m.append(q)
        s.append(e)
    return np.array(m, dtype=np.int32), np.array(s, dtype=np.int32)


def _retarget_layer(
    layer: IntLayer, old: Mapping[str, TensorSpec], new: Mapping[str, TensorSpec]
) -> IntLayer:
    i0, o = layer.inputs[0], layer.output
    r_in = new[i0].scale / old[i0].scale
    r_out = old[o].scale / new[o].scale
    lo, hi = _move_clamp(layer.act_min, old[o], new[o]), _move_clamp(layer.act_max, old[o], new[o])
    if layer.op == "add":
        p = layer.add
        i1 = layer.inputs[1]
        scale = float(1 << p.left_shift) * dequantize_multiplier(p.out_multiplier, p.out_shift)
        c1 = scale * dequantize_multiplier(p.in1_multiplier, p.in1_shift) * r_in * r_out
        c2 = (
            scale
            * dequantize_multiplier(p.in2_multiplier, p.in2_shift)
            * new[i1].scale
            / old[i1].scale
            * r_out
        )
        return replace(layer, add=AddParams(*add_params(c1, c2, 1.0, p.left_shift)), act_min=lo, act_max=hi)
    mult, shift = _rescale_mult(layer.multiplier, layer.shift, r_in * r_out)
    bias = layer.bias
    if bias is not None and layer.op != "avgpool" and r_in != 1.0:
        bias = np.round(np.asarray(bias, dtype=np.float64) / r_in).astype(np.int32)
    return replace(layer, multiplier=mult, shift=shift, bias=bias, act_min=lo, act_max=hi)


def retarget(model: IntModel, specs: Mapping[str, TensorSpec], name: str | None = None) -> IntModel:
    """``model`` with the tensors in ``specs`` replaced and every layer touching them re-quantized.

    The model input cannot change (it is what the host sends). Layers that touch no changed tensor are shared
    with ``model`` (same objects), so weights are never copied.
    """
    if not specs:
        return model
    unknown = sorted(set(specs) - set(model.tensors))
    if unknown:
        raise ConfigError(f"retarget: unknown tensors {unknown}")
    if model.input in specs and specs[model.input] != model.tensors[model.input]:
        raise ConfigError("retarget: the model input's precision is fixed")
    tensors = dict(model.tensors)
    for t, s in specs.items():
        if tuple(s.shape) != tuple(model.tensors[t].shape):
            raise ConfigError(f"retarget: tensor {t!r} must keep its shape {model.tensors[t].shape}")
        tensors[t] = replace(s, name=t)
    changed = {t for t in specs if tensors[t] != model.tensors[t]}
    layers = []
    for layer in model.layers:
        if changed & {*layer.inputs, layer.output}:
            layers.append(_retarget_layer(layer, model.tensors, tensors))
        else:
            layers.append(layer)
    return IntModel(tensors, layers, model.input, model.output, name or model.name)
