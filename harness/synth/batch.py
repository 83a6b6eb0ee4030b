"""Profiling batches: many layer variants in one firmware image, so a handful of builds covers a latency table.

A *variant* is one table entry ``(layer_key, a_bits, w_bits, o_bits)`` with the layer shape it stands for. A batch
image is an :class:`~harness.ir.model.IntModel` that runs every variant as its own layer writing its own output:

* one 8-bit input tensor ``x`` of shape ``(H0, W0, C0)`` (``H0``/``W0`` the largest input size among the layers
  being profiled), loaded over serial, random for every repeat;
* per input size ``(H, W)`` smaller than ``x``, a *resize* layer (an average pool with stride ``H0 // H``) that
  brings ``x`` to that size;
* per *feed* ``(H, W, C, a_bits, signedness of each input)`` a *source* layer (an 8-bit 3x3 conv of the resized tensor, written at
  ``a_bits``) that generates the input tensor every variant of that feed reads; an add has a second source;
* the variants, each reading its feed: a weighted variant has Gaussian float weights (trained weights' largest
  magnitude is 2-3 standard deviations per output channel, as a Gaussian's) quantized and calibrated by the
  deployment's own rules (:func:`calibrated_weighted_layer`): per-channel max scaling at ``w_bits``, the output
  range from the float outputs on the values it will see (``[0, max]`` after a ReLU), the multipliers
  ``s_in * s_w / s_out``. Those parameters select the kernels' specialisations (all shifts negative, a
  full-range clamp), so a variant takes the path the deployed layer takes. A feed read after a ReLU in the
  network holds unsigned values (zero point at the bottom of the range), as the deployed tensor does.

Every random draw is seeded by what it builds (the entry, the feed, the size), never by its place in the image: a
variant measures the same whichever image it lands in, so a resumed profile reproduces an uninterrupted one.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from harness import ops
from harness.errors import ConfigError
from harness.graph.spec import LayerSpec
from harness.ir.model import IntLayer, IntModel, TensorSpec, qrange
from harness.ir.requant import quantize_multiplier
from harness.memory.budget import layer_param_bytes
from harness.reference.run import run_layer
from harness.synth.random_model import (
    make_add_layer,
    make_avgpool_layer,
    make_weighted_layer,
    random_input,
)
from harness.table.lut import Entry

#: Version of how a variant is built (its parameters select the kernel's specialisation, so they are part of
#: what a row's count means); part of the measurement target, so rows of another version are measured again.
#: 2: ReLU6 variants clamp at the top of the range, as a calibrated network's ReLU6 layers do.
#: 3: weighted variants and feeds quantized and calibrated as deployed layers are (heavy-tailed ranges, unsigned
#: feeds after a ReLU).
BATCH_MODEL_VERSION = 3

#: Range over standard deviation of a trained network's activation tensors as calibration finds them (min/max over
#: the calibration images): heavy tails put the range far beyond the bulk of the values, so the integer values
#: crowd around the zero point and the multipliers ``s_in * s_w / s_out`` are larger than a Gaussian's 6-sigma
#: range gives (which decides the kernels' specialisation). Measured on mbv2-w0.35 (Fashion-MNIST, 256 images):
#: 9.1-11.5 after ReLU6 (range 6.0), 10.5-16.5 after a projection or an add (median 12.3).
CREST_RELU = 10.0
CREST_SIGNED = 12.5

#: Channels of the batch input tensor. One keeps the serial load short (about 5 kB/s on QEMU's UART); the
#: sources' 3x3 convolutions still give every channel of a feed its own spatial filter of it.
INPUT_CHANNELS = 1

Feed = tuple[int, int, int, int, tuple[bool, ...]]  # (H, W, C, a_bits, per input: unsigned)


@dataclass(frozen=True)
class Variant:
    """One table entry to measure and the layer shape that defines it."""

    entry: Entry
    spec: LayerSpec
    unsigned_input: tuple[bool, ...] = ()  # per input: a ReLU's output in the network (zero point at the bottom)

    @property
    def feed(self) -> Feed:
        h, w, c = self.spec.in_shape
        flags = tuple(self.unsigned_input) + (False,) * (self.n_sources - len(self.unsigned_input))
        return h, w, c, self.entry[1], flags[: self.n_sources]

    @property
    def n_sources(self) -> int:
        return 2 if self.spec.op == "add" else 1


def unsigned_inputs(layers: Sequence[LayerSpec]) -> dict[str, tuple[bool, ...]]:
    """Per layer, per input: whether the tensor it reads holds a ReLU's output (unsigned, zero point at the bottom
    of the range); an average pool passes its input's signedness on, an add without activation is signed."""
    by_name = {s.name: s for s in layers}

    def unsigned(t: str) -> bool:
        s = by_name.get(t)
        if s is None:  # the network input
            return False
        if s.activation in ("relu", "relu6"):
            return True
        return s.op == "avgpool" and unsigned(s.inputs[0])

    return {s.name: tuple(unsigned(t) for t in s.inputs) for s in layers}


