"""The figure notebook runs on the committed reference results and draws every figure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _figures(**env: str) -> subprocess.CompletedProcess:
    """Run notebooks/figures.py as a script with extra environment variables."""
    return subprocess.run(
        [sys.executable, str(REPO / "notebooks" / "figures.py")],
        cwd=REPO,
        check=False,
        env=dict(os.environ, MPLBACKEND="Agg", **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_figures_notebook_regenerates_every_figure_from_the_reference_runs(tmp_path):
    p = _figures(TINYHIL_FIGURES_OUT=str(tmp_path))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "skipped" not in p.stdout, p.stdout
    names = sorted(f.name for f in tmp_path.glob("*.png"))
    assert names == ["freebits_loop.png", "kernels_per_mac.png", "quantmcu_tradeoff.png", "quantune_tradeoff.png"]
    assert all(f.stat().st_size > 10_000 for f in tmp_path.glob("*.png"))
    assert "layers where the pair beats a8w8" in p.stdout and "goal met" in p.stdout


def test_figures_notebook_skips_missing_runs_with_a_note(tmp_path):
    p = _figures(TINYHIL_FIGURES_OUT=str(tmp_path / "out"), TINYHIL_REFERENCE=str(tmp_path / "none"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("skipped") == 4 and "0 figure(s)" in p.stdout
