"""Deploy a patch-based model on a board and measure it, checking every step against the patch reference.

``deploy_patched`` emits the patch-based C (:mod:`harness.codegen.emit_patch`), checks the fit, builds and
flashes; ``run_patched_on_board`` sends the inputs, runs them, and reads back ``layers%`` (per-layer counts
with the patch stage summed over patches) and ``patches%`` (per (patch, step) counts and output CRCs). Every
layer CRC and every per-patch CRC must equal the integer patch reference's (:mod:`harness.patch.int_reference`),
and for a uniform model the stage-output CRC equals the layer-by-layer reference's as well.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from harness.boards import Board
from harness.codegen.emit_patch import PatchArena, emit_patched_c, estimate_patch_footprint, patch_model_hash
from harness.codegen.ir import IntModel
from harness.codegen.packing import unpack
from harness.errors import DeviceError, ProtocolError
from harness.measure.session import LayerMeasurement, ModelMeasurement, packed_tensor_bytes
from harness.patch.int_reference import layer_crcs, patch_crcs, run_patched
from harness.patch.intmodel import PatchedModel
from harness.transport.protocol import Dut, fields


@dataclass(frozen=True)
class PatchStepResult:
    """One row of ``patches%``: a stage layer on one patch in the last inference."""

    patch: int
    step: int
    ticks: int
    copy_ticks: int
    crc32: int | None
    a_bits: int
    o_bits: int
    macs: int


def read_patches(dut: Dut) -> list[PatchStepResult]:
    """Send ``patches%`` and parse its ``m-pstep`` lines."""
    lines = dut.command("patches")
    head = [ln for ln in lines if ln.startswith("m-patches-")]
    if not head:
        raise ProtocolError(f"reply to 'patches' lacks the m-patches line: {lines[:3]}")
    n_patches, n_stage = (int(v) for v in fields(head[0])[:2])
    out = []
    for ln in lines:
        if not ln.startswith("m-pstep-"):
            continue
        f = fields(ln)
        if len(f) != 8:
            raise ProtocolError(f"malformed patch step line: {ln}")
        out.append(
            PatchStepResult(
                int(f[0]),
                int(f[1]),
                int(f[2]),
                int(f[3]),
                int(f[4], 16) if f[4] else None,
                int(f[5]),
                int(f[6]),
                int(f[7]),
            )
        )
    if len(out) != n_patches * n_stage:
        raise ProtocolError(f"patches: announced {n_patches} x {n_stage} steps, got {len(out)} lines")
    return out


def layer_by_layer_estimate(model: IntModel):
    """The :class:`~harness.build.project.MemoryEstimate` of running ``model`` layer by layer (for fit checks)."""
    from harness.build.project import MemoryEstimate
    from harness.codegen.emit_c import estimate_footprint
    from harness.codegen.memory import plan_arena

    plan = plan_arena(model)
    flash, _ = estimate_footprint(model, plan)
    return MemoryEstimate(arena=plan.arena_bytes, scratch=plan.scratch_bytes, weights=flash)


def deploy_patched(
    pm: PatchedModel, board: Board, workdir: str | Path, build_flags: Iterable[str] = ()
) -> tuple[dict, PatchArena]:
    """Emit the patch-based C for ``pm``, check it fits ``board`` (DoesNotFitError), build and flash."""
    from harness.build.project import MemoryEstimate, generate_project

    workdir = Path(workdir)
    files, arena = emit_patched_c(pm, workdir / "model")
    flash, _ = estimate_patch_footprint(pm, arena)
    estimate = MemoryEstimate(
        arena=arena.arena_bytes + arena.result_bytes, scratch=arena.scratch_bytes, weights=flash
    )
    project = generate_project(
        board.cfg, files, workdir / "project", estimate=estimate, build_flags=build_flags
    )
    result = board.build(project, estimate=estimate)
    board.flash(result)
    d = result.to_dict()
    d.update(
        arena_bytes=arena.arena_bytes,
        scratch_bytes=arena.scratch_bytes,
        result_bytes=arena.result_bytes,
        model_flash_bytes=flash,
    )
    return d, arena


@dataclass(kw_only=True)
class PatchMeasurement(ModelMeasurement):
    """Everything one patch-based deployment measured: a model measurement plus the per-patch steps."""

    steps: list[PatchStepResult]  # of the last input
    mismatched_steps: list[tuple[int, str]]  # (patch, layer)
    arena: PatchArena

    @property
    def peak_sram_device(self) -> int:
        """Static RAM (arena, scratch, runtime tables) + stack high-water mark, measured by ``mem``."""
        return int(self.mem["peak_sram"])

    def per_patch_rows(self) -> list[dict]:
        """One row per (patch, stage layer) of the last input."""
        names = [layer.name for layer in self.layers]
        return [
            {
                "patch": s.patch,
                "step": s.step,
                "layer": names[s.step],
                "a_bits": s.a_bits,
                "o_bits": s.o_bits,
                "macs": s.macs,
                "ticks": s.ticks,
                "copy_ticks": s.copy_ticks,
            }
            for s in self.steps
        ]


def run_patched_on_board(
    pm: PatchedModel,
    board: Board,
    inputs: Sequence[np.ndarray],
    workdir: str | Path,
    *,
    check: bool = True,
    progress=None,
) -> PatchMeasurement:
    """Deploy ``pm`` on ``board``, run ``inputs`` (unpacked int (H, W, C) arrays) and check every layer and
    every (patch, layer) output CRC against the integer patch reference (``check``)."""
    model, plan = pm.model, pm.plan
    build, arena = deploy_patched(pm, board, workdir)
    in_bits = model.tensors[model.input].bits
    t0 = time.perf_counter()
    dut = board.open_dut()
    per_input, per_steps, outputs = [], [], []
    try:
        info = dut.model_info()
        want = patch_model_hash(pm)
        if info.n_layers != len(model.layers) or info.hash != want:
            raise DeviceError(
                f"{board.name}: the firmware runs model hash {info.hash:08x} with {info.n_layers} "
                f"layers, expected {want:08x} with {len(model.layers)} (stale image?)"
            )
        dut.set_crc(check)
        cycles = getattr(board, "cycles", None)  # timer=qemu-cycles: harness.timing.CycleCounter
        if cycles is not None:
            cycles.per_input.clear()
        for x in inputs:
            dut.load_input(packed_tensor_bytes(x, in_bits))
            if cycles is not None:
                cycles.begin()
            outputs.append(dut.infer(1, 0))
            per_input.append(dut.layers())
            if cycles is not None:
                cycles.collect(len(model.layers), [la.name for la in model.layers], [r.ticks for r in per_input[-1]])
            per_steps.append(read_patches(dut))
            if progress is not None:
                progress()
        mi = dut.mem()
        mem = asdict(mi)
        mem["peak_sram"] = mi.peak_sram
    finally:
        board.close()
    seconds = time.perf_counter() - t0

    out_spec = model.tensors[model.output]
    dev_outputs = [
        unpack(np.asarray(o).view(np.uint8), out_spec.shape, out_spec.bits).reshape(-1) for o in outputs
    ]
    S = pm.n_stage
    exact = [True] * len(model.layers)
    bad_steps: set[tuple[int, str]] = set()
    ref_outputs = []
    if check:
        for x, results, steps in zip(inputs, per_input, per_steps):
            run = run_patched(pm, x)
            ref_outputs.append(np.asarray(run.output(pm)).reshape(-1))
            for i, (r, want) in enumerate(zip(results, layer_crcs(pm, run))):
                if r.crc32 is None or r.crc32 != want:
                    exact[i] = False
            pc = patch_crcs(pm, run)
            for s in steps:
                if s.crc32 is None or s.crc32 != pc[s.patch][s.step]:
                    bad_steps.add((s.patch, plan.stage[s.step]))
    timer = board.cfg.timer
    last = per_input[-1] if per_input else []
    cycles = getattr(board, "cycles", None)
    last_cycles = cycles.per_input[-1] if cycles is not None and cycles.per_input else None
    layers = []
    for i, layer in enumerate(model.layers):
        ticks = int(last[i].ticks) if last else 0
        macs = plan.per_layer_macs[layer.name][1] if i < S else model.macs(layer)
        layers.append(
            LayerMeasurement(
                index=i,
                name=layer.name,
                op=layer.op,
                a_bits=model.a_bits(layer),
                w_bits=layer.w_bits,
                o_bits=model.o_bits(layer),
                in_shape=tuple(model.in_spec(layer).shape),
                out_shape=tuple(model.out_spec(layer).shape),
                macs=int(macs),
                ticks=ticks,
                count=float(last_cycles[i].cycles) if last_cycles is not None else timer.to_count(ticks),
                bit_exact=bool(exact[i]) if check else False,
                instructions=float(last_cycles[i].instructions) if last_cycles is not None else None,
            )
        )
    outputs_equal = all(np.array_equal(d, r) for d, r in zip(dev_outputs, ref_outputs)) if check else False
    mismatched = [m.name for m in layers if not m.bit_exact] if check else []
    return PatchMeasurement(
        board=board.name,
        timer=timer.source,
        unit=timer.unit,
        layers=layers,
        steps=per_steps[-1] if per_steps else [],
        outputs=dev_outputs,
        reference_outputs=ref_outputs,
        bit_exact=bool(check and outputs_equal and not mismatched and not bad_steps),
        mismatched_layers=mismatched,
        mismatched_steps=sorted(bad_steps),
        build=build,
        mem=mem,
        arena=arena,
        emulator_seconds=seconds,
        firmware_hash=want,
    )