def seeded(seed: int, *what: object) -> np.random.Generator:
    """A generator that depends only on ``seed`` and on what is being drawn."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(repr(what).encode())])


def batch_input_shape(specs: Sequence[LayerSpec], channels: int = INPUT_CHANNELS) -> tuple[int, int, int]:
    """``(H0, W0, C0)``: the largest input height and width among ``specs``."""
    if not specs:
        raise ConfigError("no layers to profile")
    return max(s.in_shape[0] for s in specs), max(s.in_shape[1] for s in specs), int(channels)


def resize_geometry(h0: int, w0: int, h: int, w: int) -> tuple[tuple[int, int], int]:
    """Window and stride of the average pool that takes an ``h0 x w0`` tensor to ``h x w`` (no padding)."""
    if h > h0 or w > w0 or h < 1 or w < 1:
        raise ConfigError(f"cannot resize a {h0}x{w0} batch input to {h}x{w}")
    s = max(1, min(h0 // h, w0 // w))
    return (h0 - s * (h - 1), w0 - s * (w - 1)), s


@dataclass
class BatchModel:
    """A batch image's model, where each variant's layer is, and the calibration input used to build it."""

    model: IntModel
    variant_layers: list[int]  # index into model.layers of each variant, in the order given
    variants: list[Variant]
    input_shape: tuple[int, int, int]
    meta: dict = field(default_factory=dict)


def group_by_feed(variants: Sequence[Variant]) -> list[list[Variant]]:
    """Variants grouped by the input tensor they read, groups in first-appearance order."""
    groups: dict[Feed, list[Variant]] = {}
    for v in variants:
        groups.setdefault(v.feed, []).append(v)
    return list(groups.values())


def build_batch_model(
    variants: Sequence[Variant], input_shape: tuple[int, int, int], *, seed: int = 0, name: str = "profile"
) -> BatchModel:
    """The integer model that runs every variant once (see the module docstring)."""
    if not variants:
        raise ConfigError("a profiling batch needs at least one variant")
    h0, w0, c0 = input_shape
    x = TensorSpec("x", (h0, w0, c0), 8, scale=1.0 / 128, zero_point=0)
    tensors: dict[str, TensorSpec] = {"x": x}
    values: dict[str, np.ndarray] = {"x": random_input(x, seeded(seed, "calibration-input", input_shape))}
    layers: list[IntLayer] = []

    def add(layer: IntLayer, out: TensorSpec) -> TensorSpec:
        layers.append(layer)
        tensors[out.name] = out
        values[out.name] = run_layer(IntModel(tensors, [], "x", out.name), layer, values)
        return out

    resized: dict[tuple[int, int], TensorSpec] = {}
    index: dict[int, int] = {}
    order = {id(v): i for i, v in enumerate(variants)}
    for group in group_by_feed(variants):
        h, w, c, a, flags = group[0].feed
        if (h, w) == (h0, w0):
            base = x
        elif (h, w) in resized:
            base = resized[(h, w)]
        else:
            kernel, stride = resize_geometry(h0, w0, h, w)
            layer, out = make_avgpool_layer(
                f"r{h}x{w}",
                x,
                f"r{h}x{w}",
                o_bits=8,
                kernel=kernel,
                stride=stride,
                x_values=values["x"],
                rng=seeded(seed, "resize", input_shape, h, w),
            )
            base = resized[(h, w)] = add(layer, out)
        sources = []
        for j in range(max(v.n_sources for v in group)):
            unsigned = flags[j]
            nm = f"s{h}x{w}x{c}a{a}{''.join('u' if f else 's' for f in flags)}_{j}"
            layer, out = calibrated_weighted_layer(
                nm,
                "conv2d",
                base,
                nm,
                w_bits=8,
                o_bits=a,
                cout=c,
                kernel=(3, 3),
                stride=1,
                padding="same",
                act="relu" if unsigned else None,
                x_values=values[base.name],
                rng=seeded(seed, "source", h, w, c, a, j, flags),
            )
            sources.append(add(layer, out))
        for v in group:
            k = order[id(v)]
            layer, out = variant_layer(v, k, sources, values, seed)
            if tuple(out.shape) != tuple(v.spec.out_shape):
                raise ConfigError(
                    f"profiling {v.entry[0]!r}: the generated layer writes {out.shape}, expected {v.spec.out_shape}"
                    " (kernel/stride/padding do not reproduce the traced shape)"
                )
            index[k] = len(layers)
            add(layer, out)
    model = IntModel(tensors, layers, "x", layers[-1].output, name=name)
    return BatchModel(model, [index[i] for i in range(len(variants))], list(variants), tuple(input_shape))


def variant_layer(
    v: Variant, k: int, sources: list[TensorSpec], values: dict[str, np.ndarray], seed: int
) -> tuple[IntLayer, TensorSpec]:
    """The layer of variant ``v`` (``k``: its number in the batch) reading its feed's sources."""
    s, (key, _a, w_bits, o_bits) = v.spec, v.entry
    rng = seeded(seed, "variant", v.entry)
    name, out = f"v{k}", f"y{k}"
    src = sources[0]
    if s.op == "add":
        return make_add_layer(
            name,
            src,
            sources[1],
            out,
            o_bits=o_bits,
            act=s.activation,
            a_values=values[src.name],
            b_values=values[sources[1].name],
            rng=rng,
        )
    if s.op == "avgpool":
        return make_avgpool_layer(
            name,
            src,
            out,
            o_bits=o_bits,
            kernel=tuple(s.kernel),
            stride=s.stride,
            x_values=values[src.name],
            rng=rng,
        )
    if not s.has_weights:
        raise ConfigError(f"cannot profile layer {key!r}: unknown op {s.op!r}")
    return calibrated_weighted_layer(
        name,
        s.op,
        src,
        out,
        w_bits=w_bits,
        o_bits=o_bits,
        cout=s.out_shape[2],
        kernel=tuple(s.kernel),
        stride=s.stride,
        padding=tuple(s.padding),
        act=s.activation,
        x_values=values[src.name],
        rng=rng,
    )


