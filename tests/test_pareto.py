"""`tinyhil run experiment=freebits-pareto`: the front's pure functions, the points' checks, and (in QEMU) the
whole experiment on the tiny CNN with points run in a pool of two processes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from harness.experiments.figures import Skipped, draw_freebits_pareto
from harness.experiments.freebits_pareto import point_label
from harness.experiments.pareto import dominated, front_mask
from harness.precision.config import PrecisionConfig
from tests.fixtures.cli import REPO, tinyhil


def _front_is_consistent(df: pd.DataFrame, x: str, y: str) -> None:
    """No row on the front is dominated by another row; every row off the front is dominated or repeats a
    front row's position."""
    for i, r in df.iterrows():
        if r["on_front"]:
            assert not dominated(df, x, y, i), r["label"]
        else:
            same = df[df["on_front"] & (df[x] == r[x]) & (df[y] == r[y])]
            assert dominated(df, x, y, i) or len(same), r["label"]


def test_front_mask_marks_the_undominated_rows_and_skips_missing_ones():
    df = pd.DataFrame({"x": [3.0, 1.0, 2.0, 2.0, None, 4.0], "y": [0.9, 0.5, 0.7, 0.6, 0.99, 0.9],
                       "label": list("abcdef")})  # fmt: skip
    df["on_front"] = front_mask(df, "x", "y")
    assert df["on_front"].tolist() == [True, True, True, False, False, False]
    _front_is_consistent(df.dropna(), "x", "y")
    assert dominated(df.dropna(), "x", "y", 5) and not dominated(df.dropna(), "x", "y", 0)


def test_point_labels_name_the_method_and_its_options():
    assert point_label({"method": "uniform", "start": {"name": "uniform", "a_bits": 4, "w_bits": 2}}) == "uniform-a4w2"
    assert point_label({"method": "freebits", "start": {"name": "bayesbits", "lam": 0.1}}) == "freebits-lam0.1"
    assert point_label({"method": "x", "label": "mine", "start": {"name": "bitops"}}) == "mine"


def test_a_bad_point_is_refused_before_any_work(tmp_path):
    run = tmp_path / "run"
    p = tinyhil("run", "experiment=freebits-pareto", "model=tiny-cnn", "data=digits",
                "experiment.points=[{method: x, start: {name: uniform, a_bits: 3}}]", f"hydra.run.dir={run}",
                f"workdir={tmp_path}/work")  # fmt: skip
    assert p.returncode != 0 and "a_bits must be 2, 4 or 8" in p.stderr
    assert not (run / "pareto.csv").exists()
    p = tinyhil("run", "experiment=freebits-pareto", "model=tiny-cnn", "data=digits", "experiment.only=[nope]",
                f"hydra.run.dir={run}", f"workdir={tmp_path}/work")  # fmt: skip
    assert p.returncode != 0 and "experiment.only names ['nope']" in p.stderr
    assert not list((tmp_path / "work").rglob("*.elf"))


BB = "name: bayesbits, epochs: 2, n_train: 600, batch_size: 32, lam: 2.0"
POINTS = (
    "[{method: uniform, start: {name: uniform, a_bits: 8, w_bits: 8}, refine: false},"
    " {method: uniform, start: {name: uniform, a_bits: 4, w_bits: 4}, refine: false},"
    " {method: bitops-ilp, label: bitops-ilp, start: {name: bitops}, refine: false},"
    f" {{method: bayesbits, label: bb, start: {{{BB}}}, refine: false}},"
    f" {{method: freebits, label: fb, start: {{{BB}}}}},"
    f" {{method: freebits-latency, label: fb-lat, start: {{{BB}, regulariser: latency}}}}]"
)


