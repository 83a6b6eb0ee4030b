"""The user's view: `tinyhil run experiment=smoke` end to end, and clear errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.boards import make_board

REPO = Path(__file__).resolve().parent.parent


def tinyhil(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.qemu
def test_smoke_run_writes_summary_and_per_layer_table(tmp_path, board_name):
    p = tinyhil(
        "run", "experiment=smoke", f"board={board_name}", f"hydra.run.dir={tmp_path}/run",
        f"workdir={tmp_path}/work", cwd=REPO,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["board"] == board_name
    timer = make_board(board_name).cfg.timer  # the board's default timer (qemu-mps2-an500: cycles, stm32h743)
    assert summary["timer"] == timer.source and summary["unit"] == timer.unit
    assert summary["bit_exact"] is True and summary["mismatches"] == []
    assert all(not isinstance(v, dict) for v in summary.values())  # flat keys
    assert 0 < summary["emulator_seconds"] < summary["host_seconds"]
    import pandas as pd

    per_layer = pd.read_csv(tmp_path / "run" / "per_layer.csv")
    assert set(per_layer.op) == {"conv2d", "depthwise", "pointwise", "add", "avgpool", "fc"}
    assert len(per_layer) == summary["n_layers"]
    assert per_layer["count"].sum() == pytest.approx(summary["total_count"])
    assert per_layer["macs"].sum() == summary["macs"]
    assert per_layer["bit_exact"].all() and (per_layer["count"] > 0).all()
    assert (per_layer["timer"] == timer.source).all()


def test_unknown_board_is_a_clear_error(tmp_path):
    p = tinyhil("run", "experiment=smoke", "board=no-such-board", f"hydra.run.dir={tmp_path}/run", cwd=REPO)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    assert "no-such-board" in p.stderr


def test_unknown_command_lists_the_commands(tmp_path):
    p = tinyhil("frobnicate", cwd=REPO)
    assert p.returncode == 2
    assert "unknown command" in p.stderr and "profile" in p.stderr


@pytest.mark.parametrize(
    "override,key",
    [
        ("board.clock_hz=abc", "board.clock_hz"),
        ("experiment.n_inputs=two", "experiment.n_inputs"),
        ("experiment.no_such_key=1", "experiment.no_such_key"),
    ],
)
def test_a_bad_value_or_key_is_one_line_naming_the_key_before_any_work(tmp_path, override, key):
    p = tinyhil("run", "experiment=smoke", override, f"hydra.run.dir={tmp_path}/run", cwd=REPO)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2
    assert len(lines) == 1 and key in lines[0], p.stderr
    assert not (tmp_path / "run").exists()  # refused before any work started


def test_a_broken_invariant_keeps_its_traceback(tmp_path):
    # an InternalError is a bug in tinyhil, not a user's mistake: the CLI must not reduce it to one line
    p = tinyhil("run", "experiment=smoke", "experiment.entry=tests.fixtures.broken_invariant:run",
                f"hydra.run.dir={tmp_path}/run", cwd=REPO)
    assert p.returncode != 0
    assert "Traceback" in p.stderr and "InternalError: the arena placer lost a tensor" in p.stderr
