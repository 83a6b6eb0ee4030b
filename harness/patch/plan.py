"""The patch-based inference plan (MCUNetV2): which windows every layer of the patch stage computes per patch.

The *patch stage* is ``layers[0 .. split]``. Its output (the split layer's output, of size ``H x W``) is cut
into ``n x n`` patches by :func:`harness.patch.windows.split_grains`; patches run in row-major order. Walking
the stage backwards from a patch, every layer's output window is the bounding box of what its consumers inside
the stage read, and its input window follows from the receptive-field recursion, clipped to the tensor with
the clipped part turned into zero padding (so only patches on the image border get padding). The rest of the
network runs layer by layer, reading the full stage-output buffer that the patches fill.

Peak SRAM of the patch-based schedule (an actual buffer plan under a :class:`MemoryRule`):

* patch stage: the full stage-output buffer (plus the whole input image if ``rule.resident_input``) + the
  per-patch working set: every stage tensor gets one per-patch buffer sized for its largest window over all
  patches, and these buffers are live per the liveness rule inside one patch (the split layer writes straight
  into the stage-output buffer);
* the rest: layer by layer with the stage-output buffer as its input;
* ``patch_peak = max(stage peak, rest peak)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from harness.errors import ConfigError
from harness.graph.spec import INPUT, LayerSpec
from harness.memory.liveness import (
    LIVENESS,
    MemoryRule,
    PeakReport,
    build_steps,
    input_bytes,
    layer_by_layer_peak,
    peak_memory,
    tensor_bits,
    tensor_bytes,
)
from harness.patch.windows import input_extent, out_size, split_grains

Window = tuple[int, int, int, int]  # h0, h1, w0, w1: half-open rows and columns
Pad = tuple[int, int, int, int]  # top, left, bottom, right

SPATIAL_OPS = ("conv2d", "depthwise", "pointwise", "avgpool", "add")


@dataclass(frozen=True)
class PatchStep:
    """One layer run on one patch: what the firmware patch executor needs.

    ``in_windows[i]`` is the part of producer ``inputs[i]`` this layer reads, in that producer's full-tensor
    coordinates; the producer's per-patch buffer holds ``PatchPlan.windows[inputs[i]][patch]``, which contains
    it (offset = difference of the origins). ``padding`` is the zero border the kernel adds around
    ``in_windows[0]`` (non-zero only at image borders). ``out_window`` is what the layer writes, in its own
    output coordinates.
    """

    layer: str
    op: str
    inputs: tuple[str, ...]
    in_windows: tuple[Window, ...]
    out_window: Window
    padding: Pad
    macs: int

    @property
    def out_hw(self) -> tuple[int, int]:
        h0, h1, w0, w1 = self.out_window
        return h1 - h0, w1 - w0


@dataclass(frozen=True)
class PatchPlan:
    """A patch-based schedule for the first stage of a network and its memory/compute accounting.

    Sizes are in bytes; MACs as ``LayerSpec.macs``. ``schedule[p]`` lists the stage's layers in execution
    order for patch ``p`` (row-major over ``grid_rows x grid_cols``); ``windows[t][p]`` is the window of
    tensor ``t`` (``"input"`` or a stage layer) that patch ``p`` holds.
    """

    split: str
    split_index: int
    n: int
    rule: MemoryRule
    stage: tuple[str, ...]
    grid_rows: tuple[tuple[int, int], ...]
    grid_cols: tuple[tuple[int, int], ...]
    schedule: tuple[tuple[PatchStep, ...], ...]
    windows: Mapping[str, tuple[Window, ...]]
    bits: Mapping[str, int]
    stage_out_shape: tuple[int, int, int]
    stage_out_bytes: int
    stage_macs_once: int
    stage_macs_patched: int
    total_macs: int
    layer_peak: int
    layer_peak_step: str
    stage_peak: int  # stage-output buffer (+ resident input) + largest per-patch working set
    stage_peak_at: tuple[int, str]  # (largest patch, step) of the per-patch working-set peak
    patch_working_set: int  # liveness peak of the per-patch buffers, each sized for its largest patch
    patch_buffer_bytes: Mapping[str, int]  # per-patch buffer size of every stage tensor (max over patches)
    rest_peak: int
    rest_peak_step: str
    per_layer_macs: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # layer -> (once, patched)

    @property
    def num_patches(self) -> int:
        return self.n * self.n

    @property
    def patch_peak(self) -> int:
        """Peak SRAM of the whole network under patch-based inference of the stage."""
        return max(self.stage_peak, self.rest_peak)

    @property
    def redundant_macs(self) -> int:
        """MACs recomputed because neighbouring patches' receptive fields overlap."""
        return self.stage_macs_patched - self.stage_macs_once

    @property
    def mac_overhead(self) -> float:
        """Recomputed MACs as a fraction of the whole network's MACs (MCUNetV2 reports it this way)."""
        return self.redundant_macs / self.total_macs if self.total_macs else 0.0

    @property
    def stage_mac_overhead(self) -> float:
        """Recomputed MACs as a fraction of the patch stage's own MACs."""
        return self.redundant_macs / self.stage_macs_once if self.stage_macs_once else 0.0

    @property
    def patch_wins(self) -> bool:
        """True when patch-based inference needs strictly less SRAM than layer-by-layer."""
        return self.patch_peak < self.layer_peak

    def to_dict(self) -> dict:
        """JSON-ready summary and schedule (windows ``[h0, h1, w0, w1]``, padding ``[t, l, b, r]``)."""
        return {
            "split": self.split,
            "split_index": self.split_index,
            "n": self.n,
            "rule": self.rule.name,
            "stage": list(self.stage),
            "grid_rows": [list(r) for r in self.grid_rows],
            "grid_cols": [list(c) for c in self.grid_cols],
            "bits": dict(self.bits),
            "stage_out_shape": list(self.stage_out_shape),
            "macs": {
                "stage_once": self.stage_macs_once,
                "stage_patched": self.stage_macs_patched,
                "redundant": self.redundant_macs,
                "overhead": self.mac_overhead,
                "total": self.total_macs,
            },
            "sram_bytes": {
                "layer_by_layer": self.layer_peak,
                "patch_based": self.patch_peak,
                "stage": self.stage_peak,
                "stage_output": self.stage_out_bytes,
                "patch_working_set": self.patch_working_set,
                "rest": self.rest_peak,
                "patch_buffers": dict(self.patch_buffer_bytes),
            },
            "windows": {t: [list(w) for w in ws] for t, ws in self.windows.items()},
            "schedule": [
                [
                    {
                        "layer": st.layer,
                        "inputs": list(st.inputs),
                        "in_windows": [list(w) for w in st.in_windows],
                        "out_window": list(st.out_window),
                        "padding": list(st.padding),
                        "macs": st.macs,
                    }
                    for st in steps
                ]
                for steps in self.schedule
            ],
        }


