"""The measuring session: build, flash, run and check any :class:`~harness.codegen.artifact.Artifact`.

One path for every experiment, plain or patch-based: ``Session.deploy`` generates the PlatformIO project from the
artifact's sources, checks the fit, builds and flashes; ``Session.collect`` checks that the firmware on the board
is the artifact's (model hash and layer count), sends each input, runs it, and reads back the per-layer (and per
(patch, step)) counts and output CRC-32s, each compared with the artifact's integer reference. ``Session.run``
does both and, unless told otherwise, raises :class:`~harness.errors.ResultError` naming the first wrong layer:
a wrong result never passes silently. The session never asks whether the board is real or emulated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from harness.boards import Board
from harness.build.fit import check_fit
from harness.build.project import generate_project
from harness.codegen.artifact import Artifact, Expected, make_artifact
from harness.errors import ResultError
from harness.ir.model import IntModel
from harness.ir.packing import unpack
from harness.patch.intmodel import PatchedModel
from harness.transport.protocol import LayerResult, PatchStepResult

log = logging.getLogger(__name__)


@dataclass
class LayerMeasurement:
    """One layer of one measured model (counts of the last input)."""

    index: int
    name: str
    op: str
    a_bits: int
    w_bits: int
    o_bits: int
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    macs: int
    ticks: int
    count: float
    bit_exact: bool | None  # None: not checked
    instructions: float | None = None  # beside cycles (timer=qemu-cycles): the same region's instructions

    def row(self) -> dict:
        d = asdict(self)
        d["in_shape"] = "x".join(map(str, self.in_shape))
        d["out_shape"] = "x".join(map(str, self.out_shape))
        return d


@dataclass
class StepMeasurement:
    """One (patch, stage layer) step of a patch-based model (counts of the last input)."""

    patch: int
    step: int
    layer: str
    a_bits: int
    o_bits: int
    macs: int
    ticks: int
    copy_ticks: int
    bit_exact: bool | None


@dataclass
class Measurement:
    """Everything one deployment measured, for layer-by-layer and patch-based artifacts alike."""

    board: str
    timer: str
    unit: str
    artifact: str
    layers: list[LayerMeasurement]
    steps: list[StepMeasurement]  # patch-based only
    outputs: list[np.ndarray]
    reference_outputs: list[np.ndarray]
    checked: bool
    mismatches: list[str]  # one line per wrong layer, step or output, naming the input
    build: dict
    mem: dict
    emulator_seconds: float
    firmware_hash: int  # the model hash the firmware reported (checked equal to the artifact's)
    ticks_per_input: list[list[int]] = field(default_factory=list)
    counts_per_input: list[list[float]] = field(default_factory=list)  # per input, per layer, in ``unit``
    memory: dict = field(default_factory=dict)  # the artifact's planned figures
    timing: dict = field(default_factory=dict)  # timer=qemu-cycles: core, timing profile, model version, clock
    layer_memory: list[dict] = field(default_factory=list)  # per layer: flash and RAM bytes (the artifact's)
    clock_hz: int | None = None  # the clock cycle counts run at (None: counts are not cycles)
    warmup: int = 0  # inferences run before the counted ones and dropped (cycles: steady state)

    @property
    def timer_id(self) -> str:
        """The timer as a latency table's target names it: cycle counts carry their timing profile and model."""
        t = self.timing
        if t.get("timing_profile") and t.get("timing_model_version"):
            return f"{self.timer}:{t['timing_profile']}/{t['timing_model_version']}"
        return self.timer

    @property
    def bit_exact(self) -> bool | None:
        """True when every layer, step and output equals the reference on every input; None when unchecked."""
        return (not self.mismatches) if self.checked else None

    @property
    def mismatched_layers(self) -> list[str]:
        return [m.name for m in self.layers if m.bit_exact is False]

    @property
    def total_count(self) -> float:
        return float(sum(layer.count for layer in self.layers))

    @property
    def instructions_total(self) -> float | None:
        """Instructions of the counted regions beside a cycle count (None where the count is instructions)."""
        if any(layer.instructions is None for layer in self.layers):
            return None
        return float(sum(layer.instructions for layer in self.layers))  # type: ignore[misc]

    @property
    def total_ticks(self) -> int:
        return int(sum(layer.ticks for layer in self.layers))

    @property
    def peak_sram_device(self) -> int:
        """Static RAM (arena, scratch, runtime tables) + stack high-water mark, measured by ``mem``."""
        return int(self.mem["peak_sram"])

    def per_layer_rows(self) -> list[dict]:
        return [layer.row() for layer in self.layers]

    def per_patch_rows(self) -> list[dict]:
        return [asdict(s) for s in self.steps]

    def predictions(self) -> np.ndarray:
        return np.array([int(np.argmax(o)) for o in self.outputs])

    def require_exact(self) -> None:
        """ResultError naming what differs from the integer reference (no-op when everything matched)."""
        if self.checked and self.mismatches:
            more = f" (and {len(self.mismatches) - 3} more)" if len(self.mismatches) > 3 else ""
            raise ResultError(
                f"{self.artifact} on {self.board} is not bit-exact against the integer reference: "
                + "; ".join(self.mismatches[:3]) + more
            )


