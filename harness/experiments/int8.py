"""``tinyhil run experiment=int8``: the uniform 8-bit integer model's top-1 on the device.

Float, fake-quant (host) and device top-1 on the same ``n_eval`` test images; the device's predictions must
equal the host integer reference's on every image (``check_reference``). Per-layer counts of the last image.

An integer model (``model=tflite model.path=FILE.tflite``) runs as it is: the test images, resized to its input
and quantized with its input's scale and zero point, on the device and the host integer reference (no float or
fake-quant top-1: there is no float model).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from harness.codegen.artifact import layer_artifact
from harness.data.base import to_model_input
from harness.data.registry import load_data
from harness.experiments.common import board_from, progress, workdir
from harness.measure.report import count_keys, print_per_layer, write_per_layer
from harness.measure.session import Session
from harness.models.registry import build_int_model, is_integer
from harness.precision.config import PrecisionConfig
from harness.quant.prepare import export, integer_inputs, prepare, quantize, reference_predictions, top1
from harness.results.io import write_table


def run_integer(cfg: DictConfig, run_dir: Path) -> dict:
    """The int8 experiment for an integer model (an imported ``.tflite``): device vs host reference and labels."""
    t0 = time.perf_counter()
    e = cfg.experiment
    model = build_int_model(cfg.model)
    spec = model.tensors[model.input]
    h, w, c = spec.shape
    data = load_data(cfg.data)
    ev = data.test.subset(min(int(e.n_eval), len(data.test)), seed=int(cfg.seed) + 1)
    inputs = integer_inputs(model, to_model_input(ev.x, (c, h, w), data.mean, data.std))
    board = board_from(cfg)
    with progress(f"{model.name} on {board.name}", len(inputs)) as advance:
        session = Session(board, workdir(cfg, "int8", board.name, model.name))
        m = session.run(layer_artifact(model), inputs, progress=advance, require_exact=False)
    dev_pred = m.predictions()
    ref_pred = reference_predictions(model, inputs)
    write_table(pd.DataFrame({"label": ev.y, "device": dev_pred, "reference": ref_pred}), run_dir / "predictions.csv")
    print_per_layer(m, title=f"{model.name} (imported) on {m.board} (last image)")
    write_per_layer(m, run_dir)
    return {
        "experiment": "int8", "board": m.board, **count_keys(m), "model": model.name, "model_source": "tflite",
        "data": str(cfg.data.name), "n_eval": len(inputs), "top1_device": float(np.mean(dev_pred == ev.y)),
        "bit_exact": m.bit_exact, "mismatches": m.mismatches[:10],
        "device_equals_reference": bool(np.array_equal(dev_pred, ref_pred)),
        "macs": int(sum(r.macs for r in m.layers)), "flash_used": m.build.get("flash_used"),
        "sram_used": m.build.get("sram_used"), "peak_sram_device": m.mem.get("peak_sram"),
        "host_seconds": round(time.perf_counter() - t0, 3), "emulator_seconds": round(m.emulator_seconds, 3),
    }  # fmt: skip


def run(cfg: DictConfig, run_dir: Path) -> dict:
    if is_integer(cfg.model):
        return run_integer(cfg, run_dir)
    t0 = time.perf_counter()
    e = cfg.experiment
    p = prepare(cfg, n_eval=int(e.n_eval), n_calib=int(e.n_calib))
    names = quantize(p).layer_names()
    config = PrecisionConfig.uniform(names, int(cfg.method.a_bits), int(cfg.method.w_bits))
    qnet = quantize(p, config)
    model = export(qnet, config)
    inputs = integer_inputs(model, p.eval_x)
    board = board_from(cfg)
    with progress(f"{p.name} int8 on {board.name}", len(inputs)) as advance:
        session = Session(board, workdir(cfg, "int8", board.name, p.name))
        m = session.run(layer_artifact(model), inputs, progress=advance, require_exact=False)
    dev_pred = m.predictions()
    ref_pred = reference_predictions(model, inputs) if bool(e.check_reference) else None
    write_table(
        pd.DataFrame(
            {
                "label": p.eval_y,
                "device": dev_pred,
                **({"reference": ref_pred} if ref_pred is not None else {}),
            }
        ),
        run_dir / "predictions.csv",
    )
    print_per_layer(m, title=f"{p.name} a{cfg.method.a_bits}w{cfg.method.w_bits} on {m.board} (last image)")
    write_per_layer(m, run_dir)
    config.save(run_dir / "config_precision.json")
    summary = {
        "experiment": "int8",
        "board": m.board,
        **count_keys(m),
        "model": p.name,
        "data": str(cfg.data.name),
        "n_eval": len(inputs),
        "top1_float": top1(p.model, p.eval_x, p.eval_y),
        "top1_fakequant": top1(qnet, p.eval_x, p.eval_y),
        "top1_device": float(np.mean(dev_pred == p.eval_y)),
        "bit_exact": m.bit_exact,
        "mismatches": m.mismatches[:10],
        "device_equals_reference": bool(np.array_equal(dev_pred, ref_pred)) if ref_pred is not None else None,
        "macs": int(sum(r.macs for r in m.layers)),
        "flash_used": m.build.get("flash_used"),
        "sram_used": m.build.get("sram_used"),
        "peak_sram_device": m.mem.get("peak_sram"),
        "host_seconds": round(time.perf_counter() - t0, 3),
        "emulator_seconds": round(m.emulator_seconds, 3),
    }
    if ref_pred is not None and not summary["device_equals_reference"]:
        bad = int(np.sum(dev_pred != ref_pred))
        summary["device_reference_mismatches"] = bad
    return summary
