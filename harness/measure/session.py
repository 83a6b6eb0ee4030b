"""Deploy an integer model on a board and measure it: the one path every experiment takes.

``deploy`` emits C, checks the fit, builds and flashes; ``measure`` sends inputs over the transport, runs them,
collects per-layer counts and output CRCs, and checks every layer bit-exactly against the Python integer
reference. The core never asks whether the board is real or emulated.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from harness.boards import Board
from harness.codegen.ir import IntModel
from harness.errors import DeviceError


@dataclass
class LayerMeasurement:
    """One layer of one measured model."""

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
class ModelMeasurement:
    """Everything one deployment measured."""

    board: str
    timer: str
    unit: str
    layers: list[LayerMeasurement]
    outputs: list[np.ndarray]
    reference_outputs: list[np.ndarray]
    bit_exact: bool
    mismatched_layers: list[str]
    build: dict
    mem: dict
    emulator_seconds: float
    firmware_hash: int
    extra: dict = field(default_factory=dict)

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

    def per_layer_rows(self) -> list[dict]:
        return [layer.row() for layer in self.layers]

    def predictions(self) -> np.ndarray:
        return np.array([int(np.argmax(o)) for o in self.outputs])


def packed_tensor_bytes(values: np.ndarray, bits: int) -> bytes:
    """The bytes the firmware holds for a tensor of unpacked integer ``values`` (H, W, C) at ``bits``."""
    from harness.codegen.packing import pack

    return bytes(pack(np.asarray(values), bits))


def deploy(model: IntModel, board: Board, workdir: str | Path, build_flags: Iterable[str] = ()) -> dict:
    """Emit C for ``model``, check it fits ``board``, build, and flash. Returns the build result as a dict."""
    from harness.build.project import MemoryEstimate, generate_project
    from harness.codegen.emit_c import emit_model_c, estimate_footprint
    from harness.codegen.memory import plan_arena

    workdir = Path(workdir)
    plan = plan_arena(model)
    flash_bytes, _ = estimate_footprint(model, plan)
    src = workdir / "model"
    src.mkdir(parents=True, exist_ok=True)
    files = emit_model_c(model, src, plan=plan)
    estimate = MemoryEstimate(arena=plan.arena_bytes, scratch=plan.scratch_bytes, weights=flash_bytes)
    project = generate_project(board.cfg, files, workdir / "project", estimate=estimate, build_flags=build_flags)
    result = board.build(project, estimate=estimate)
    board.flash(result)
    d = result.to_dict()
    d["arena_bytes"] = plan.arena_bytes
    d["arena_peak_bytes"] = plan.peak_bytes
    d["scratch_bytes"] = plan.scratch_bytes
    d["model_flash_bytes"] = flash_bytes
    return d


def measure(
    model: IntModel,
    board: Board,
    inputs: Sequence[np.ndarray],
    *,
    check: bool = True,
    progress=None,
) -> tuple[list[list], list[np.ndarray], dict, float, int]:
    """Run every input on the flashed board; return (per-input layer results, outputs, mem, seconds, hash)."""
    in_bits = model.tensors[model.input].bits
    t0 = time.perf_counter()
    dut = board.open_dut()
    try:
        info = dut.model_info()
        if info.n_layers != len(model.layers):
            raise DeviceError(
                f"{board.name}: the firmware runs a model with {info.n_layers} layers, expected {len(model.layers)}"
                " (stale image?)")
        dut.set_crc(check)
        per_input, outputs = [], []
        cycles = getattr(board, "cycles", None)  # timer=qemu-cycles: harness.timing.CycleCounter
        if cycles is not None:
            cycles.per_input.clear()
        for x in inputs:
            dut.load_input(packed_tensor_bytes(x, in_bits))
            if cycles is not None:
                cycles.begin()
            out = dut.infer(1, 0)
            results = dut.layers()
            if cycles is not None:
                cycles.collect(len(model.layers), [la.name for la in model.layers], [r.ticks for r in results])
            per_input.append(results)
            outputs.append(out)
            if progress is not None:
                progress()
        mem = asdict(dut.mem())
        mem["peak_sram"] = dut.mem().peak_sram
    finally:
        board.close()
    return per_input, outputs, mem, time.perf_counter() - t0, info.hash


def run_on_board(
    model: IntModel,
    board: Board,
    inputs: Sequence[np.ndarray],
    workdir: str | Path,
    *,
    check: bool = True,
    progress=None,
    build_flags: Iterable[str] = (),
) -> ModelMeasurement:
    """Deploy and measure ``model`` on ``board`` with ``inputs`` (unpacked int (H, W, C) arrays).

    Every layer's output CRC is compared with the Python integer reference's for every input (``check``).
    """
    from harness.codegen.packing import unpack
    from harness.reference.run import run_model

    build = deploy(model, board, workdir, build_flags=build_flags)
    per_input, outputs, mem, seconds, fw_hash = measure(model, board, inputs, check=check, progress=progress)

    out_spec = model.tensors[model.output]
    dev_outputs = [unpack(np.asarray(o).view(np.uint8), out_spec.shape, out_spec.bits).reshape(-1)
                   for o in outputs]
    ref_outputs: list[np.ndarray] = []
    exact = [True] * len(model.layers)
    for x, results in zip(inputs, per_input):
        ref = run_model(model, x) if check else {}
        if check:
            ref_outputs.append(np.asarray(ref[model.output]).reshape(-1))
            for i, (layer, r) in enumerate(zip(model.layers, results)):
                spec = model.tensors[layer.output]
                want = zlib.crc32(packed_tensor_bytes(ref[layer.output], spec.bits))
                if r.crc32 is None or r.crc32 != want:
                    exact[i] = False
    timer = board.cfg.timer
    last = per_input[-1] if per_input else []
    cycles = getattr(board, "cycles", None)
    last_cycles = cycles.per_input[-1] if cycles is not None and cycles.per_input else None
    layers = []
    for i, layer in enumerate(model.layers):
        ticks = int(last[i].ticks) if last else 0
        if last_cycles is not None:
            count, instructions = float(last_cycles[i].cycles), float(last_cycles[i].instructions)
        else:
            count, instructions = (timer.to_count(ticks) if last else 0.0), None
        layers.append(LayerMeasurement(
            index=i, name=layer.name, op=layer.op, a_bits=model.a_bits(layer), w_bits=layer.w_bits,
            o_bits=model.o_bits(layer), in_shape=tuple(model.in_spec(layer).shape),
            out_shape=tuple(model.out_spec(layer).shape), macs=model.macs(layer), ticks=ticks,
            count=count, bit_exact=bool(exact[i]) if check else None, instructions=instructions))
    outputs_equal = all(np.array_equal(d, r) for d, r in zip(dev_outputs, ref_outputs)) if check else False
    mismatched = [m.name for m in layers if not m.bit_exact] if check else []
    return ModelMeasurement(
        board=board.name, timer=timer.source, unit=timer.unit, layers=layers, outputs=dev_outputs,
        reference_outputs=ref_outputs, bit_exact=bool(check and outputs_equal and not mismatched),
        mismatched_layers=mismatched, build=build, mem=mem, emulator_seconds=seconds, firmware_hash=fw_hash,
        extra={"ticks_per_input": [[int(r.ticks) for r in results] for results in per_input],
               **(cycles.describe() if cycles is not None else {})})
