"""On a real board: smoke, int8, profile and the closed loop, end to end through the user's command.

Run only with the board attached and named: ``TINYHIL_HW_BOARD=nucleo-h743zi pytest -m hardware tests/test_hardware.py``
(board overrides such as ``board.driver.link=rtt`` go in ``TINYHIL_HW_ARGS``, space separated). Skipped otherwise,
and skipped with the discovery message when the named board's probe or port is not attached. Counts are DWT cycles:
every layer must count more than zero cycles, milliseconds follow from the core clock, and every layer must be
bit-exact with the integer reference, exactly as in QEMU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.boards import load_board_config
from harness.boards.discovery import preflight
from harness.errors import DeviceError

REPO = Path(__file__).resolve().parent.parent
HW_BOARD = os.environ.get("TINYHIL_HW_BOARD", "")
HW_ARGS = os.environ.get("TINYHIL_HW_ARGS", "").split()

pytestmark = pytest.mark.hardware  # run only with TINYHIL_HW_BOARD set (tests/conftest.py)


@pytest.fixture(scope="module")
def board():
    cfg = load_board_config(HW_BOARD)
    if cfg.emulated:
        pytest.skip(f"{HW_BOARD} is an emulated board; the hardware tests are for real ones")
    try:
        preflight(cfg)
    except DeviceError as e:
        pytest.skip(f"{HW_BOARD} is not attached: {e}")
    return cfg


def tinyhil(*args: str, tmp_path: Path, timeout: float = 3600) -> dict:
    run = tmp_path / "run"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            *args,
            f"board={HW_BOARD}",
            *HW_ARGS,
            f"hydra.run.dir={run}",
            f"workdir={tmp_path / 'work'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return json.loads((run / "summary.json").read_text())


def test_smoke_runs_bit_exact_and_counts_cycles(board, tmp_path):
    s = tinyhil("run", "experiment=smoke", tmp_path=tmp_path)
    assert s["bit_exact"] is True and s["timer"] == "dwt-cycles" and s["unit"] == "cycles"
    assert s["clock_hz"] == board.clock_hz
    layers = s["per_layer"]
    assert layers and all(r["count"] > 0 for r in layers)  # the DWT counter counts on silicon
    assert all(r["ms"] == pytest.approx(r["count"] * 1e3 / board.clock_hz, rel=1e-6) for r in layers)
    assert s["total_ms"] == pytest.approx(s["total_count"] * 1e3 / board.clock_hz, rel=1e-6)


def test_int8_predictions_equal_the_integer_reference(board, tmp_path):
    s = tinyhil("run", "experiment=int8", "model=tiny-cnn", "data=digits", "experiment.n_eval=24",
                "experiment.n_calib=64", tmp_path=tmp_path)  # fmt: skip
    assert s["bit_exact"] is True and s["device_equals_reference"] is True
    assert s["unit"] == "cycles" and s["total_ms"] > 0


def test_profile_writes_a_cycle_table_for_this_board(board, tmp_path):
    table_dir = tmp_path / "lut"
    s = tinyhil("profile", "model=tiny-cnn", f"profile.table_dir={table_dir}", "profile.a_bits=[8]",
                "profile.w_bits=[8]", "profile.o_bits=[8]", "profile.repeats=1", "profile.workers=1",
                tmp_path=tmp_path)  # fmt: skip
    assert (table_dir / f"{HW_BOARD}.csv").is_file()
    assert s.get("unit", "cycles") == "cycles"


def test_closed_loop_converges_on_the_board(board, tmp_path):
    s = tinyhil("run", "experiment=freebits", "model=tiny-cnn", "data=digits", "experiment.n_eval=8",
                "experiment.n_eval_host=120", "experiment.n_calib=64", "experiment.qat.n_train=300",
                "experiment.qat.n_test=60", "experiment.max_rounds=2",
                f"experiment.profile.table_dir={tmp_path / 'lut'}", "experiment.profile.repeats=1",
                tmp_path=tmp_path)  # fmt: skip
    assert s["unit"] == "cycles" and s["final_count_loop"] > 0 and s["final_ms_loop"] > 0
