"""The figure notebook runs on the committed reference results and draws every figure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_figures_notebook_regenerates_every_figure_from_the_reference_runs(tmp_path):
    env = dict(os.environ, TINYHIL_FIGURES_OUT=str(tmp_path), MPLBACKEND="Agg")
    p = subprocess.run(
        [sys.executable, str(REPO / "notebooks" / "figures.py")],
        cwd=REPO,
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "skipped" not in p.stdout, p.stdout
    names = sorted(f.name for f in tmp_path.glob("*.png"))
    assert names == [
        "freebits_loop.png",
        "kernels_per_mac.png",
        "quantmcu_tradeoff.png",
        "quantune_tradeoff.png",
    ]
    assert all(f.stat().st_size > 10_000 for f in tmp_path.glob("*.png"))
    assert "layers where the pair beats a8w8" in p.stdout and "goal met" in p.stdout


def test_figures_notebook_skips_missing_runs_with_a_note(tmp_path):
    env = dict(
        os.environ, TINYHIL_FIGURES_OUT=str(tmp_path / "out"), TINYHIL_REFERENCE=str(tmp_path / "none")
    )
    p = subprocess.run(
        [sys.executable, str(REPO / "notebooks" / "figures.py")],
        cwd=REPO,
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("skipped") == 4 and "0 figure(s)" in p.stdout
