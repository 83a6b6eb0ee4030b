"""``tinyhil run experiment=smoke``: a small random int8 CNN through the whole board pipeline.

The network (conv, depthwise, pointwise, residual add, average pool, fully connected) is generated, emitted as C,
built with PlatformIO, run on the board with random inputs sent over serial, and every layer's output is checked
bit-exactly against the Python integer reference. Prints the per-layer table and writes ``per_layer.csv``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from harness.experiments.common import board_from, progress, workdir
from harness.measure.report import print_per_layer, write_per_layer
from harness.measure.session import run_on_board


def smoke_model(cfg: DictConfig):
    """The smoke network: uniform int8 random weights with realistic requantization."""
    from harness.codegen.random_model import random_network

    e = cfg.experiment
    return random_network(int(cfg.seed), input_shape=(int(e.resolution), int(e.resolution), int(e.channels)),
                          width=int(e.width), classes=int(e.classes), bits=(8,), name="smoke")


def run(cfg: DictConfig, run_dir: Path) -> dict:
    t0 = time.perf_counter()
    from harness.codegen.random_model import random_input

    model = smoke_model(cfg)
    rng = np.random.default_rng(int(cfg.seed) + 1)
    inputs = [random_input(model.tensors[model.input], rng) for _ in range(int(cfg.experiment.n_inputs))]
    board = board_from(cfg)
    with progress(f"smoke on {board.name}", len(inputs)) as advance:
        m = run_on_board(model, board, inputs, workdir(cfg, "smoke", board.name), progress=advance)
    print_per_layer(m, title=f"smoke: {board.name} ({m.timer}, {m.unit})")
    write_per_layer(m, run_dir)
    return {
        "experiment": "smoke",
        "board": m.board,
        "timer": m.timer,
        "unit": m.unit,
        "model": model.name,
        "n_layers": len(m.layers),
        "n_inputs": len(inputs),
        "macs": int(sum(r.macs for r in m.layers)),
        "total_count": m.total_count,
        "per_layer": [{"layer": r.name, "op": r.op, "macs": r.macs, "count": r.count} for r in m.layers],
        "bit_exact": m.bit_exact,
        "mismatched_layers": m.mismatched_layers,
        "flash_used": m.build.get("flash_used"),
        "sram_used": m.build.get("sram_used"),
        "peak_sram_device": m.mem.get("peak_sram"),
        "firmware_hash": f"{m.firmware_hash:08x}",
        "host_seconds": round(time.perf_counter() - t0, 3),
        "emulator_seconds": round(m.emulator_seconds, 3),
    }