def check_geometry(layers: Sequence[LayerSpec]) -> None:
    """Check that every layer's shapes agree with its kernel/stride/padding and its producers."""
    shapes: dict[str, tuple[int, int, int]] = {}
    seen: set[str] = set()
    for layer in layers:
        if layer.name in seen or layer.name == INPUT:
            raise ConfigError(f"layer name {layer.name!r} is used twice (or clashes with {INPUT!r})")
        seen.add(layer.name)
        for src in layer.inputs:
            if src != INPUT and src not in seen:
                raise ConfigError(
                    f"layer {layer.name!r} reads {src!r}, which is not an earlier layer; "
                    "layers must be listed in execution order"
                )
            if src in shapes and layer.op != "fc" and shapes[src] != layer.in_shape:
                raise ConfigError(
                    f"layer {layer.name!r}: in_shape {layer.in_shape} differs from the output "
                    f"shape {shapes[src]} of its producer {src!r}"
                )
        if INPUT in layer.inputs:
            shapes.setdefault(INPUT, layer.in_shape)
        shapes[layer.name] = layer.out_shape
        if layer.op in ("conv2d", "depthwise", "pointwise", "avgpool"):
            (ih, iw, _), (oh, ow, _) = layer.in_shape, layer.out_shape
            t, left, b, r = layer.padding
            exp = (
                out_size(ih, layer.kernel[0], layer.stride, t, b),
                out_size(iw, layer.kernel[1], layer.stride, left, r),
            )
            if exp != (oh, ow):
                raise ConfigError(
                    f"layer {layer.name!r}: output {oh}x{ow} does not follow from input {ih}x{iw}, "
                    f"kernel {layer.kernel}, stride {layer.stride}, padding {layer.padding} "
                    f"(expected {exp[0]}x{exp[1]})"
                )