def _channel_axes(op: str, ndim: int) -> tuple[int, ...]:
    """Axes a weight array is reduced over per output channel (depthwise: ``(Kh, Kw, C)``, channels last)."""
    return (0, 1) if op == "depthwise" else tuple(range(1, ndim))


def calibrated_weighted_layer(
    name: str,
    op: str,
    x: TensorSpec,
    out_name: str,
    *,
    w_bits: int,
    o_bits: int,
    cout: int,
    kernel: tuple[int, int],
    stride: int,
    padding: tuple[int, int, int, int] | str,
    act: str | None,
    x_values: np.ndarray,
    rng: np.random.Generator,
) -> tuple[IntLayer, TensorSpec]:
    """A conv2d/depthwise/pointwise/fc layer reading ``x`` whose integer parameters are made as
    :mod:`harness.quant` makes a trained layer's (see the module docstring).

    Float weights ``N(0, 1)``, per output channel ``s_w = max|w| / (2**(w_bits-1) - 1)``; the float bias centres
    each channel (after a ReLU, about 70 % of the pre-activations positive); the output range is
    :data:`CREST_RELU` standard deviations of the float outputs on ``x_values`` after a ReLU or ReLU6 (from 0),
    :data:`CREST_SIGNED` otherwise (centred), ``s_out = range / (2**o_bits - 1)``; multipliers
    ``s_in * s_w / s_out``; the clamp is the calibrated network's (:func:`harness.quant.numerics.act_clamp`: a
    ReLU6 whose calibrated range ends at or below 6 clamps at the top of the range, as a ReLU does).
    """
    template, out = make_weighted_layer(
        name, op, x, out_name, w_bits=w_bits, o_bits=o_bits, cout=cout, kernel=kernel, stride=stride,
        padding=padding, act=act, x_values=x_values, rng=rng,
    )  # fmt: skip
    wmax = (1 << (w_bits - 1)) - 1
    wf = rng.standard_normal(template.weight.shape)
    axes = _channel_axes(op, wf.ndim)
    s_w = np.abs(wf).max(axis=axes) / wmax
    bshape = (1, 1, -1) if op == "depthwise" else (-1,) + (1,) * (wf.ndim - 1)
    weight = np.clip(np.round(wf / s_w.reshape(bshape)), -wmax, wmax).astype(np.int8)
    unbiased = IntLayer(
        name, op, list(template.inputs), out_name, kernel=template.kernel, stride=template.stride,
        padding=template.padding, weight=weight, w_bits=w_bits, bias=np.zeros(out.shape[2], np.int32),
    )  # fmt: skip
    acc = ops.get(op).accumulate(unbiased, np.asarray(x_values), x.zero_point).astype(np.float64)
    real = acc.reshape(-1, out.shape[2]) * (x.scale * s_w)
    relu = act in ("relu", "relu6")
    # per-channel moments; a layer with a few output pixels (a classifier) takes the tensor's
    mean, std = (real.mean(axis=0), real.std(axis=0)) if len(real) >= 4 else (real.mean(), real.std())
    b_real = -mean + std * ((0.5 if relu else 0.0) + rng.normal(0.0, 0.2, out.shape[2]))
    y = real + b_real
    lo_q, hi_q = qrange(o_bits)
    if relu:
        lo, hi = 0.0, CREST_RELU * float(np.maximum(y, 0.0).std())
    else:
        mid, half = float(y.mean()), CREST_SIGNED / 2 * float(y.std())
        lo, hi = min(mid - half, 0.0), max(mid + half, 0.0)
    # a few pixels can leave a ReLU output all zero: keep the range at least a tenth of the float outputs' spread
    spread = max(float(np.abs(real).max()), float(x.scale * s_w.max()))
    s_out = max(hi - lo, 0.1 * spread) / ((1 << o_bits) - 1)
    zp = lo_q if relu else int(np.clip(lo_q - round(lo / s_out), lo_q, hi_q))
    pairs = [quantize_multiplier(float(m)) for m in x.scale * s_w / s_out]
    layer = IntLayer(
        name, op, list(template.inputs), out_name, kernel=template.kernel, stride=template.stride,
        padding=template.padding, weight=weight, w_bits=w_bits,
        bias=np.round(b_real / (x.scale * s_w)).astype(np.int32),
        multiplier=np.array([m for m, _ in pairs], np.int32), shift=np.array([e for _, e in pairs], np.int32),
        act_min=zp if relu else lo_q, act_max=hi_q, meta={"act": act or "none"},
    )  # fmt: skip
    return layer, TensorSpec(out_name, tuple(out.shape), o_bits, scale=s_out, zero_point=zp)