@pytest.mark.qemu
def test_freebits_pareto_end_to_end_on_the_tiny_cnn(tmp_path):
    run = tmp_path / "freebits-pareto-tiny"
    p = tinyhil(
        "run", "experiment=freebits-pareto", "model=tiny-cnn", "data=digits", f"experiment.points={POINTS}",
        "experiment.n_eval=8", "experiment.n_eval_host=120", "experiment.n_calib=64", "experiment.qat.n_train=300",
        "experiment.qat.n_test=60", "experiment.max_rounds=2", "experiment.n_eval_device=150",
        "experiment.n_eval_screen=10", "experiment.jobs=2", f"experiment.profile.table_dir={tmp_path / 'lut'}",
        "experiment.profile.repeats=1", f"workdir={tmp_path}/work", f"hydra.run.dir={run}", cwd=REPO,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    s = json.loads((run / "summary.json").read_text())
    df = pd.read_csv(run / "pareto.csv")
    labels = ["uniform-a8w8", "uniform-a4w4", "bitops-ilp", "bb", "fb", "fb-lat"]

    # every point measured, with its unit and timer
    assert df["label"].tolist() == labels and df["error"].isna().all()
    assert (df["measured_count"] > 0).all() and set(df["unit"]) == {"instructions"}
    assert set(df["timer"]) == {"qemu-icount"} and df["bit_exact"].all()
    assert s["n_points"] == 6 and s["n_measured"] == 6 and s["n_methods"] == 5 and s["bit_exact"] is True
    assert s["jobs"] == 2

    # the hash is the final configuration's; different bits, different hashes
    finals = {lb: PrecisionConfig.load(run / "points" / lb / "final_config.json") for lb in labels}
    for _, r in df.iterrows():
        assert r["config_hash"] == finals[r["label"]].digest()
    for a in labels:
        for b in labels:
            assert (finals[a].layers == finals[b].layers) == (df.set_index("label").loc[a, "config_hash"]
                                                              == df.set_index("label").loc[b, "config_hash"])
    assert df["config_hash"].nunique() >= 4
    assert finals["bb"].layers != finals["uniform-a8w8"].layers, "lam = 2 lowers some bits"

    # counts: int8 measured as the baseline; predictions from the profiled table
    a8 = df.set_index("label").loc["uniform-a8w8"]
    assert a8["measured_count"] == pytest.approx(s["baseline_int8_count"], rel=0.01)
    assert np.allclose(df["vs_int8"], df["measured_count"] / s["baseline_int8_count"])
    assert np.allclose(df["prediction_error_pct"],
                       100 * (df["predicted_count"] - df["measured_count"]) / df["measured_count"])  # fmt: skip
    assert (df["prediction_error_pct"].abs() < 5).all()

    # Bayesian Bits alone is the Free Bits point's start; the refiner only raises bits and keeps the best round
    fb = json.loads((run / "points" / "fb" / "summary.json").read_text())
    bb = json.loads((run / "points" / "bb" / "summary.json").read_text())
    assert fb["start_config_hash"] == bb["config_hash"] and fb["refined"] and not bb["refined"]
    start = PrecisionConfig.load(run / "points" / "fb" / "start_config.json")
    for name, (a, w) in finals["fb"].layers.items():
        assert a >= start[name][0] and w >= start[name][1]
    rounds = pd.read_csv(run / "points" / "fb" / "rounds.csv")
    assert fb["final_count_loop"] == rounds["measured_count"].min() <= fb["start_count"]
    assert fb["measured_count"] == pytest.approx(fb["final_count_loop"], rel=0.02)

    # the front: consistent with the data, its points on all n_eval_device images, the others screened
    _front_is_consistent(df, "measured_count", "top1_device")
    assert df["on_front"].any() and s["front"] == df.loc[df["on_front"], "label"].tolist()
    assert (df.loc[df["on_front"], "n_eval_device"] == 150).all()
    assert set(df.loc[~df["on_front"], "n_eval_device"]) <= {10, 150}
    # the int8 point the loss is measured against has as many images as the front
    assert df.set_index("label").loc["uniform-a8w8", "n_eval_device"] == 150

    # each point's summary and images agree with its row
    front1 = df.loc[df["on_front"], "label"].iloc[0]
    labels_150 = pd.read_csv(run / "points" / front1 / "image_predictions.csv")["label"].tolist()
    for _, r in df.iterrows():
        ps = json.loads((run / "points" / r["label"] / "summary.json").read_text())
        for k in ("config_hash", "method", "measured_count", "top1_device", "top1_host", "n_eval_device",
                  "on_front", "predicted_count"):  # fmt: skip
            assert ps[k] == (r[k].item() if hasattr(r[k], "item") else r[k]), (r["label"], k)
        img = pd.read_csv(run / "points" / r["label"] / "image_predictions.csv")
        assert len(img) == r["n_eval_device"] and (img["device"] == img["reference"]).all()
        assert r["top1_device"] == pytest.approx((img["device"] == img["label"]).mean())
        assert s[f"measured_count_{r['label']}"] == r["measured_count"]
        # the same test images, in the same order, whichever process evaluated the point (150 > n_eval_host: the
        # workers prepare as many images as the parent did)
        assert img["label"].tolist() == labels_150[: len(img)]

    # the best saving on the front within a point of the fine-tuned int8's top-1
    ref = s["top1_int8_reference"]
    assert ref == a8["top1_device"]
    ok = df[df["on_front"] & (100 * (ref - df["top1_device"]) <= 1.0)]
    assert s["best_reduction_vs_int8_pct"] == pytest.approx(ok["reduction_vs_int8_pct"].max())

    # the figure, here and in `tinyhil figures`
    assert (run / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "pareto.png").stat().st_size > 10_000
    assert (run / "pareto.pdf").read_bytes()[:5] == b"%PDF-"
    fig = draw_freebits_pareto(tmp_path)
    assert not isinstance(fig, Skipped) and len(fig.axes[0].collections) >= 6
