"""`tinyhil run experiment=quantmcu` end to end on an emulated board, with the trained tiny CNN (digits): the
summary carries the memory, MAC and BitOPs figures, both models run bit-exact and agree with the host."""

from __future__ import annotations

import csv
import json

import pytest

from tests.fixtures.cli import tinyhil

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
    p = tinyhil(*args, timeout=600)
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


@pytest.mark.slow
def test_the_quantmcu_sweep_fine_tunes_each_point_and_reports_counts_and_device_top1(tmp_path):
    args = [
        "run",
        "experiment=quantmcu-sweep",
        "model=tiny-cnn",
        "data=digits",
        "experiment.points=[{phi: 2.0, lam: 0.0},{phi: 1000.0, lam: 0.2, bits: [8, 4]}]",
        "experiment.n_eval=60",
        "experiment.n_device=4",
        "experiment.finetune.n_train=128",
        "experiment.finetune.batch_size=32",
        f"hydra.run.dir={tmp_path}/run",
        f"workdir={tmp_path}/work",
    ]
    p = tinyhil(*args, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path / "run"
    s = json.loads((run / "summary.json").read_text())
    assert s["experiment"] == "quantmcu-sweep" and s["n_points"] == 2 and s["finetune_epochs"] == 1
    assert s["bit_exact"] is True and s["device_equals_reference"] is True
    with (run / "sweep.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["patch8", "patch8ft", "quantmcu", "quantmcu"]
    assert {r["unit"] for r in rows} == {s["unit"]} == {"instructions"}
    p8 = rows[0]
    assert float(p8["count"]) == s["total_count_patch8"] and float(p8["bitops_reduction"]) == 1.0
    for r, label in zip(rows[2:], s["points"]):
        point = json.loads((run / "points" / label / "summary.json").read_text())
        assert r["label"] == label and point["experiment"] == "quantmcu" and point["finetuned"] is True
        assert float(r["count"]) == point["total_count"] and r["config_hash"] == point["config_hash"]
        assert float(r["count_ratio_vs_patch8"]) == pytest.approx(
            point["total_count"] / s["total_count_patch8"]
        )
        assert float(r["bitops_reduction"]) == pytest.approx(point["bitops_patch8"] / point["bitops"])
        assert float(r["bitops_reduction"]) > 1.0  # both points lower something
        n = point["n_device"]
        assert abs(round(float(r["top1_device"]) * n) - float(r["top1_device"]) * n) < 1e-6
        assert point["sram_need"] == point["sram_need_artifact"] <= point["memory_budget"]
        assert point["top1_patch8ft_host"] == s["top1_patch8ft_host"]
        assert (run / "points" / label / "config.yaml").is_file()
        assert s[f"bitops_reduction_{label}"] == point["bitops_reduction"]
    assert s["max_bitops_reduction"] == max(float(r["bitops_reduction"]) for r in rows[2:])
    assert s["reference"] == "patch8ft" and s["paper_bitops_reduction"] == 2.2
    assert (run / "sweep.png").stat().st_size > 10_000
