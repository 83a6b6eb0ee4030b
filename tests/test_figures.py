"""``tinyhil figures``: every paper figure as PNG and PDF from measured runs, skipping missing runs with a note."""

from __future__ import annotations

import json
import shutil

import pandas as pd

from harness.experiments.figures import Skipped, draw_freebits_pareto, pareto_front
from tests.fixtures.cli import REPO, tinyhil

REF = REPO / "results" / "reference"


def _pareto_run(root):
    """A freebits-pareto run folder in the layout that experiment writes (pareto.csv + summary.json)."""
    d = root / "freebits-pareto-mbv2-w0.35-an386"
    d.mkdir(parents=True)
    pd.DataFrame({
        "config_hash": ["a1", "b2", "c3", "d4"], "method": ["uniform", "freebits", "freebits", "bitops"],
        "measured_count": [29.5e6, 27.1e6, 25.0e6, 41.9e6], "unit": ["instructions"] * 4,
        "predicted_count": [29.9e6, 27.8e6, 26.0e6, 43.3e6], "device_top1": [0.88, 0.87, 0.80, 0.10],
        "host_top1": [0.88, 0.86, 0.81, 0.11],
    }).to_csv(d / "pareto.csv", index=False)  # fmt: skip
    (d / "summary.json").write_text(json.dumps({"experiment": "freebits-pareto", "model": "mbv2-w0.35",
                                                "data": "fashion_mnist", "board": "qemu-mps2-an386"}))


def test_the_pareto_figure_reads_any_pareto_csv_with_a_count_and_a_top1(tmp_path):
    _pareto_run(tmp_path)
    fig = draw_freebits_pareto(tmp_path)
    assert not isinstance(fig, Skipped)
    ax = fig.axes[0]
    assert "million instructions" in ax.get_xlabel() and "device" in ax.get_ylabel()  # no int8 count: absolute
    assert sum(len(c.get_offsets()) for c in ax.collections) == 4 + 3  # the points, then the front's 3 rings


def test_the_pareto_front_keeps_only_undominated_points():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 1.5, 4.0], "y": [50.0, 70.0, 90.0, 40.0, 85.0]})
    assert pareto_front(df, "x", "y")[["x", "y"]].values.tolist() == [[1.0, 50.0], [2.0, 70.0], [3.0, 90.0]]


def test_figures_draws_every_paper_figure_as_png_and_pdf(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(REF, results)  # with the reference Pareto run (results/reference/freebits-pareto-*)
    out = tmp_path / "figs"
    p = tinyhil("figures", f"results={results}", f"out={out}")
    assert p.returncode == 0, p.stderr[-3000:]
    s = json.loads((out / "summary.json").read_text())
    names = ["kernels_per_mac", "freebits_pareto", "freebits_loop", "quantmcu_bars", "quantmcu_tradeoff",
             "mcunetv2_peak_sram", "quantune_ranking", "quantune_topk"]
    assert s["figures"] == 8 and s["skipped"] == []
    for n in names:
        assert (out / f"{n}.png").stat().st_size > 10_000, n
        assert (out / f"{n}.pdf").read_bytes()[:5] == b"%PDF-", n
    assert "figures" in (out / "cli.log").read_text()


def test_figures_skips_a_missing_run_with_a_note(tmp_path):
    out = tmp_path / "figs"
    p = tinyhil("figures", f"results={tmp_path / 'empty'}", f"out={out}")
    assert p.returncode == 0, p.stderr[-3000:]
    s = json.loads((out / "summary.json").read_text())
    assert s["figures"] == 1 and (out / "mcunetv2_peak_sram.pdf").is_file()
    assert len(s["skipped"]) == 7 and all("no " in x for x in s["skipped"])
    assert p.stderr.count("skipped") == 7


def test_figures_help_says_what_it_does():
    p = tinyhil("figures", "--help")
    assert p.returncode == 0 and p.stdout.startswith("tinyhil figures: redraw the papers' figures")