def _compare(art: Artifact, i: int, want: Expected, layers: Sequence[LayerResult],
             steps: Sequence[PatchStepResult], out: np.ndarray) -> tuple[set[int], set[tuple[int, int]], list[str]]:
    """Which layers and steps of input ``i`` differ from ``want``, and a line for each."""
    bad_layers, bad_steps, lines = set(), set(), []
    for info, r, crc in zip(art.layers, layers, want.layer_crcs, strict=True):
        if r.crc32 != crc:
            bad_layers.add(info.index)
            got = "none" if r.crc32 is None else f"0x{r.crc32:08x}"
            lines.append(f"layer {info.index} {info.name!r} ({info.op}) on input {i}: output CRC {got}, "
                         f"reference 0x{crc:08x}")
    for s in steps:
        if s.crc32 != want.step_crcs[s.patch][s.step]:
            bad_steps.add((s.patch, s.step))
            lines.append(f"patch {s.patch} step {s.step} ({art.layers[s.step].name!r}) on input {i}: output CRC "
                         "differs from the reference")
    if not np.array_equal(out, want.output):
        lines.append(f"output of input {i} differs from the reference's")
    return bad_layers, bad_steps, lines


def _clock_hz(timer, cycles) -> int | None:
    """The clock cycle counts run at: the timing profile's (qemu-cycles) or the board timer's (DWT cycles)."""
    if cycles is not None:
        return int(cycles.describe().get("clock_hz") or 0) or None
    return int(timer.hz) if timer.unit == "cycles" and timer.hz else None


