"""`tinyhil run experiment=quantmcu` end to end on an emulated board, with the trained tiny CNN (digits): the
summary carries the memory, MAC and BitOPs figures, both models run bit-exact and agree with the host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.qemu  # the tiny-cnn digits checkpoint ships with the repository


def test_quantmcu_experiment_runs_end_to_end_and_reports_its_figures(tmp_path):
    args = [
        "run",
        "experiment=quantmcu",
        "model=tiny-cnn",
        "data=digits",
        "method.phi=5",
        "experiment.n_eval=60",
        "experiment.n_device=3",
        f"hydra.run.dir={tmp_path}/run",
        f"workdir={tmp_path}/work",
    ]
    p = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert p.returncode == 0, p.stderr[-3000:]
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["trained"] is True and s["phi"] == 5.0
    assert s["bit_exact"] is True and s["device_equals_reference"] is True
    assert s["macs"] == s["macs_layer_by_layer"] + s["macs_redundant"]
    assert s["bitops"] <= s["bitops_patch8"] and s["bitops_reduction"] == pytest.approx(
        s["bitops_patch8"] / s["bitops"]
    )
    assert s["peak_sram_patch"] <= s["peak_sram_patch8"] < s["peak_sram_layer"]
    assert s["peak_sram_device"] > s["arena_bytes"]
    # the device writes its arena up to the plan's end; with mixed per-patch precisions the plan can exceed the
    # planner's liveness figure (first-fit fragmentation; the split layer's per-patch output buffer, which the
    # firmware scatters into the stage output): the summary says by how much
    assert 0 < s["peak_arena_device"] <= s["arena_bytes"]
    assert s["device_within_planner"] == (s["peak_arena_device"] <= s["peak_sram_patch"])
    assert s["arena_bytes"] - s["peak_sram_patch"] == s["arena_over_planner_bytes"]
    assert s["bitops_stage"] <= s["bitops_stage_patch8"] < s["bitops_patch8"]
    assert s["bitops_stage_patch8"] - s["bitops_stage"] == s["bitops_patch8"] - s["bitops"]
    # top-1 figures: fractions of the images each was measured on, the device's equal to the host reference's
    for key in ("top1_quantmcu_host", "top1_patch8_host", "top1_quantmcu_device", "top1_patch8_device"):
        n = s["n_eval" if key.endswith("host") else "n_device"]
        assert 0.0 <= s[key] <= 1.0 and abs(round(s[key] * n) - s[key] * n) < 1e-6
    assert s["peak_sram_layer"] > s["peak_sram_patch8"] > 0
    config = json.loads((tmp_path / "run" / "config_precision.json").read_text())
    assert len(config["patches"]) == s["n_patches"]
    per_patch = (tmp_path / "run" / "per_patch.csv").read_text().splitlines()
    assert per_patch[0].startswith("patch,step,layer") and len(per_patch) > s["n_patches"]
