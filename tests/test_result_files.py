"""What a measuring run leaves in its folder: a useful cli.log, a per-layer table of counts, milliseconds, flash and
RAM, group-readable files, and no absolute path in the summary."""

from __future__ import annotations

import json
import stat

import pandas as pd
import pytest

from harness.results.io import portable, repo_relative
from tests.fixtures.cli import REPO, tinyhil
from tests.fixtures.results import absolute_paths, scan_results


def test_paths_in_results_become_relative_to_the_run_or_the_repository(tmp_path):
    run = tmp_path / "run"
    summary = {"elf": str(REPO / ".cache" / "x.elf"), "model": str(run / "model.pt"), "n": 3,
               "paths": [str(REPO / "checkpoints" / "a.pt"), "relative/b.pt"], "other": "/opt/elsewhere/c.pt"}
    out = portable(summary, run)
    assert out == {"elf": ".cache/x.elf", "model": "model.pt", "n": 3,
                   "paths": ["checkpoints/a.pt", "relative/b.pt"], "other": "c.pt"}
    assert absolute_paths(out) == [] and len(absolute_paths(summary)) == 4
    assert repo_relative(REPO / "checkpoints" / "tiny-cnn-digits.pt") == "checkpoints/tiny-cnn-digits.pt"


@pytest.mark.qemu
def test_a_smoke_run_writes_its_log_its_per_layer_memory_and_milliseconds(tmp_path):
    run = tmp_path / "run"
    p = tinyhil("run", "experiment=smoke", "timer=qemu-cycles", f"hydra.run.dir={run}", f"workdir={tmp_path}/w")
    assert p.returncode == 0, p.stderr[-3000:]
    log = (run / "cli.log").read_text()
    for want in ("command: tinyhil run experiment=smoke", "overrides: experiment=smoke", "board: qemu-mps2-an386",
                 "building smoke", "bit-exact True", "result: experiment=smoke"):
        assert want in log, log
    assert "[INFO]" in log and "[INFO]" not in p.stdout  # INFO goes to the log, not the terminal
    df = pd.read_csv(run / "per_layer.csv")
    s = json.loads((run / "summary.json").read_text())
    assert (df["flash_bytes"] == df["weight_bytes"] + df["bias_bytes"] + df["requant_bytes"]).all()
    weighted = df[df["op"].isin(["conv2d", "depthwise", "pointwise", "fc"])]
    assert (weighted["weight_bytes"] > 0).all() and (weighted["requant_bytes"] == 8 * weighted["out_shape"].map(
        lambda s: int(s.split("x")[2]))).all()
    assert (df["live_bytes"] >= df["in_bytes"] + df["out_bytes"]).all()
    assert df["ms"].round(6).tolist() == (df["count"] * 1e3 / s["clock_hz"]).round(6).tolist()
    assert abs(df["ms"].sum() - s["total_ms"]) < 1e-3
    for f in run.iterdir():
        if f.is_file():
            assert stat.S_IMODE(f.stat().st_mode) == 0o644, f
    assert absolute_paths(s) == []


def test_committed_reference_runs_hold_no_absolute_path_and_no_hydra_folder():
    ref = REPO / "results" / "reference"
    assert scan_results(ref) == []
    texts = [f for f in ref.rglob("*") if f.suffix in (".yaml", ".log", ".md", ".txt") and f.is_file()]
    assert texts, "the reference runs hold their configs and logs"
    assert [str(f) for f in texts if str(REPO) in f.read_text(errors="replace")] == []
    assert list(ref.rglob(".hydra")) == []  # Hydra's own folder holds the machine's paths
