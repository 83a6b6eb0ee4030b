"""Activation-memory accounting by tensor liveness, over LayerSpec lists (pure functions).

The rule (the same one ``harness.memory.arena.plan_arena`` applies to the integer model): layers run in list
order, one *step* each; a tensor occupies SRAM from the step that produces it (the network input: from the
first step) up to and including the step of its last consumer (a tensor nobody reads, such as the network
output, until the last step). The peak is the maximum over steps of the summed bytes of the live tensors. A
tensor of shape ``(H, W, C)`` at ``b`` bits takes ``H * W * ceil(C * b / 8)`` bytes (packed, every pixel's
channel row byte-aligned, as ``harness.ir.model``).

:class:`MemoryRule` can switch on two buffer-sharing tricks of TinyEngine (MCUNet's runtime), which the MCUNet
papers assume when they quote peak memory:

* ``inplace_depthwise``: a depthwise layer whose input dies at it writes its output over that input (channel
  by channel, with a one-channel scratch buffer that this accounting ignores): the step costs ``max(in, out)``
  instead of ``in + out``.
* ``inplace_residual``: a conv/pointwise layer whose only consumer is the residual ``add`` right after it is
  fused with that add, and the sum is written over the skip tensor when the skip dies there (its output is
  never materialised); an add that cannot be fused writes over whichever of its inputs dies at it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from harness.errors import ConfigError
from harness.graph.spec import INPUT, LayerSpec
from harness.ir.model import BITS


@dataclass(frozen=True)
class MemoryRule:
    """Which buffer-sharing tricks the accounting assumes; the default is plain liveness (no sharing).

    ``resident_input`` concerns patch-based inference only: ``False`` (MCUNetV2's accounting) means each patch
    fetches its own input window into SRAM (the image stays in flash, a camera or a JPEG decoder); ``True``
    means the whole input image sits in SRAM during the entire patch stage and patches read it in place.
    """

    inplace_depthwise: bool = False
    inplace_residual: bool = False
    resident_input: bool = False

    @property
    def name(self) -> str:
        if self == LIVENESS:
            return "liveness"
        if self == TINYENGINE:
            return "tinyengine"
        return (
            f"liveness(inplace_dw={self.inplace_depthwise}, inplace_res={self.inplace_residual}, "
            f"resident_input={self.resident_input})"
        )


LIVENESS = MemoryRule()
TINYENGINE = MemoryRule(inplace_depthwise=True, inplace_residual=True)


@dataclass(frozen=True)
class Step:
    """One execution step: what it reads, the tensor it writes, and the inputs it may overwrite."""

    name: str
    reads: tuple[str, ...]
    writes: str
    overwrite: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()  # the LayerSpecs this step executes (two for a fused conv + add)


def row_bytes(channels: int, bits: int) -> int:
    """Bytes of one packed, byte-aligned pixel row of ``channels`` values at ``bits`` bits."""
    return (channels * bits + 7) // 8


def tensor_bytes(h: int, w: int, channels: int, bits: int) -> int:
    """Bytes of an ``(h, w, channels)`` activation in packed storage."""
    return h * w * row_bytes(channels, bits)


def tensor_bits(layers: Sequence[LayerSpec], bits: int | Mapping[str, int] = 8) -> dict[str, int]:
    """Bit-width of every activation tensor, keyed by producer name (``"input"`` for the network input).

    ``bits`` is one width for all tensors, or a mapping from tensor name to width in which missing tensors are
    8-bit. Unknown names and widths outside {2, 4, 8} are errors (a typo must not silently mean 8 bits).
    """
    names = [INPUT] + [layer.name for layer in layers]
    if isinstance(bits, Mapping):
        unknown = sorted(set(bits) - set(names))
        if unknown:
            raise ConfigError(
                f"bit-widths given for unknown tensors {unknown}; tensors are named after their "
                f"producing layer, or {INPUT!r}"
            )
        out = {n: int(bits.get(n, 8)) for n in names}
    else:
        out = {n: int(bits) for n in names}
    bad = {n: b for n, b in out.items() if b not in BITS}
    if bad:
        raise ConfigError(f"activation bit-widths must be in {BITS}, got {bad}")
    return out


def bits_from_config(layers: Sequence[LayerSpec], a_bits: Mapping[str, tuple[int, int]]) -> dict[str, int]:
    """Tensor bit-widths implied by a precision configuration ``{layer: (a_bits, w_bits)}``.

    A layer's ``a_bits`` is the precision of the tensor it reads; a tensor read by several layers (a residual
    skip) carries one precision, so it takes the widest any configured reader asks for; tensors no configured
    layer reads (those only read by adds, the network output) stay 8-bit.
    """
    out: dict[str, int] = {}
    for layer in layers:
        if layer.name in a_bits:
            a = int(a_bits[layer.name][0])
            for src in layer.inputs:
                out[src] = max(out.get(src, 0), a)
    return tensor_bits(layers, out)


def build_steps(layers: Sequence[LayerSpec], rule: MemoryRule = LIVENESS) -> list[Step]:
    """Group layers into execution steps under ``rule`` (fusing conv + residual add when it asks to)."""
    readers: dict[str, list[int]] = {}
    for i, layer in enumerate(layers):
        for src in layer.inputs:
            readers.setdefault(src, []).append(i)
    steps: list[Step] = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if (
            rule.inplace_residual
            and nxt is not None
            and nxt.op == "add"
            and len(nxt.inputs) == 2
            and layer.op in ("conv2d", "pointwise")
            and readers.get(layer.name) == [i + 1]
        ):
            skip = next((s for s in nxt.inputs if s != layer.name), None)
            # a conv that reads the skip itself cannot overwrite it while it still slides over it
            if skip is not None and skip not in layer.inputs:
                steps.append(
                    Step(
                        f"{layer.name}+{nxt.name}",
                        tuple(layer.inputs) + (skip,),
                        nxt.name,
                        (skip,),
                        (layer.name, nxt.name),
                    )
                )
                i += 2
                continue
        overwrite: tuple[str, ...] = ()
        if rule.inplace_depthwise and layer.op == "depthwise":
            overwrite = (layer.inputs[0],)
        elif rule.inplace_residual and layer.op == "add":
            overwrite = tuple(layer.inputs)
        steps.append(Step(layer.name, tuple(layer.inputs), layer.name, overwrite, (layer.name,)))
        i += 1
    return steps


@dataclass(frozen=True)
class PeakReport:
    """Result of a liveness sweep: the peak, where it happens, and the bytes live at every step."""

    peak: int
    step: str  # name of the step at the peak
    per_step: tuple[int, ...]
    live_at_peak: tuple[str, ...]


def peak_memory(
    steps: Sequence[Step], sizes: Mapping[str, int], initial: Iterable[str] = (INPUT,)
) -> PeakReport:
    """Peak live bytes of ``steps`` (see the module docstring for the rule).

    ``sizes`` gives every tensor's bytes (a tensor that lives elsewhere, e.g. in a shared buffer, can be 0);
    ``initial`` are the tensors live before the first step.
    """
    if not steps:
        raise ConfigError("no layers to account for")
    born: dict[str, int] = {t: 0 for t in initial}
    last: dict[str, int] = {}
    for i, st in enumerate(steps):
        for t in st.reads:
            if t not in born:
                raise ConfigError(f"step {st.name!r} reads {t!r}, which no earlier layer produces")
            last[t] = i
        if st.writes in born:
            raise ConfigError(f"tensor {st.writes!r} is produced twice")
        born[st.writes] = i
    # a tensor nobody reads is a network output (or, in a patch, lives in a shared buffer): keep it to the end
    end = len(steps) - 1
    for t in born:
        last.setdefault(t, end)
    per_step: list[int] = []
    best, best_i, best_live = -1, 0, ()
    for i, st in enumerate(steps):
        live = [t for t in born if born[t] <= i <= last[t]]
        total = sum(sizes[t] for t in live)
        dying = [t for t in st.overwrite if last[t] == i and t != st.writes]
        if dying:
            victim = max(dying, key=lambda t: sizes[t])
            total += max(sizes[victim], sizes[st.writes]) - sizes[victim] - sizes[st.writes]
        per_step.append(total)
        if total > best:
            best, best_i, best_live = total, i, tuple(live)
    return PeakReport(best, steps[best_i].name, tuple(per_step), best_live)


def input_bytes(layers: Sequence[LayerSpec], bits: int) -> int:
    """Bytes of the network input (the ``in_shape`` of the first layer that reads it)."""
    first = next((layer for layer in layers if INPUT in layer.inputs), None)
    if first is None:
        raise ConfigError(f"no layer reads the network input {INPUT!r}")
    return tensor_bytes(*first.in_shape, bits)


def layer_by_layer_peak(
    layers: Sequence[LayerSpec], bits: int | Mapping[str, int] = 8, rule: MemoryRule = LIVENESS
) -> PeakReport:
    """Peak activation SRAM of running ``layers`` one after another on whole tensors."""
    tb = tensor_bits(layers, bits)
    sizes = {INPUT: input_bytes(layers, tb[INPUT])}
    for layer in layers:
        sizes[layer.name] = tensor_bytes(*layer.out_shape, tb[layer.name])
    return peak_memory(build_steps(layers, rule), sizes)