def resolve_split(layers: Sequence[LayerSpec], split: str | int) -> int:
    """Index of the split layer, given by name or (possibly negative) index."""
    if isinstance(split, bool):
        raise ConfigError(f"split must be a layer name or index, got {split!r}")
    if isinstance(split, int):
        if not -len(layers) <= split < len(layers):
            raise ConfigError(f"split index {split} is out of range for a network of {len(layers)} layers")
        return split % len(layers)
    for i, layer in enumerate(layers):
        if layer.name == split:
            return i
    raise ConfigError(f"split layer {split!r} not found; layers are: {', '.join(x.name for x in layers)}")


def split_problem(layers: Sequence[LayerSpec], s: int) -> str | None:
    """Why ``layers[s]`` cannot end a patch stage, or ``None`` when it can."""
    stage = layers[: s + 1]
    for layer in stage:
        if layer.op not in SPATIAL_OPS:
            return f"the patch stage would contain {layer.name!r} ({layer.op}), which has no spatial extent"
    inside = {INPUT} | {layer.name for layer in stage}
    for later in layers[s + 1 :]:
        for src in later.inputs:
            if src in inside and src != layers[s].name:
                return (
                    f"layer {later.name!r} after the split still reads {src!r} from inside the stage "
                    f"(a split inside a residual block?): the stage must have a single output tensor, "
                    f"{layers[s].name!r}"
                )
    return None


def valid_splits(layers: Sequence[LayerSpec]) -> list[int]:
    """Indices of every layer after which a patch stage can end (single stage-output tensor)."""
    return [i for i in range(len(layers)) if split_problem(layers, i) is None]


def _union(a: Window | None, b: Window) -> Window:
    if a is None:
        return b
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def _patch_windows(stage: Sequence[LayerSpec], target: Window) -> tuple[dict[str, Window], list[PatchStep]]:
    """Backward pass for one patch: every tensor's window and every layer's step."""
    need: dict[str, Window] = {stage[-1].name: target}
    steps: list[PatchStep] = []
    for layer in reversed(stage):
        out = need.get(layer.name)
        if out is None:
            raise ConfigError(f"layer {layer.name!r} in the patch stage feeds nothing: its output is unused")
        oh0, oh1, ow0, ow1 = out
        if layer.op == "add":
            ins = tuple(out for _ in layer.inputs)
            pad: Pad = (0, 0, 0, 0)
        else:
            ih, iw, _ = layer.in_shape
            t, left, _, _ = layer.padding
            h0, h1, pt, pb = input_extent(oh0, oh1, layer.kernel[0], layer.stride, t, ih)
            w0, w1, pl, pr = input_extent(ow0, ow1, layer.kernel[1], layer.stride, left, iw)
            ins = ((h0, h1, w0, w1),)
            pad = (pt, pl, pb, pr)
        for src, win in zip(layer.inputs, ins):
            need[src] = _union(need.get(src), win)
        per_pixel = layer.macs // (layer.out_shape[0] * layer.out_shape[1])
        steps.append(
            PatchStep(
                layer.name,
                layer.op,
                tuple(layer.inputs),
                ins,
                out,
                pad,
                per_pixel * (oh1 - oh0) * (ow1 - ow0),
            )
        )
    steps.reverse()
    return need, steps


def _window_bytes(win: Window, channels: int, bits: int) -> int:
    return tensor_bytes(win[1] - win[0], win[3] - win[2], channels, bits)


