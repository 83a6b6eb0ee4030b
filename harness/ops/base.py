"""What every operator defines (:class:`OpDef`) and the helpers the window operators share.

An operator is one module in this package that defines an :class:`OpDef` subclass: its IR kind, whether it has
weights (and their layout), its MAC and parameter formulas, its checks on an :class:`~harness.ir.model.IntLayer`,
its numpy integer reference kernel (TFLite semantics, exact), the C kernel it runs on the board, and the extra
fields the code generator writes into its ``th_layer_t``. Nothing outside ``harness.ops`` compares op strings
for these facts: a new operator is one Python module here and one C file under ``firmware/runtime/kernels``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from harness.errors import ConfigError
from harness.ir.model import BITS, IntLayer, IntModel, TensorSpec, qrange, wrange
from harness.ir.requant import mbqm, wrap_int32

Shape3 = tuple[int, int, int]
I32 = (-(1 << 31), (1 << 31) - 1)
#: Kernel variants: ``opt`` (the optimised kernels), ``ref`` (the plain int8 loops, a8w8 only).
VARIANTS = ("opt", "ref")
_EXACT = float(1 << 52)


class OpDef:
    """One operator. Subclasses set the class attributes and override what differs from the defaults."""

    kind: ClassVar[str]
    c_enum: ClassVar[str]
    weighted: ClassVar[bool] = False
    n_inputs: ClassVar[int] = 1
    #: constant arrays the layer table points at (``weights``, ``bias``, ``mult``, ``shift``)
    arrays: ClassVar[tuple[str, ...]] = ()

    # ---- shape level (LayerSpec and IntLayer alike)
    def macs(self, in_shape: Shape3, out_shape: Shape3, kernel: tuple[int, int]) -> int:
        """Multiply-accumulates (adds count one op per output element, pools one per window tap)."""
        oh, ow, oc = out_shape
        return oh * ow * oc

    def params(self, in_shape: Shape3, out_shape: Shape3, kernel: tuple[int, int]) -> int:
        """Weight count (without bias)."""
        return 0

    def weight_shape(self, in_shape: Shape3, out_shape: Shape3, kernel: tuple[int, int]) -> tuple[int, ...]:
        """The IR weight layout (innermost dimension = packed row); () for operators without weights."""
        return ()

    def requant_bytes(self, out_channels: int) -> int:
        """Flash bytes of the requantization constants (per-channel multiplier/shift, add parameters)."""
        return 0

    # ---- integer layer level
    def check(self, model: IntModel, layer: IntLayer) -> None:
        """ConfigError naming the layer when it does not fit this operator's rules (shapes, parameters)."""

    def reference(self, model: IntModel, layer: IntLayer, values: dict[str, np.ndarray]) -> np.ndarray:
        """The layer's output values (unpacked int8) from its inputs' values: the numpy integer reference."""
        raise NotImplementedError

    def kernel_symbol(self, a_bits: int, w_bits: int, variant: str = "opt") -> str:
        """The C kernel the layer table points at."""
        return f"th_{self.kind}"

    def c_fields(self, layer: IntLayer) -> dict[str, int]:
        """Operator-specific ``th_layer_t`` fields (beyond geometry, tensors and constant arrays)."""
        return {}


class WeightedOp(OpDef):
    """A conv/linear operator: weights, bias and per-channel requantization; kernels per (a, w) pair."""

    weighted = True
    arrays = ("weights", "bias", "mult", "shift")

    def params(self, in_shape: Shape3, out_shape: Shape3, kernel: tuple[int, int]) -> int:
        return int(np.prod(self.weight_shape(in_shape, out_shape, kernel)))

    def requant_bytes(self, out_channels: int) -> int:
        return 8 * out_channels

    def kernel_symbol(self, a_bits: int, w_bits: int, variant: str = "opt") -> str:
        if variant not in VARIANTS:
            raise ConfigError(f"kernel variant must be one of {VARIANTS}, got {variant!r}")
        if variant == "ref" and (a_bits, w_bits) == (8, 8):
            return f"th_{self.kind}_ref"
        return f"th_{self.kind}_a{a_bits}w{w_bits}"

    def check(self, model: IntModel, layer: IntLayer) -> None:
        ins, outs = model.in_spec(layer), model.out_spec(layer)
        if layer.w_bits not in BITS:
            raise ConfigError(f"layer {layer.name!r}: w_bits={layer.w_bits!r} not in {BITS}")
        if layer.weight is None:
            raise ConfigError(f"layer {layer.name!r} ({layer.op}): missing weight")
        self.check_shapes(layer, ins, outs)
        w = np.asarray(layer.weight)
        expected = self.weight_shape(tuple(ins.shape), tuple(outs.shape), tuple(layer.kernel))
        if tuple(w.shape) != expected:
            raise ConfigError(
                f"layer {layer.name!r} ({layer.op}): weight shape {tuple(w.shape)}, expected {expected}"
            )
        check_weight_values(layer, w)
        check_geometry(layer, ins, outs)
        cout = outs.shape[2]
        bias = int_array(layer, "bias", layer.bias, cout, *I32)
        int_array(layer, "multiplier", layer.multiplier, cout, *I32)
        int_array(layer, "shift", layer.shift, cout, -31, 31)
        # the C kernels accumulate in int32: the worst case over any input must not overflow
        amax = max(abs(v - ins.zero_point) for v in qrange(ins.bits))
        worst = np.abs(bias) + self.abs_weight_sums(w) * amax
        if worst.max(initial=0) > I32[1]:
            raise ConfigError(
                f"layer {layer.name!r}: the int32 accumulator can overflow (worst case {worst.max()})"
            )

    def check_shapes(self, layer: IntLayer, ins: TensorSpec, outs: TensorSpec) -> None:
        """Operator-specific shape rules (channels, kernel, padding) checked before the weight shape."""

    def abs_weight_sums(self, w: np.ndarray) -> np.ndarray:
        """Sum of |w| per output channel (the accumulator bound)."""
        return np.abs(w.astype(np.int64)).sum(axis=tuple(range(1, w.ndim)))

    def reference(self, model: IntModel, layer: IntLayer, values: dict[str, np.ndarray]) -> np.ndarray:
        ins, outs = model.in_spec(layer), model.out_spec(layer)
        acc = self.accumulate(layer, values[layer.inputs[0]], ins.zero_point)
        return requantize(acc, layer.multiplier, layer.shift, outs.zero_point, layer.act_min, layer.act_max)

    def accumulate(self, layer: IntLayer, x: np.ndarray, in_zp: int) -> np.ndarray:
        """int32 accumulators ``(OH, OW, Cout)`` (bias included) of the layer on input values ``x``."""
        raise NotImplementedError


