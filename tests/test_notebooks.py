"""The figure notebook is a real notebook (paired with its .py by jupytext): executed, it shows every figure inline
and reads the reference runs' numbers."""

from __future__ import annotations

import json
import os

import jupytext
import nbformat
from nbclient import NotebookClient

from harness.experiments.figures import find_run
from tests.fixtures.cli import REPO

NB = REPO / "notebooks" / "figures.ipynb"


def _execute(tmp_path, **env: str):
    nb = nbformat.read(NB, as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def _outputs(nb) -> tuple[list[str], list[dict]]:
    """(stdout text of every cell, every inline image output)."""
    text, images = [], []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text.append(out["text"])
            if out.get("output_type") == "display_data" and "image/png" in out.get("data", {}):
                images.append(out)
    return text, images


def _json_lines(text: list[str]) -> dict:
    out = {}
    for chunk in text:
        for line in chunk.splitlines():
            if line.startswith("{"):
                out.update(json.loads(line))
    return out


def test_the_notebook_and_its_script_are_paired():
    nb = nbformat.read(NB, as_version=4)
    py = jupytext.read(REPO / "notebooks" / "figures.py")
    assert [c.source for c in nb.cells] == [c.source for c in py.cells]
    assert nb.metadata["jupytext"]["formats"] == "ipynb,py:percent"


def test_the_notebook_shows_every_figure_inline_from_the_reference_runs(tmp_path):
    nb = _execute(tmp_path)
    text, images = _outputs(nb)
    info = _json_lines(text)
    assert info["shown"] == ["kernels_per_mac", "freebits_pareto", "freebits_loop", "quantmcu_bars",
                             "quantmcu_tradeoff", "mcunetv2_peak_sram", "quantune_ranking", "quantune_topk"]
    assert info["skipped"] == []
    assert len(images) == len(info["shown"])
    # the numbers the notebook prints are the reference closed loop's, and its verdict follows from them
    run = find_run(REPO / "results" / "reference", "freebits-mbv2")
    s = json.loads((run / "summary.json").read_text())
    fb = info["freebits"]
    assert fb == {k: s[k] for k in ("reduction_vs_int8_pct", "top1_loss_pts", "goal_met")}
    assert fb["goal_met"] is (fb["reduction_vs_int8_pct"] >= 28.6 and fb["top1_loss_pts"] <= 1.0)


def test_the_notebook_skips_missing_runs_with_a_note(tmp_path):
    nb = _execute(tmp_path, TINYHIL_REFERENCE=str(tmp_path / "none"))
    text, images = _outputs(nb)
    info = _json_lines(text)
    assert info["shown"] == ["mcunetv2_peak_sram"]  # computed by the planner, needs no run
    assert len(info["skipped"]) == 7 and len(images) == 1
    assert sum(chunk.count("skipped ") for chunk in text) == 7