def plan_patches(
    layers: Sequence[LayerSpec],
    split: str | int,
    n: int,
    bits: int | Mapping[str, int] = 8,
    rule: MemoryRule = LIVENESS,
) -> PatchPlan:
    """Plan patch-based inference of ``layers[:split+1]`` with ``n x n`` patches (see the module docstring).

    ``split`` is a layer name or index; it must leave the stage with a single output tensor (not inside a
    residual block). ``bits`` is the activation width of every tensor, or a mapping tensor-name -> width
    (default 8).
    """
    layers = list(layers)
    if not layers:
        raise ConfigError("cannot plan patches for an empty network")
    if isinstance(n, bool) or not isinstance(n, int):
        raise ConfigError(f"n (patches per side) must be an integer, got {n!r}")
    check_geometry(layers)
    s = resolve_split(layers, split)
    problem = split_problem(layers, s)
    if problem:
        raise ConfigError(f"cannot split after {layers[s].name!r}: {problem}")
    stage, rest = layers[: s + 1], layers[s + 1 :]
    tb = tensor_bits(layers, bits)
    oh, ow, oc = stage[-1].out_shape
    try:
        rows, cols = split_grains(oh, n), split_grains(ow, n)
    except ConfigError as e:
        raise ConfigError(f"stage output of {stage[-1].name!r} is {oh}x{ow}: {e}") from None

    channels = {INPUT: next(x for x in stage if INPUT in x.inputs).in_shape[2]}
    channels.update({x.name: x.out_shape[2] for x in stage})
    stage_steps = build_steps(stage, rule)
    stage_out_bytes = tensor_bytes(oh, ow, oc, tb[stage[-1].name])
    resident = input_bytes(layers, tb[INPUT]) if rule.resident_input else 0

    schedule: list[tuple[PatchStep, ...]] = []
    windows: dict[str, list[Window]] = {}
    macs_patched: dict[str, int] = {x.name: 0 for x in stage}
    worst = PeakReport(-1, "", (), ())
    worst_patch = 0
    buffer_bytes: dict[str, int] = {}
    for r in rows:
        for c in cols:
            need, steps = _patch_windows(stage, (r[0], r[1], c[0], c[1]))
            schedule.append(tuple(steps))
            for t, win in need.items():
                windows.setdefault(t, []).append(win)
            for st in steps:
                macs_patched[st.layer] += st.macs
            sizes = {t: _window_bytes(win, channels[t], tb[t]) for t, win in need.items()}
            sizes[stage[-1].name] = 0  # written straight into the stage-output buffer
            if rule.resident_input:
                sizes[INPUT] = 0  # read in place from the resident image
            for t, nb in sizes.items():
                buffer_bytes[t] = max(buffer_bytes.get(t, 0), nb)
            rep = peak_memory(stage_steps, sizes)
            if rep.peak > worst.peak:
                worst, worst_patch = rep, len(schedule) - 1
    # a static arena gives every per-patch tensor one slot sized for its largest patch; its liveness peak is
    # what the firmware needs (equal to the worst single patch whenever one patch is the largest everywhere)
    static = peak_memory(stage_steps, buffer_bytes)

    if rest:
        rest_sizes = {INPUT: stage_out_bytes}
        rest_sizes.update({x.name: tensor_bytes(*x.out_shape, tb[x.name]) for x in rest})
        # the rest reads the stage output under its own name; rename it to the rest's "input"
        renamed = [_rename_input(x, stage[-1].name) for x in rest]
        rest_rep = peak_memory(build_steps(renamed, rule), rest_sizes)
        rest_peak, rest_step = rest_rep.peak, rest_rep.step
    else:
        rest_peak, rest_step = stage_out_bytes, "(stage output is the network output)"

    full = layer_by_layer_peak(layers, tb, rule)
    once = sum(x.macs for x in stage)
    return PatchPlan(
        split=stage[-1].name,
        split_index=s,
        n=n,
        rule=rule,
        stage=tuple(x.name for x in stage),
        grid_rows=rows,
        grid_cols=cols,
        schedule=tuple(schedule),
        windows={t: tuple(w) for t, w in windows.items()},
        bits=tb,
        stage_out_shape=(oh, ow, oc),
        stage_out_bytes=stage_out_bytes,
        stage_macs_once=once,
        stage_macs_patched=sum(macs_patched.values()),
        total_macs=sum(x.macs for x in layers),
        layer_peak=full.peak,
        layer_peak_step=full.step,
        stage_peak=stage_out_bytes + resident + static.peak,
        stage_peak_at=(worst_patch, static.step),
        patch_working_set=static.peak,
        patch_buffer_bytes=buffer_bytes,
        rest_peak=rest_peak,
        rest_peak_step=rest_step,
        per_layer_macs={x.name: (x.macs, macs_patched[x.name]) for x in stage},
    )


def _rename_input(layer: LayerSpec, stage_out: str) -> LayerSpec:
    if stage_out not in layer.inputs:
        return layer
    return replace(layer, inputs=tuple(INPUT if s == stage_out else s for s in layer.inputs))
