"""Checks that an :class:`~harness.codegen.ir.IntModel` is well formed before it is run or exported.

Every problem raises :class:`~harness.errors.ConfigError` (or :class:`~harness.errors.UnsupportedLayerError` for
an unknown op) with the layer name and the offending value, so a user can fix the model without reading C.
"""

from __future__ import annotations

import numpy as np

from harness.codegen.ir import BITS, OPS, IntLayer, IntModel, TensorSpec, qrange, wrange
from harness.errors import ConfigError, UnsupportedLayerError

WEIGHTED_OPS = ("conv2d", "depthwise", "pointwise", "fc")
_I32 = (-(1 << 31), (1 << 31) - 1)


def _out_len(n: int, k: int, s: int, a: int, b: int) -> int:
    return (n + a + b - k) // s + 1


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


def _int_array(layer: IntLayer, what: str, arr, n: int, lo: int, hi: int) -> np.ndarray:
    if arr is None:
        raise ConfigError(f"layer {layer.name!r} ({layer.op}): missing {what}")
    a = np.asarray(arr)
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ConfigError(f"layer {layer.name!r}: {what} must be integers, got dtype {a.dtype}")
    a = a.astype(np.int64).reshape(-1)
    if a.size != n:
        raise ConfigError(f"layer {layer.name!r}: {what} has {a.size} entries, expected {n}")
    if a.size and (a.min() < lo or a.max() > hi):
        raise ConfigError(f"layer {layer.name!r}: {what} values [{a.min()}, {a.max()}] outside [{lo}, {hi}]")
    return a


def _check_geometry(layer: IntLayer, ins: TensorSpec, outs: TensorSpec) -> None:
    kh, kw = (int(v) for v in layer.kernel)
    s = int(layer.stride)
    pt, pl, pb, pr = (int(v) for v in layer.padding)
    if not (1 <= kh <= 255 and 1 <= kw <= 255):
        raise ConfigError(f"layer {layer.name!r}: kernel {layer.kernel} must be within 1..255")
    if not 1 <= s <= 255:
        raise ConfigError(f"layer {layer.name!r}: stride {s} must be within 1..255")
    if any(not 0 <= p <= 255 for p in (pt, pl, pb, pr)):
        raise ConfigError(f"layer {layer.name!r}: padding {layer.padding} must be within 0..255")
    if pt >= kh or pb >= kh or pl >= kw or pr >= kw:
        raise ConfigError(
            f"layer {layer.name!r}: padding {layer.padding} must be smaller than kernel {layer.kernel}"
        )
    h, w, _ = ins.shape
    oh, ow = _out_len(h, kh, s, pt, pb), _out_len(w, kw, s, pl, pr)
    if (oh, ow) != tuple(outs.shape[:2]):
        raise ConfigError(
            f"layer {layer.name!r} ({layer.op}): input {ins.shape} with kernel {layer.kernel}, stride {s}, padding "
            f"{layer.padding} gives {oh}x{ow} pixels, but output tensor {outs.name!r} is {outs.shape[0]}x{outs.shape[1]}"
        )


