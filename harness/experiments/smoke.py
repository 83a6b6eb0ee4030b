"""``tinyhil run experiment=smoke``: a small random int8 CNN through the whole board pipeline.

A ``torch.nn.Module`` with random weights (default: the zoo's tiny CNN at 16x16x3 — conv, depthwise, pointwise,
residual add, average pool, fully connected) is folded, calibrated on random images, exported to the integer
model, emitted as C, built with PlatformIO, run on the board with random inputs sent over serial, and every
layer's output is checked bit-exactly against the Python integer reference. Prints the per-layer table and
writes ``per_layer.csv``. ``experiment.source=ir`` skips torch and uses a random integer network directly.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from harness.codegen.artifact import layer_artifact
from harness.experiments.common import board_from, progress, workdir
from harness.measure.report import count_keys, print_per_layer, write_per_layer
from harness.measure.session import Session
from harness.models.registry import build_model
from harness.quant.calibrate import calibrate
from harness.quant.export import export_int_model
from harness.quant.prepare import integer_inputs
from harness.quant.qnet import quantize_model
from harness.synth.random_model import random_input, random_network


def smoke_model(cfg: DictConfig):
    """The smoke network as an integer model, and its input images."""
    e = cfg.experiment
    seed = int(cfg.seed)
    shape = (int(e.channels), int(e.resolution), int(e.resolution))
    rng = np.random.default_rng(seed + 1)
    if str(e.source) == "ir":
        model = random_network(
            seed,
            input_shape=(shape[1], shape[2], shape[0]),
            width=int(e.width),
            classes=int(e.classes),
            bits=(8,),
            name="smoke",
        )
        return model, [random_input(model.tensors[model.input], rng) for _ in range(int(e.n_inputs))]

    torch.manual_seed(seed)
    mcfg = dict(OmegaConf.to_container(e.model, resolve=True))
    mcfg.update(resolution=shape[1], in_channels=shape[0], num_classes=int(e.classes))
    net = build_model(mcfg).eval()
    gen = torch.Generator().manual_seed(seed)
    calib = torch.randn(32, *shape, generator=gen)
    qnet = quantize_model(net, input_shape=shape)
    calibrate(qnet, calib)
    model = export_int_model(qnet)
    model.name = "smoke"
    x = torch.randn(int(e.n_inputs), *shape, generator=gen)
    return model, integer_inputs(model, x)


def run(cfg: DictConfig, run_dir: Path) -> dict:
    t0 = time.perf_counter()
    model, inputs = smoke_model(cfg)
    board = board_from(cfg)
    with progress(f"smoke on {board.name}", len(inputs)) as advance:
        m = Session(board, workdir(cfg, "smoke", board.name)).run(
            layer_artifact(model), inputs, progress=advance, require_exact=False
        )
    print_per_layer(m, title=f"smoke: {board.name} ({m.timer}, {m.unit})")
    write_per_layer(m, run_dir)
    return {
        "experiment": "smoke",
        "board": m.board,
        **count_keys(m),
        "model": model.name,
        "n_layers": len(m.layers),
        "n_inputs": len(inputs),
        "macs": int(sum(r.macs for r in m.layers)),
        "bit_exact": m.bit_exact,
        "mismatched_layers": m.mismatched_layers,
        "mismatches": m.mismatches[:10],
        "flash_used": m.build.get("flash_used"),
        "sram_used": m.build.get("sram_used"),
        "peak_sram_device": m.mem.get("peak_sram"),
        "model_hash": f"{m.firmware_hash:08x}",
        "host_seconds": round(time.perf_counter() - t0, 3),
        "emulator_seconds": round(m.emulator_seconds, 3),
    }
