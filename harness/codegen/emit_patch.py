"""C code generation for patch-based inference: ``model_data.c`` with a patch schedule (``th_patch.h``).

The generated file is what :mod:`harness.codegen.emit_c` writes for the base model (the layer table, used
layer by layer after the split) plus ``th_patch_schedule``: for every (patch, stage layer) a layer copy (that
patch's paddings, activation precisions and requantization; weights shared), the per-patch buffer descriptors
and the copies that move data (input-window fetch, sub-window gathers, stage-output scatter).

Arena layout (:func:`plan_patch_arena`). Time runs over global steps: step 0 is the whole patch stage, step
``k >= 1`` the k-th layer after the split. The full input tensor and a *patch region* live at step 0, the full
stage-output tensor from step 0 to its last reader, and every later tensor as in layer-by-layer planning; the
greedy placement of :mod:`harness.memory.arena` puts them in the arena. Inside the patch region every
per-patch buffer has one slot sized for its largest patch (window bytes at that patch's precision), placed by
liveness over the stage's steps within one patch:

* each stage tensor but the stage output: from its producing step to its last reader in the stage;
* ``input``: a copy of the patch's input window (kernels take contiguous tensors, so the window is fetched out
  of the full input), from its first to its last reader;
* the split layer writes a per-patch buffer, copied into the stage-output tensor at the patch's window right
  after the kernel (lives one step);
* a consumer that reads a strict sub-window of its producer's buffer (a residual add reads less than the next
  block's conv needed) gathers it: in place when it is the producer's last reader (rows move toward the
  buffer's start), else into a staging buffer that lives one step.

The planner's figure (:func:`harness.patch.plan.plan_patches` with the input resident in SRAM) counts neither
the input-window copy nor the split layer's buffer; :class:`PatchArena` reports both numbers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from harness import ops
from harness.codegen.emit_c import (
    _ints_init,
    _used_tensors,
    c_comment,
    estimate_footprint,
    int_arrays,
    kernel_symbols,
    layer_init,
    layer_variant,
    model_hash,
    render_model_c,
)
from harness.errors import ConfigError, InternalError
from harness.graph.spec import INPUT
from harness.ir.model import IntLayer, IntModel, TensorSpec
from harness.ir.packing import packed_weights, row_bytes
from harness.memory.arena import ALIGN, ArenaPlan, greedy_place, layer_scratch_bytes
from harness.memory.estimate import MemoryEstimate
from harness.memory.liveness import MemoryRule
from harness.ops.validate import validate_model
from harness.patch.intmodel import PatchedModel, layer_specs, stage_tensors
from harness.patch.plan import plan_patches

RESIDENT = MemoryRule(resident_input=True)
#: bytes of static RAM per (patch, step) for the results (kernel ticks, copy ticks, CRC-32)
RESULT_BYTES_PER_STEP = 12
_STEP_BYTES = 3 * 12 + 4 + 4 + 4  # sizeof(th_patch_step_t) with 32-bit pointers
_COPY_BYTES = 20
_LAYER_BYTES = 84

Window = tuple[int, int, int, int]


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass(frozen=True)
class Desc:
    """A tensor descriptor (``th_tensor_t``): a buffer at ``offset`` holding ``h x w x c`` at ``bits``."""

    offset: int
    h: int
    w: int
    c: int
    bits: int
    zero_point: int

    @property
    def row_bytes(self) -> int:
        return row_bytes(self.c, self.bits)

    @property
    def nbytes(self) -> int:
        return self.h * self.w * self.row_bytes

    def c_init(self) -> str:
        return f"{{{self.offset}u, {self.h}, {self.w}, {self.c}, {self.bits}, {self.zero_point}}}"


NO_DESC = Desc(0, 0, 0, 0, 0, 0)


@dataclass(frozen=True)
class Copy:
    """A 2-D copy inside the arena (``th_copy_t``)."""

    src: int
    dst: int
    src_stride: int
    dst_stride: int
    rows: int
    row_bytes: int

    def c_init(self) -> str:
        return (
            f"{{{self.src}u, {self.dst}u, {self.src_stride}u, {self.dst_stride}u, {self.rows}, "
            f"{self.row_bytes}}}"
        )


@dataclass(frozen=True)
class StepIO:
    """What one (patch, stage layer) step reads and writes, and the copies around its kernel."""

    inputs: tuple[Desc, ...]
    out: Desc
    before: tuple[Copy, ...] = ()
    after: tuple[Copy, ...] = ()


@dataclass
class PatchArena:
    """Where everything of a patch-based model lives in the arena, and the figures to compare it with."""

    offsets: dict[str, int]  # full tensors (input, stage output, later tensors) by tensor name
    buffers: dict[str, int]  # per-patch buffer -> arena offset
    buffer_bytes: dict[str, int]  # per-patch buffer -> slot size (largest patch)
    buffer_life: dict[str, tuple[int, int]]  # per-patch buffer -> (first, last) step within a patch
    region_offset: int
    region_bytes: int
    arena_bytes: int
    scratch_bytes: int
    steps: list[list[StepIO]]
    planner_peak: int  # plan_patches(..., resident input).patch_peak at the per-tensor widest precision
    planner_stage_peak: int
    planner_rest_peak: int
    layer_peak: int  # the same planner's layer-by-layer figure
    gathers_in_place: int = 0
    staging_buffers: list[str] = field(default_factory=list)

    @property
    def result_bytes(self) -> int:
        """Static RAM of the per-step result tables the firmware keeps (ticks, copy ticks, CRCs)."""
        return RESULT_BYTES_PER_STEP * sum(len(s) for s in self.steps)

    def to_dict(self) -> dict:
        return {
            "arena_bytes": self.arena_bytes,
            "scratch_bytes": self.scratch_bytes,
            "result_bytes": self.result_bytes,
            "patch_region": {"offset": self.region_offset, "bytes": self.region_bytes},
            "tensors": dict(self.offsets),
            "per_patch_buffers": {
                k: {
                    "offset": self.buffers[k],
                    "bytes": self.buffer_bytes[k],
                    "life": list(self.buffer_life[k]),
                }
                for k in self.buffers
            },
            "planner": {
                "patch_peak": self.planner_peak,
                "stage_peak": self.planner_stage_peak,
                "rest_peak": self.planner_rest_peak,
                "layer_peak": self.layer_peak,
            },
            "gathers_in_place": self.gathers_in_place,
            "staging_buffers": list(self.staging_buffers),
        }


def _tensor_of(model: IntModel, pname: str) -> str:
    if pname == INPUT:
        return model.input
    for layer in model.layers:
        if layer.name == pname:
            return layer.output
    raise ConfigError(f"no layer {pname!r}")


def _spec(pm: PatchedModel, p: int, pname: str) -> TensorSpec:
    m = pm.patch_models[p]
    return m.tensors[_tensor_of(m, pname)]


def _win_bytes(win: Window, spec: TensorSpec) -> int:
    return (win[1] - win[0]) * (win[3] - win[2]) * row_bytes(spec.shape[2], spec.bits)


def plan_patch_arena(pm: PatchedModel) -> PatchArena:
    """Place every buffer of patch-based inference of ``pm`` (see the module docstring)."""
    model, plan = pm.model, pm.plan
    S, P = pm.n_stage, plan.num_patches
    sched0 = plan.schedule[0]
    readers: dict[str, list[int]] = {}
    for j, st in enumerate(sched0):
        for src in st.inputs:
            readers.setdefault(src, []).append(j)
    last_reader = {t: max(js) for t, js in readers.items()}

    # per-patch buffers: sizes (largest patch) and lifetimes (steps within a patch)
    life: dict[str, tuple[int, int]] = {INPUT: (min(readers[INPUT]), last_reader[INPUT])}
    size: dict[str, int] = {INPUT: 0}
    for j, st in enumerate(sched0):
        life[st.layer] = (j, last_reader.get(st.layer, j))
        size[st.layer] = 0
    gathers: dict[tuple[int, int, int], str] = {}  # (patch, step, input) -> buffer the gather writes
    in_place = 0
    tensors = list(life)
    for p in range(P):
        for name in tensors:
            size[name] = max(size[name], _win_bytes(plan.windows[name][p], _spec(pm, p, name)))
        for j, st in enumerate(plan.schedule[p]):
            for i, (src, win) in enumerate(zip(st.inputs, st.in_windows)):
                if tuple(win) == tuple(plan.windows[src][p]):
                    continue
                if last_reader[src] == j and st.inputs.count(src) == 1:
                    gathers[(p, j, i)] = src
                    in_place += 1
                else:
                    key = f"{st.layer}/in{i}"
                    gathers[(p, j, i)] = key
                    life[key] = (j, j)
                    size[key] = max(size.get(key, 0), _win_bytes(win, _spec(pm, p, src)))
    inner, region = greedy_place(size, life)

    # global placement: step 0 = the patch stage, step k = the k-th layer after the split
    rest = model.layers[S:]
    out_name = pm.stage_output
    g_life: dict[str, list[int]] = {model.input: [0, 0], out_name: [0, 0], "@patch-region": [0, 0]}
    g_size = {
        model.input: model.tensors[model.input].nbytes,
        out_name: model.tensors[out_name].nbytes,
        "@patch-region": region,
    }
    for k, layer in enumerate(rest, start=1):
        for t in layer.inputs:
            if t not in g_life:
                raise ConfigError(
                    f"layer {layer.name!r} after the split reads {t!r} from inside the patch stage"
                )
            g_life[t][1] = k
        g_life[layer.output] = [k, k]
        g_size[layer.output] = model.tensors[layer.output].nbytes
    g_life[model.output][1] = len(rest)
    goff, arena = greedy_place(g_size, {t: (a, b) for t, (a, b) in g_life.items()})
    base = goff.pop("@patch-region")
    buffers = {k: base + off for k, off in inner.items()}

    steps: list[list[StepIO]] = []
    in_spec = model.tensors[model.input]
    so_spec = model.tensors[out_name]
    for p in range(P):
        row: list[StepIO] = []
        for j, st in enumerate(plan.schedule[p]):
            before: list[Copy] = []
            after: list[Copy] = []
            if j == life[INPUT][0]:  # fetch the patch's input window out of the full input tensor
                h0, h1, w0, w1 = plan.windows[INPUT][p]
                rb = in_spec.row_bytes
                W = in_spec.shape[1]
                before.append(
                    Copy(
                        goff[model.input] + (h0 * W + w0) * rb,
                        buffers[INPUT],
                        W * rb,
                        (w1 - w0) * rb,
                        h1 - h0,
                        (w1 - w0) * rb,
                    )
                )
            ins = []
            for i, (src, win) in enumerate(zip(st.inputs, st.in_windows)):
                spec = _spec(pm, p, src)
                a0, a1, b0, b1 = win
                if (p, j, i) in gathers:
                    H0, _, W0, W1 = plan.windows[src][p]
                    rb = row_bytes(spec.shape[2], spec.bits)
                    dst = buffers[gathers[(p, j, i)]]
                    before.append(
                        Copy(
                            buffers[src] + ((a0 - H0) * (W1 - W0) + (b0 - W0)) * rb,
                            dst,
                            (W1 - W0) * rb,
                            (b1 - b0) * rb,
                            a1 - a0,
                            (b1 - b0) * rb,
                        )
                    )
                else:
                    dst = buffers[src]
                ins.append(Desc(dst, a1 - a0, b1 - b0, spec.shape[2], spec.bits, spec.zero_point))
            o = _spec(pm, p, st.layer)
            oh0, oh1, ow0, ow1 = st.out_window
            out = Desc(buffers[st.layer], oh1 - oh0, ow1 - ow0, o.shape[2], o.bits, o.zero_point)
            if j == S - 1:  # the split layer: scatter into the full stage-output tensor
                rb, W = so_spec.row_bytes, so_spec.shape[1]
                after.append(
                    Copy(
                        out.offset,
                        goff[out_name] + (oh0 * W + ow0) * rb,
                        out.w * rb,
                        W * rb,
                        out.h,
                        out.w * rb,
                    )
                )
            row.append(StepIO(tuple(ins), out, tuple(before), tuple(after)))
        steps.append(row)

    scratch = max(
        [ALIGN]
        + [layer_scratch_bytes(model, layer) for layer in rest]
        + [layer_scratch_bytes(m, layer) for m in _distinct(pm.patch_models) for layer in m.layers[:S]]
    )
    widest = {}
    for p in range(P):
        for name in plan.windows:
            widest[name] = max(widest.get(name, 0), _spec(pm, p, name).bits)
    for layer in rest:
        widest[layer.name] = model.tensors[layer.output].bits
    ref = plan_patches(layer_specs(model), plan.split, plan.n, widest, RESIDENT)
    return PatchArena(
        offsets=goff,
        buffers=buffers,
        buffer_bytes=dict(size),
        buffer_life=dict(life),
        region_offset=base,
        region_bytes=region,
        arena_bytes=max(arena, ALIGN),
        scratch_bytes=_align(scratch),
        steps=steps,
        planner_peak=ref.patch_peak,
        planner_stage_peak=ref.stage_peak,
        planner_rest_peak=ref.rest_peak,
        layer_peak=ref.layer_peak,
        gathers_in_place=in_place,
        staging_buffers=sorted(k for k in size if "/in" in k),
    )


def _distinct(models) -> list[IntModel]:
    out: list[IntModel] = []
    for m in models:
        if not any(m is o for o in out):
            out.append(m)
    return out


class _EmittedModel(IntModel):
    """The base model as the layer table shows it: stage-internal tensors describe a per-patch buffer (the
    last patch's), and every layer keeps the MAC count of the whole layer."""

    full_macs: dict[str, int]

    def macs(self, layer: IntLayer) -> int:
        return self.full_macs[layer.name]


def _emitted_model(pm: PatchedModel, arena: PatchArena) -> _EmittedModel:
    model, plan = pm.model, pm.plan
    tensors = dict(model.tensors)
    last = plan.num_patches - 1
    by_out = {layer.output: layer.name for layer in model.layers}
    for t in stage_tensors(model, plan):
        d = arena.steps[last][plan.stage.index(by_out[t])].out
        s = pm.patch_models[last].tensors[t]
        tensors[t] = TensorSpec(t, (d.h, d.w, d.c), d.bits, s.scale, d.zero_point)
    em = _EmittedModel(tensors, list(model.layers), model.input, model.output, model.name)
    em.full_macs = {layer.name: ops.macs(model, layer) for layer in model.layers}
    return em


def _arena_plan(pm: PatchedModel, arena: PatchArena) -> ArenaPlan:
    offsets = dict(arena.offsets)
    by_out = {layer.output: layer.name for layer in pm.model.layers}
    for t in stage_tensors(pm.model, pm.plan):
        offsets[t] = arena.buffers[by_out[t]]
    sizes = {t: 0 for t in offsets}
    return ArenaPlan(
        offsets=offsets,
        sizes=sizes,
        lifetimes={},
        arena_bytes=arena.arena_bytes,
        peak_bytes=arena.arena_bytes,
        scratch_bytes=arena.scratch_bytes,
    )


def patch_model_hash(pm: PatchedModel) -> int:
    """A 32-bit fingerprint of the base model, every patch model and the schedule."""
    h = hashlib.sha256()
    h.update(f"{model_hash(pm.model):08x}".encode())
    for m in pm.patch_models:
        h.update(f"{model_hash(m):08x}".encode())
    d = pm.plan.to_dict()
    h.update(json.dumps([d["split"], d["n"], d["schedule"]], sort_keys=True).encode())
    return int.from_bytes(h.digest()[:4], "little")


def render_patch_c(pm: PatchedModel, arena: PatchArena, variant: str = "opt") -> str:
    """The text of model_data.c for patch-based inference (no validation; see :func:`emit_patched_c`)."""
    model, plan = pm.model, pm.plan
    em = _emitted_model(pm, arena)
    text = render_model_c(em, _arena_plan(pm, arena), variant)
    old, new = model_hash(em), patch_model_hash(pm)
    text = text.replace(f"hash 0x{old:08X}", f"hash 0x{new:08X}").replace(
        f".hash = 0x{old:08X}u", f".hash = 0x{new:08X}u"
    )
    names = _used_tensors(em)
    index = {n: i for i, n in enumerate(names)}
    S, P = pm.n_stage, plan.num_patches

    parts = ["/* ---- patch-based schedule (harness.codegen.emit_patch) ---- */", '#include "th_patch.h"']
    arrays: dict[tuple[str, bytes], str] = {}
    for j, layer in enumerate(model.layers[:S]):
        for key, a in int_arrays(layer).items():
            arrays[(key, a.tobytes())] = f"{key}{j}"
    layer_inits: dict[str, int] = {}
    layer_list: list[str] = []
    copies: list[str] = []
    steps: list[str] = []
    for p in range(P):
        m = pm.patch_models[p]
        for j in range(S):
            layer, st, io = m.layers[j], plan.schedule[p][j], arena.steps[p][j]
            base = model.layers[j]
            if layer.weight is not None and packed_weights(layer) != packed_weights(base):
                raise InternalError(f"patch {p}: layer {layer.name!r} has weights other than the base model's")
            refs = {}
            for key, a in int_arrays(layer).items():
                k = (key, a.tobytes())
                if k not in arrays:
                    arrays[k] = f"p{key}{len(arrays)}"
                    parts.append(f"static const int32_t {arrays[k]}[{a.size}] = {{\n{_ints_init(a)}\n}};")
                refs[key] = arrays[k]
            a_bits = m.tensors[layer.inputs[0]].bits
            o_bits = m.tensors[layer.output].bits
            weights = {"weights": f"w{j}"} if layer.weight is not None and packed_weights(layer) else {}
            body = layer_init(
                layer, fn=ops.kernel_symbol(layer.op, a_bits, layer.w_bits, layer_variant(layer, variant)),
                a_bits=a_bits, o_bits=o_bits, index=index, padding=tuple(st.padding), macs=st.macs,
                arrays={**weights, **refs},
            )  # fmt: skip
            if body not in layer_inits:  # identical copies (interior patches, same precisions) are shared
                layer_inits[body] = len(layer_list)
                layer_list.append(f"    {body},")
            c0 = len(copies)
            copies += [f"    {c.c_init()}," for c in (*io.before, *io.after)]
            in2 = io.inputs[1] if len(io.inputs) > 1 else NO_DESC
            steps.append(
                f"    {{&patch_layers[{layer_inits[body]}], {io.inputs[0].c_init()}, {in2.c_init()}, "
                f"{io.out.c_init()}, &patch_copies[{c0}], {len(io.before)}, {len(io.after)}}}, "
                f"/* patch {p}: {c_comment(layer.name)} */"
            )
    n = P * S
    parts.append(
        f"static const th_layer_t patch_layers[{len(layer_list)}] = {{\n" + "\n".join(layer_list) + "\n};"
    )
    parts.append(f"static const th_copy_t patch_copies[{len(copies)}] = {{\n" + "\n".join(copies) + "\n};")
    parts.append(f"static const th_patch_step_t patch_steps[{n}] = {{\n" + "\n".join(steps) + "\n};")
    parts.append(
        f"static uint32_t patch_ticks[{n}];\nstatic uint32_t patch_copy_ticks[{n}];\n"
        f"static uint32_t patch_crc[{n}];"
    )
    parts.append(
        "const th_patch_schedule_t th_patch_schedule = {\n"
        f"    .n_patches = {P},\n    .n_stage = {S},\n    .stage_out = {index[pm.stage_output]},\n"
        "    .steps = patch_steps,\n    .ticks = patch_ticks,\n    .copy_ticks = patch_copy_ticks,\n"
        "    .crc = patch_crc,\n};"
    )
    return text + "\n" + "\n\n".join(parts) + "\n"


def estimate_patch_footprint(pm: PatchedModel, arena: PatchArena, variant: str = "opt") -> MemoryEstimate:
    """What the generated patch-based model adds to a firmware: the base model's tables and weights plus the
    schedule (layer copies, steps, copies, extra requantization arrays) in flash; arena with the per-step result
    tables, and scratch, in SRAM; the kernels of the base model and of every patch model."""
    base = estimate_footprint(pm.model, _arena_plan(pm, arena), variant)
    flash = base.weights
    kernels = set(base.kernels)
    for m in _distinct(pm.patch_models):
        kernels.update(kernel_symbols(m, variant))
    S, P = pm.n_stage, pm.plan.num_patches
    extra = sum(
        4 * a.size
        for m in _distinct(pm.patch_models)
        if m is not pm.model
        for layer in m.layers[:S]
        for a in int_arrays(layer).values()
    )
    copies = sum(len(io.before) + len(io.after) for row in arena.steps for io in row)
    flash += P * S * (_STEP_BYTES + _LAYER_BYTES) + copies * _COPY_BYTES + extra
    return MemoryEstimate(arena=arena.arena_bytes + arena.result_bytes, scratch=arena.scratch_bytes,
                          weights=int(flash), kernels=tuple(sorted(kernels)))


def emit_patched_c(
    pm: PatchedModel, out_dir: str | Path, *, arena: PatchArena | None = None, variant: str = "opt"
) -> tuple[list[Path], PatchArena]:
    """Validate ``pm`` and write ``model_data.c`` into ``out_dir``; returns the paths and the arena plan."""
    validate_model(pm.model)
    for m in _distinct(pm.patch_models):
        if m is not pm.model:
            validate_model(m)
    arena = arena if arena is not None else plan_patch_arena(pm)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model_data.c"
    path.write_text(render_patch_c(pm, arena, variant))
    return [path], arena