# ------------------------------------------------------------------------------------------ shared checks


def out_size(size: int, k: int, stride: int, pad_before: int, pad_after: int) -> int:
    """Output length of a sliding window (floor mode), as the C kernels compute it."""
    return (size + pad_before + pad_after - k) // stride + 1


def int_array(layer: IntLayer, what: str, arr, n: int, lo: int, hi: int) -> np.ndarray:
    """``arr`` as int64 after checking presence, integer dtype, length ``n`` and range (ConfigError)."""
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


def check_weight_values(layer: IntLayer, w: np.ndarray) -> None:
    """Integer weights inside the symmetric narrow range of ``layer.w_bits``."""
    if w.size and not np.issubdtype(w.dtype, np.integer):
        raise ConfigError(f"layer {layer.name!r}: weights must be integers, got dtype {w.dtype}")
    lo, hi = wrange(layer.w_bits)
    if w.size and (int(w.min()) < lo or int(w.max()) > hi):
        raise ConfigError(
            f"layer {layer.name!r}: weight values [{int(w.min())}, {int(w.max())}] outside the {layer.w_bits}-bit "
            f"narrow range [{lo}, {hi}]"
        )


def check_geometry(layer: IntLayer, ins: TensorSpec, outs: TensorSpec) -> None:
    """Kernel, stride and padding in the firmware's ranges, and the output size they give."""
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
    oh, ow = out_size(h, kh, s, pt, pb), out_size(w, kw, s, pl, pr)
    if (oh, ow) != tuple(outs.shape[:2]):
        raise ConfigError(
            f"layer {layer.name!r} ({layer.op}): input {ins.shape} with kernel {layer.kernel}, stride {s}, "
            f"padding {layer.padding} gives {oh}x{ow} pixels, but output tensor {outs.name!r} is "
            f"{outs.shape[0]}x{outs.shape[1]}"
        )


def check_no_padding(layer: IntLayer) -> None:
    if any(int(p) for p in layer.padding):
        raise ConfigError(f"layer {layer.name!r}: {layer.op} takes no padding, got {layer.padding}")


# ------------------------------------------------------------------------------------------ reference helpers


def exact_limit(k: int, x: np.ndarray, w: np.ndarray) -> None:
    """ConfigError unless ``k`` products of ``x`` and ``w`` sum exactly in float64 (BLAS accumulation)."""
    xm = float(np.abs(x).max()) if x.size else 0.0
    wm = float(np.abs(w).max()) if w.size else 0.0
    if k * xm * wm >= _EXACT:
        raise ConfigError(f"accumulation of {k} products of |x|<={xm}, |w|<={wm} exceeds exact float64 range")


def as_hwc(x: np.ndarray, name: str = "x") -> np.ndarray:
    """``x`` as an int64 ``(H, W, C)`` array (ConfigError otherwise)."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise ConfigError(f"{name} must be an (H, W, C) array, got shape {x.shape}")
    return x.astype(np.int64)


def requantize(
    acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray, out_zp: int, act_min: int, act_max: int
) -> np.ndarray:
    """``clamp(out_zp + MultiplyByQuantizedMultiplier(acc, m, s), act_min, act_max)``, per channel (last axis)."""
    out = mbqm(wrap_int32(acc), multiplier, shift) + int(out_zp)
    # exact in int64; the C code clamps mbqm to [lo - zp, hi - zp] first, which is the same function
    return np.clip(out, act_min, act_max).astype(np.int8)


def taps(xp: np.ndarray, kh: int, kw: int, stride: int, oh: int, ow: int):
    """Yield ``(i, j, view)``: the input samples each output pixel sees at kernel tap (i, j)."""
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride, :]


def prepared(op: str, x, kh: int, kw: int, cin: int, in_zp: int, stride: int, padding):
    """``x - in_zp`` zero-padded (padded taps contribute nothing) and the output size of a window op."""
    x = as_hwc(x)
    if x.shape[2] != cin:
        raise ConfigError(f"{op}: input has {x.shape[2]} channels, weights expect {cin}")
    pt, pl, pb, pr = padding
    xp = np.pad(x - int(in_zp), ((pt, pb), (pl, pr), (0, 0)))
    oh = out_size(x.shape[0], kh, stride, padding[0], padding[2])
    ow = out_size(x.shape[1], kw, stride, padding[1], padding[3])
    if oh <= 0 or ow <= 0:
        raise ConfigError(f"{op}: kernel {kh}x{kw} larger than padded input {xp.shape[:2]}")
    return xp, oh, ow