def _check_weighted(model: IntModel, layer: IntLayer) -> None:
    ins, outs = model.in_spec(layer), model.out_spec(layer)
    if layer.w_bits not in BITS:
        raise ConfigError(f"layer {layer.name!r}: w_bits={layer.w_bits!r} not in {BITS}")
    if layer.weight is None:
        raise ConfigError(f"layer {layer.name!r} ({layer.op}): missing weight")
    w = np.asarray(layer.weight)
    cin, cout = ins.shape[2], outs.shape[2]
    kh, kw = (int(v) for v in layer.kernel)
    expected = {
        "conv2d": (cout, kh, kw, cin),
        "depthwise": (kh, kw, cin),
        "pointwise": (cout, cin),
        "fc": (cout, cin),
    }[layer.op]
    if layer.op == "depthwise" and cin != cout:
        raise ConfigError(f"layer {layer.name!r}: depthwise needs equal in/out channels, got {cin} -> {cout}")
    if layer.op in ("pointwise", "fc") and (kh, kw) != (1, 1):
        raise ConfigError(f"layer {layer.name!r}: {layer.op} needs kernel (1, 1), got {layer.kernel}")
    if layer.op in ("pointwise", "fc") and any(int(p) for p in layer.padding):
        raise ConfigError(f"layer {layer.name!r}: {layer.op} takes no padding, got {layer.padding}")
    if layer.op == "fc":
        if tuple(ins.shape[:2]) != (1, 1) or tuple(outs.shape[:2]) != (1, 1):
            raise ConfigError(
                f"layer {layer.name!r}: fc needs (1, 1, C) input and output, got {ins.shape} -> {outs.shape}"
            )
        if int(layer.stride) != 1:
            raise ConfigError(f"layer {layer.name!r}: fc needs stride 1, got {layer.stride}")
    if tuple(w.shape) != expected:
        raise ConfigError(
            f"layer {layer.name!r} ({layer.op}): weight shape {tuple(w.shape)}, expected {expected}"
        )
    if w.size and not np.issubdtype(w.dtype, np.integer):
        raise ConfigError(f"layer {layer.name!r}: weights must be integers, got dtype {w.dtype}")
    lo, hi = wrange(layer.w_bits)
    if w.size and (int(w.min()) < lo or int(w.max()) > hi):
        raise ConfigError(
            f"layer {layer.name!r}: weight values [{int(w.min())}, {int(w.max())}] outside the {layer.w_bits}-bit "
            f"narrow range [{lo}, {hi}]"
        )
    _check_geometry(layer, ins, outs)
    bias = _int_array(layer, "bias", layer.bias, cout, *_I32)
    _int_array(layer, "multiplier", layer.multiplier, cout, *_I32)
    _int_array(layer, "shift", layer.shift, cout, -31, 31)
    # the C kernels accumulate in int32: the worst case over any input must not overflow
    amax = max(abs(v - ins.zero_point) for v in qrange(ins.bits))
    wabs = np.abs(w.astype(np.int64))
    per_out = wabs.sum(axis=tuple(range(1, w.ndim))) if layer.op != "depthwise" else wabs.sum(axis=(0, 1))
    worst = np.abs(bias) + per_out * amax
    if worst.max(initial=0) > _I32[1]:
        raise ConfigError(
            f"layer {layer.name!r}: the int32 accumulator can overflow (worst case {worst.max()})"
        )


def check_layer(model: IntModel, layer: IntLayer) -> None:
    """One layer against its tensors (op, bit-widths, shapes, parameter ranges)."""
    if layer.op not in OPS:
        raise UnsupportedLayerError(
            f"layer {layer.name!r}: unknown op {layer.op!r} (supported: {', '.join(OPS)})"
        )
    n_in = 2 if layer.op == "add" else 1
    if len(layer.inputs) != n_in:
        raise ConfigError(
            f"layer {layer.name!r} ({layer.op}): needs {n_in} input(s), got {len(layer.inputs)}"
        )
    for t in [*layer.inputs, layer.output]:
        if t not in model.tensors:
            raise ConfigError(f"layer {layer.name!r}: unknown tensor {t!r}")
    ins, outs = model.in_spec(layer), model.out_spec(layer)
    lo, hi = qrange(outs.bits)
    if not lo <= int(layer.act_min) <= int(layer.act_max) <= hi:
        raise ConfigError(
            f"layer {layer.name!r}: clamp [{layer.act_min}, {layer.act_max}] must be ordered and inside the "
            f"{outs.bits}-bit output range [{lo}, {hi}]"
        )
    if layer.op in WEIGHTED_OPS:
        _check_weighted(model, layer)
    elif layer.op == "add":
        in2 = model.in_spec(layer, 1)
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
            if not _I32[0] <= m <= _I32[1]:
                raise ConfigError(f"layer {layer.name!r}: add {nm}_multiplier {m} is not an int32")
            if not -31 <= s <= 31:
                raise ConfigError(f"layer {layer.name!r}: add {nm}_shift {s} must be in -31..31")
    else:  # avgpool
        if ins.shape[2] != outs.shape[2]:
            raise ConfigError(
                f"layer {layer.name!r}: avgpool keeps channels, got {ins.shape[2]} -> {outs.shape[2]}"
            )
        if any(int(p) for p in layer.padding):
            raise ConfigError(f"layer {layer.name!r}: avgpool takes no padding, got {layer.padding}")
        _check_geometry(layer, ins, outs)
        _int_array(layer, "multiplier", layer.multiplier, 1, *_I32)
        _int_array(layer, "shift", layer.shift, 1, -31, 31)
        # window sum of centred values must fit int32 too
        if int(layer.kernel[0]) * int(layer.kernel[1]) * 255 > _I32[1]:
            raise ConfigError(f"layer {layer.name!r}: avgpool window {layer.kernel} too large")


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
