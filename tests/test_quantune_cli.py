"""`tinyhil sensitivity` end to end on the tiny CNN: ranking table and files, the comparison experiment, sweeps."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest

from harness.precision.config import PrecisionConfig
from tests.fixtures.cli import REPO, tinyhil


@pytest.mark.slow
def test_sensitivity_with_the_baseline_comparison_writes_flat_results(tmp_path):
    run = tmp_path / "run"
    p = tinyhil(
        "sensitivity",
        "model=tiny-cnn",
        "data=digits",
        "experiment=quantune",
        "method.n_calib=32",
        "method.k=2",
        "experiment.n_eval=60",
        "experiment.n_random=2",
        f"hydra.run.dir={run}",
        cwd=REPO,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "QuantuneV2 sensitivity" in p.stdout
    s = json.loads((run / "summary.json").read_text())
    n = s["n_layers"]
    assert s["quantune_forward_calls"] == 2 and s["quantune_inference_passes"] == 2
    assert s["baseline_evaluations"] == n + 1
    assert -1.0 <= s["spearman"] <= 1.0 and 0.0 <= s["topk_overlap_k2"] <= 1.0
    assert s["time_ratio"] == pytest.approx(s["baseline_seconds"] / s["quantune_seconds"])
    for key in (
        "top1_quantune_k0",
        "top1_quantune_k5",
        "top1_baseline_k2",
        "top1_uniform_a8w8",
        "top1_uniform_a4w4",
    ):
        assert 0.0 <= s[key] <= 1.0
    assert s["bitops_rel_uniform_a8w8"] == 1.0 and s["bitops_rel_quantune_k5"] == 1.0
    assert s["bitops_rel_quantune_k0"] == pytest.approx(s["bitops_rel_uniform_a4w4"])
    assert all(not isinstance(v, dict) for v in s.values())  # flat
    # ranking quality: every k from 0 to n, three rankings and two random ones, judged by top-1
    assert s["n_layers_changeable"] == n and s["quality_ks"] == list(range(1, n))
    with (run / "ranking_quality.csv").open() as f:
        quality = list(csv.DictReader(f))
    assert [int(r["k"]) for r in quality] == list(range(n + 1))
    for r in quality:
        lo, mean, hi = (float(r[f"top1_random_{x}"]) for x in ("min", "mean", "max"))
        assert lo <= mean <= hi and 0.0 <= float(r["top1_quantune"]) <= 1.0
        assert float(r["top1_baseline"]) == s[f"top1_baseline_k{r['k']}"]
    ends = [quality[0], quality[-1]]  # all low / all high: the same assignment whatever the ranking
    assert all(r["top1_quantune"] == r["top1_baseline"] == r["top1_random_mean"] for r in ends)
    q_mean = sum(float(r["top1_quantune"]) for r in quality[1:-1]) / (n - 1)
    assert s["quality_mean_top1_quantune"] == pytest.approx(q_mean)
    assert s["ranking_seconds_baseline"] == s["baseline_seconds"] and s["ranking_seconds_random"] < 1.0
    assert s["claim_holds"] == (s["claim_faster"] and s["claim_equal_or_better_accuracy"])
    assert s["claim_equal_or_better_accuracy"] == (s["quality_diff_pts_quantune_vs_baseline"] >= -1.0)
    assert s["n_evaluations"] < 4 * (n + 1) + 2  # assignments two rankings share are evaluated once
    for f in (
        "ranking.csv",
        "ops.csv",
        "sensitivity.png",
        "precision.json",
        "baseline.csv",
        "sweep.csv",
        "tradeoff.png",
        "ranking_quality.csv",
        "ranking_quality.png",
    ):
        assert (run / f).stat().st_size > 0, f
    with (run / "ranking.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["layer"] for r in rows] == s["ranking"] and len(rows) == n
    cfg = PrecisionConfig.load(run / "precision.json")
    assert cfg.meta["kept_high"] == s["ranking"][:2]
    assert all(cfg[name][1] == 8 for name in s["ranking"][:2])
    assert all(cfg[name][1] == 4 for name in s["ranking"][2:])


@pytest.mark.slow
def test_sweeping_k_is_a_multirun(tmp_path):
    p = tinyhil(
        "sensitivity",
        "-m",
        "model=tiny-cnn",
        "data=digits",
        "method.k=0,3",
        "method.n_calib=16",
        "evaluate=false",
        f"hydra.sweep.dir={tmp_path}/sweep",
        cwd=REPO,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    table = pd.read_csv(tmp_path / "sweep" / "sweep.csv").sort_values("override.method.k")  # one row per job
    assert list(table["override.method.k"]) == [0, 3] and (table["status"] == "done").all()
    runs = [json.loads((tmp_path / "sweep" / job / "summary.json").read_text()) for job in table["job"]]
    assert [r["k"] for r in runs] == [0, 3]
    assert runs[0]["bitops"] < runs[1]["bitops"]  # more layers kept high, more BitOPs


def test_a_bad_k_is_a_clear_error(tmp_path):
    p = tinyhil(
        "sensitivity",
        "model=tiny-cnn",
        "data=digits",
        "method.k=99",
        "evaluate=false",
        f"hydra.run.dir={tmp_path}/run",
        cwd=REPO,
    )
    assert p.returncode != 0
    assert "method.k=99" in p.stderr and "Traceback" not in p.stderr