class Session:
    """Deploy and measure artifacts on one board, building in ``workdir`` (private to the caller's run)."""

    def __init__(self, board: Board, workdir: str | Path, *, build_flags: Iterable[str] = ()):
        self.board = board
        self.workdir = Path(workdir)
        self.build_flags = tuple(build_flags)

    @property
    def warmup(self) -> int:
        """Inferences run and dropped before the counted ones: one where the count is cycles (caches and branch
        predictors hold state across inferences), none for instruction counts (the same on every run)."""
        return 1 if self.board.cfg.timer.unit == "cycles" else 0

    def deploy(self, art: Artifact) -> dict:
        """Check the fit, generate the project, build and flash; the build's figures as a dict."""
        check_fit(self.board.cfg, art.estimate)  # before any build: DoesNotFitError naming the sizes
        src = art.write_sources(self.workdir / "model")
        project = generate_project(
            self.board.cfg, src, self.workdir / "project", estimate=art.estimate, build_flags=self.build_flags
        )
        log.info("building %s for %s (%d layers, arena %s B)", art.name, self.board.name, len(art.layers),
                 art.memory.get("arena_bytes"))
        result = self.board.build(project, estimate=art.estimate)
        log.info("built: flash %s B, SRAM %s B; flashing", result.to_dict().get("flash_used"),
                 result.to_dict().get("sram_used"))
        self.board.flash(result)
        return {**result.to_dict(), **art.memory}

    def collect(self, art: Artifact, inputs: Sequence[np.ndarray], *, check: bool = True,
                progress: Callable[[], None] | None = None) -> tuple[list, list, list, dict, float]:
        """Run every input on the flashed board: (per-input layer results, per-input steps, outputs, mem, s).

        DeviceError when the firmware is not the artifact's (model hash, layer count); ProtocolError when a reply
        is inconsistent (missing or extra layers, totals, ranges).
        """
        t0 = time.perf_counter()
        dut = self.board.open_dut()
        # The client checks every reply against the artifact: model hash and layer count (a stale image or a
        # concurrent build is refused), the exact layer indices, and the (patch, step) grid.
        dut.expect(len(art.layers), (art.n_patches, art.n_stage) if art.patched else None, art.model_hash)
        per_layers, per_steps, outputs = [], [], []
        cycles = self.board.cycles  # timer=qemu-cycles: the timing plugin's counter
        if cycles is not None:
            cycles.per_input.clear()
        names = [info.name for info in art.layers]

        def infer(x: np.ndarray) -> tuple[object, list]:
            """One inference of ``x``: its output and per-layer results (cycle records collected beside)."""
            dut.load_input(art.input_bytes(x))
            if cycles is not None:
                cycles.begin()
            out = dut.infer(1, 0)
            layers = dut.layers()
            if cycles is not None:  # checks the plugin's instructions against the firmware's own ticks
                cycles.collect(len(art.layers), names, [r.ticks for r in layers])
            return out, layers

        try:
            dut.model_info()
            dut.set_crc(check)
            if self.warmup and len(inputs):
                # Cycle counts are steady state (MLPerf Tiny's practice): one inference of the first input warms
                # the caches and branch predictor, and its counts are dropped.
                infer(inputs[0])
                if cycles is not None:
                    cycles.per_input.clear()
            for x in inputs:
                out, layers = infer(x)
                outputs.append(out)
                per_layers.append(layers)
                per_steps.append(dut.patches() if art.patched else [])
                if progress is not None:
                    progress()
            mi = dut.mem()
            mem = {**asdict(mi), "peak_sram": mi.peak_sram}
        finally:
            self.board.close()
        return per_layers, per_steps, outputs, mem, time.perf_counter() - t0

    def run(
        self,
        art: Artifact,
        inputs: Sequence[np.ndarray],
        *,
        check: bool = True,
        require_exact: bool = True,
        progress: Callable[[], None] | None = None,
    ) -> Measurement:
        """Deploy ``art``, run ``inputs`` (unpacked int ``(H, W, C)`` arrays) and check every layer, step and
        output against the integer reference (``check``); ResultError if anything differs (``require_exact``)."""
        build = self.deploy(art)
        per_layers, per_steps, raw_outputs, mem, seconds = self.collect(art, inputs, check=check,
                                                                        progress=progress)
        out = art.output
        outputs = [unpack(np.asarray(o).view(np.uint8), out.shape, out.bits).reshape(-1) for o in raw_outputs]
        bad_layers: set[int] = set()
        bad_steps: set[tuple[int, int]] = set()
        lines: list[str] = []
        references = []
        if check:
            for i, (x, layers, steps, o) in enumerate(zip(inputs, per_layers, per_steps, outputs, strict=True)):
                want = art.expected(x)
                references.append(want.output)
                bl, bs, ln = _compare(art, i, want, layers, steps, o)
                bad_layers |= bl
                bad_steps |= bs
                lines += ln
        timer = self.board.cfg.timer
        cycles = self.board.cycles
        if cycles is not None:  # cycles from the plugin's records, instructions beside them
            counts = [[float(c.cycles) for c in per] for per in cycles.per_input]
            instructions = [[float(c.instructions) for c in per] for per in cycles.per_input]
        else:
            counts = [[timer.to_count(int(r.ticks)) for r in ls] for ls in per_layers]
            instructions = counts if timer.unit == "instructions" else [[None] * len(art.layers)] * len(counts)
        last = per_layers[-1] if per_layers else []
        layers = [
            LayerMeasurement(
                index=info.index, name=info.name, op=info.op, a_bits=info.a_bits, w_bits=info.w_bits,
                o_bits=info.o_bits, in_shape=info.in_shape, out_shape=info.out_shape, macs=info.macs,
                ticks=int(last[info.index].ticks) if last else 0,
                count=counts[-1][info.index] if counts else 0.0,
                bit_exact=(info.index not in bad_layers) if check else None,
                instructions=instructions[-1][info.index] if instructions else None,
            )  # fmt: skip
            for info in art.layers
        ]
        steps = [
            StepMeasurement(
                patch=s.patch, step=s.step, layer=art.layers[s.step].name, a_bits=s.a_bits, o_bits=s.o_bits,
                macs=s.macs, ticks=s.ticks, copy_ticks=s.copy_ticks,
                bit_exact=((s.patch, s.step) not in bad_steps) if check else None,
            )  # fmt: skip
            for s in (per_steps[-1] if per_steps else [])
        ]
        m = Measurement(
            board=self.board.name, timer=timer.source, unit=timer.unit, artifact=art.name, layers=layers,
            steps=steps, outputs=outputs, reference_outputs=references, checked=check, mismatches=lines,
            build=build, mem=mem, emulator_seconds=seconds, firmware_hash=art.model_hash,
            ticks_per_input=[[int(r.ticks) for r in ls] for ls in per_layers], counts_per_input=counts,
            memory=dict(art.memory), timing=cycles.describe() if cycles is not None else {},
            layer_memory=[dict(r) for r in art.layer_memory], clock_hz=_clock_hz(timer, cycles),
            warmup=self.warmup,
        )  # fmt: skip
        log.info("ran %d input(s) on %s: total %.0f %s, bit-exact %s", len(inputs), m.board, m.total_count, m.unit,
                 m.bit_exact)
        if require_exact:
            m.require_exact()
        return m


def measure_model(
    model: IntModel | PatchedModel,
    board: Board,
    inputs: Sequence[np.ndarray],
    workdir: str | Path,
    *,
    build_flags: Iterable[str] = (),
    **run_kw,
) -> Measurement:
    """Deploy and measure a model (layer by layer or patch-based) on ``board``: :meth:`Session.run` of its
    artifact. Raises ResultError unless every layer is bit-exact (``require_exact=False`` to inspect instead)."""
    return Session(board, workdir, build_flags=build_flags).run(make_artifact(model), inputs, **run_kw)