def repeat_inputs(input_shape: tuple[int, int, int], repeats: int, seed: int = 0) -> list[np.ndarray]:
    """The ``repeats`` random batch inputs (the same for every image of one profile)."""
    x = TensorSpec("x", tuple(input_shape), 8)
    return [random_input(x, seeded(seed, "repeat", tuple(input_shape), r)) for r in range(repeats)]


# --------------------------------------------------------------------------------------------- packing


def _source_bytes(v: Variant) -> int:
    h, w, c = v.spec.in_shape
    return h * w * ((c * v.entry[1] + 7) // 8)


def standalone_arena_bytes(v: Variant) -> int:
    """The least arena any image running ``v`` needs: its source tensor(s) and its output, live together."""
    return _source_bytes(v) * v.n_sources + _out_bytes(v)


def _out_bytes(v: Variant) -> int:
    h, w, c = v.spec.out_shape
    return h * w * ((c * v.entry[3] + 7) // 8)


def _param_bytes(v: Variant) -> int:
    return layer_param_bytes(v.spec, v.entry[2]) if v.spec.has_weights else 0


@dataclass
class ImageBudget:
    """Limits of one batch image: layers (the firmware's table), MACs (emulation time), flash and SRAM bytes."""

    max_layers: int = 200
    max_macs: float = 4e7
    flash_bytes: int | None = None
    sram_bytes: int | None = None


def plan_images(
    variants: Sequence[Variant], input_shape: tuple[int, int, int], budget: ImageBudget
) -> list[list[Variant]]:
    """Split ``variants`` into images within ``budget``; a feed's variants stay together where they fit.

    The byte estimates are conservative (every source and resized tensor counted as live at once); the build
    still checks the real sizes.
    """
    h0, w0, c0 = input_shape
    x_bytes = h0 * w0 * c0
    images: list[list[Variant]] = []
    cur: list[Variant] = []
    state = {"layers": 0, "macs": 0.0, "flash": 0, "sram": x_bytes, "out": 0, "sizes": set(), "feeds": {}}

    def reset() -> None:
        cur.clear()
        state.update(layers=0, macs=0.0, flash=0, sram=x_bytes, out=0, sizes=set(), feeds={})

    def cost(v: Variant) -> dict:
        h, w, c, _a, _u = v.feed
        new_size = (h, w) != (h0, w0) and (h, w) not in state["sizes"]
        new_sources = max(0, v.n_sources - state["feeds"].get(v.feed, 0))  # an add needs a second source
        layers = 1 + int(new_size) + new_sources
        sram = (h * w * c0 if new_size else 0) + _source_bytes(v) * new_sources
        src_macs = h * w * c * c0 * 9 * new_sources
        return {
            "layers": layers,
            "macs": float(v.spec.macs + src_macs),
            "flash": _param_bytes(v) + 64,
            "sram": sram,
            "out": _out_bytes(v),
        }

    def fits(c: dict) -> bool:
        if state["layers"] + c["layers"] > budget.max_layers or state["macs"] + c["macs"] > budget.max_macs:
            return False
        if budget.flash_bytes is not None and state["flash"] + c["flash"] > budget.flash_bytes:
            return False
        need = state["sram"] + c["sram"] + max(state["out"], c["out"])
        return budget.sram_bytes is None or need <= budget.sram_bytes

    for v in (v for g in group_by_feed(variants) for v in g):
        c = cost(v)
        if cur and not fits(c):
            images.append(list(cur))
            reset()
            c = cost(v)
        cur.append(v)
        state["layers"] += c["layers"]
        state["macs"] += c["macs"]
        state["flash"] += c["flash"]
        state["sram"] += c["sram"]
        state["out"] = max(state["out"], c["out"])
        state["sizes"].add(v.feed[:2])
        state["feeds"][v.feed] = max(v.n_sources, state["feeds"].get(v.feed, 0))
    if cur:
        images.append(list(cur))
    return images
