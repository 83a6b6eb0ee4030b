"""``tinyhil run experiment=freebits-pareto``: the Free Bits latency-accuracy Pareto front, measured on the board.

One trained network, one board, one latency table (profiled once, shared by every point: the table is
content-addressed per board and firmware, see :mod:`harness.experiments.profile`). Each point of
``experiment.points`` is a start method (``start``: a ``method`` config, e.g. Bayesian Bits at one regulariser
strength, uniform 4 bits, the BitOPs ILP), then, with ``refine``, the Free Bits refiner in the closed loop on the
board (:func:`harness.experiments.freebits.run_loop`), then short QAT at the final precisions and top-1 on the
device (:func:`harness.experiments.freebits.finish`: every image's logits checked against the host integer
reference). Baselines are points without the refiner: uniform 8/4/2 bits, the BitOPs ILP, Bayesian Bits alone.

With ``n_eval_screen`` set, every point is first evaluated on that many device images, and the points on the
front (by measured count and device top-1) are then run again on ``n_eval_device`` images, until the front is
made of fully evaluated points only; without it every point gets ``n_eval_device`` images.

Points are independent once the table is profiled: ``experiment.jobs`` > 1 runs them in a process pool (each
worker prepares the network again and builds in its own folders), and ``experiment.only`` restricts a run to some
labels, so a Hydra multirun can shard them (docs/scaling.md).

Writes ``pareto.csv`` (one row per point, :data:`COLUMNS`), ``pareto.png``/``.pdf``, ``points/<label>/`` (the
point's ``summary.json``, start and final configurations, its rounds when refined, per-image predictions) and the
flat ``summary.json``. A point that fails is a row with its ``error`` and the others go on; a result that is not
bit-exact makes ``bit_exact`` false, which fails the command (exit 3) after everything is written.
"""

from __future__ import annotations

import multiprocessing
import re
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.errors import ConfigError, ResultError
from harness.experiments.freebits import (
    Bench,
    finish,
    predicted_count,
    run_loop,
    setup,
    start_config,
)
from harness.experiments.pareto import (
    GOAL_MAX_TOP1_LOSS_PTS,
    GOAL_REDUCTION_PCT,
    front_mask,
    pareto_figure,
)
from harness.loop.context import total_count
from harness.loop.deploy import Deployed
from harness.measure.target import timer_keys
from harness.results.io import atomic_write_text, write_summary, write_table
from harness.results.plotting import save
from harness.search import check_method
from harness.search.bitops_budget import bitops
from harness.search.uniform import uniform_config

COLUMNS = (
    "config_hash", "method", "label", "measured_count", "unit", "timer", "predicted_count", "prediction_error_pct",
    "top1_device", "top1_host", "n_eval_device", "on_front", "vs_int8", "reduction_vs_int8_pct", "bitops_vs_int8",
    "refined", "rounds", "qat_epochs", "bit_exact", "seconds", "error",
)  # fmt: skip


# ------------------------------------------------------------------------------------------ points


def point_label(point: dict) -> str:
    """The point's name (its folder and row): ``label`` when given, else its method and start options."""
    if point.get("label"):
        return str(point["label"])
    start = dict(point["start"])
    name = start.pop("name", "?")
    parts = [str(point["method"])]
    if name == "uniform":
        parts.append(f"a{start.pop('a_bits', 8)}w{start.pop('w_bits', 8)}")
    parts += [f"{k}{v}" for k, v in sorted(start.items())]
    return re.sub(r"[^A-Za-z0-9._-]+", "", "-".join(parts))


def points_of(cfg: DictConfig) -> list[dict]:
    """The experiment's points as plain dicts with their labels, checked before any work starts: known start
    methods with valid options, unique labels, ``only`` naming existing labels."""
    e = cfg.experiment
    points = [dict(p) for p in OmegaConf.to_container(e.points, resolve=True)]
    if not points:
        raise ConfigError("experiment.points is empty: give a list of {method, start: {name, ...}, refine}")
    for p in points:
        if not p.get("start") or not p["start"].get("name"):
            raise ConfigError(f"experiment.points: {p} needs start: {{name: <method>, ...}}")
        check_method(p["start"])
        p["label"] = point_label(p)
    labels = [p["label"] for p in points]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"experiment.points repeat a label: {labels}; give each a distinct label")
    only = list(e.only or [])
    unknown = sorted(set(only) - set(labels))
    if unknown:
        raise ConfigError(f"experiment.only names {unknown}, not points of this run; labels: {labels}")
    return [p for p in points if not only or p["label"] in only]


def check_config(cfg: DictConfig) -> None:
    """The runner's check before the run folder is claimed (:func:`harness.experiments.runner.check_config`)."""
    points_of(cfg)
    e = cfg.experiment
    if int(e.n_eval_device) < 1 or (e.n_eval_screen is not None and int(e.n_eval_screen) < 1) or int(e.jobs) < 1:
        raise ConfigError("experiment.n_eval_device, n_eval_screen and jobs must be at least 1")


@dataclass
class Outcome:
    """What one point gave: its pareto.csv row, its summary, and (for evaluating it on more images later) the
    exported integer model of its final configuration."""

    row: dict
    summary: dict
    model: Any = None
    config: Any = None


def run_point(bench: Bench, point: dict, d: Path, n_device: int, show: bool = True) -> Outcome:
    """One point: start, (refiner + closed loop), QAT at the final precisions, device and host top-1."""
    t0 = time.perf_counter()
    label = point["label"]
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_text(d / "point.yaml", OmegaConf.to_yaml(OmegaConf.create(point)))
    start = start_config(bench, point["start"])
    start.save(d / "start_config.json")
    loop: dict = {}
    if point.get("refine", True):
        res = run_loop(bench, start, tag=f"{label}/rounds")
        write_table(pd.DataFrame([r.row() for r in res.rounds]), d / "rounds.csv")
        write_table(res.predictions, d / "predictions.csv")
        final, predicted = res.best.config, res.best.predicted
        loop = {"rounds": len(res.rounds), "stop_reason": res.stop_reason, "start_count": res.start.measured,
                "final_count_loop": res.best.measured, "top1_start_host": res.start.top1}  # fmt: skip
    else:
        final, predicted = start, predicted_count(bench, start)
    final.save(d / "final_config.json")
    qat = OmegaConf.to_container(bench.cfg.experiment.qat, resolve=True)
    if not point.get("finetune", True):
        qat["epochs"] = 0
    fin = finish(bench, final, f"{label}/final", n_device, show=show, qat_cfg=OmegaConf.create(qat))
    write_images(fin.device, d / "image_predictions.csv")
    row = point_row(bench, point, fin.device, predicted, fin.top1_host, int(fin.qat.get("qat_epochs", 0)))
    row.update(rounds=loop.get("rounds", 0), seconds=round(time.perf_counter() - t0, 1))
    summary = {
        "experiment": "freebits-pareto-point", **row, "start_method": str(start.meta.get("method", "")),
        "start_config_hash": start.digest(), "start_predicted_count": predicted_count(bench, start),
        "start_bitops_vs_int8": _bitops_ratio(bench, start), **loop, **fin.qat,
        "device_equals_reference": fin.device.equals_reference, "pairs": _pair_counts(final),
    }  # fmt: skip
    return Outcome(row, summary, fin.device.model, final)


def point_row(bench: Bench, point: dict, dev: Deployed, predicted: float, top1_host: float, epochs: int) -> dict:
    measured = total_count(dev.measurement)
    return {
        "config_hash": dev.config.digest(),
        "method": str(point["method"]),
        "label": point["label"],
        "measured_count": measured,
        "unit": bench.unit,
        "timer": bench.board.cfg.timer.source,
        "predicted_count": predicted,
        "prediction_error_pct": 100.0 * (predicted - measured) / measured,
        "top1_device": dev.top1,
        "top1_host": top1_host,
        "n_eval_device": len(dev.labels),
        "on_front": False,
        "vs_int8": measured / bench.int8_count,
        "reduction_vs_int8_pct": 100.0 * (1.0 - measured / bench.int8_count),
        "bitops_vs_int8": _bitops_ratio(bench, dev.config),
        "refined": bool(point.get("refine", True)),
        "qat_epochs": epochs,
        "bit_exact": bool(dev.equals_reference),
        "error": "",
    }


def failed_row(point: dict, e: BaseException, unit: str, timer: str) -> dict:
    """The row of a point that did not finish: its error; ``bit_exact`` false only for a wrong result."""
    row: dict = {c: None for c in COLUMNS}
    row.update(method=str(point["method"]), label=point["label"], unit=unit, timer=timer, on_front=False,
               refined=bool(point.get("refine", True)), bit_exact=False if isinstance(e, ResultError) else None,
               error=f"{type(e).__name__}: {' '.join(str(e).split())}"[:500])  # fmt: skip
    return row


def safe_point(bench: Bench, point: dict, run_dir: Path, n_device: int, show: bool) -> Outcome:
    """:func:`run_point`, a failure recorded as the point's row (and its summary) instead of raised."""
    d = run_dir / "points" / point["label"]
    try:
        out = run_point(bench, point, d, n_device, show)
    except Exception as e:  # noqa: BLE001 - any failure of one point is recorded; the others go on
        row = failed_row(point, e, bench.unit, bench.board.cfg.timer.source)
        bench.log(f"point {point['label']} failed: {row['error']}")
        out = Outcome(row, {"experiment": "freebits-pareto-point", **row, "traceback": traceback.format_exc()})
    write_summary(d, out.summary)
    return out


def write_images(dev: Deployed, path: Path) -> None:
    write_table(
        pd.DataFrame({"label": dev.labels, "device": dev.predictions, "reference": dev.reference_predictions}),
        path,
    )


def _bitops_ratio(bench: Bench, config) -> float:
    return bitops(bench.layers, config) / bitops(bench.layers, uniform_config(bench.layers, 8, 8))


def _pair_counts(config) -> dict[str, int]:
    out: dict[str, int] = {}
    for a, w in config.layers.values():
        out[f"a{a}w{w}"] = out.get(f"a{a}w{w}", 0) + 1
    return dict(sorted(out.items()))


# ------------------------------------------------------------------------------------------ parallel points


def _worker(cfg: dict, point: dict, run_dir: str, n_device: int, n_prepare: int, int8_count: float) -> Outcome:
    """One point in a worker process: the network prepared again (``n_prepare`` evaluation images, as the parent
    did: the same images), the (complete) table loaded again, int8 not measured again (the parent's count)."""
    c = OmegaConf.create(cfg)
    bench = setup(c, lambda s: None, n_eval_images=n_prepare, int8_images=0, show=False)
    bench.int8_count = int8_count
    return safe_point(bench, point, Path(run_dir), n_device, show=False)


def run_points(
    bench: Bench, points: list[dict], run_dir: Path, n_device: int, jobs: int, on_done, n_prepare: int
) -> None:
    """Every point, serially here or in a pool of ``jobs`` processes; ``on_done(outcome)`` after each.
    ``n_prepare``: the evaluation images the bench was prepared with (workers draw the same ones)."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True)) as prog:  # fmt: skip
        task = prog.add_task(f"Pareto points ({jobs} at once)" if jobs > 1 else "Pareto points", total=len(points))
        if jobs <= 1:
            for p in points:
                prog.update(task, description=f"Pareto point {p['label']}")
                on_done(safe_point(bench, p, run_dir, n_device, show=True))
                prog.advance(task)
            return
        cfg = OmegaConf.to_container(bench.cfg, resolve=True)
        ctx = multiprocessing.get_context("spawn")  # torch and fork do not mix
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futs = {
                pool.submit(_worker, cfg, p, str(run_dir), n_device, n_prepare, bench.int8_count): p for p in points
            }
            for f in as_completed(futs):
                p = futs[f]
                try:
                    out = f.result()
                except Exception as e:  # noqa: BLE001 - a worker that died: the point is recorded as failed
                    out = Outcome(failed_row(p, e, bench.unit, bench.board.cfg.timer.source), {})
                    write_summary(run_dir / "points" / p["label"], {"experiment": "freebits-pareto-point",
                                                                     **out.row})  # fmt: skip
                on_done(out)
                prog.advance(task)


# ------------------------------------------------------------------------------------------ the front


def mark_front(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["on_front"] = front_mask(df, "measured_count", "top1_device") if len(df) else []
    return df


def top_up_front(bench: Bench, outcomes: dict[str, Outcome], run_dir: Path, n_device: int, write) -> int:
    """Evaluate the front's points, and the int8 point the accuracy loss is measured against, again on
    ``n_device`` images until each has them; returns how many points were re-run. (The front may change as
    accuracies are measured on more images; a loss between two image counts would compare unlike samples.)"""
    n_runs = 0
    int8_hash = uniform_config(bench.layers, 8, 8).digest()
    while True:
        df = mark_front(pd.DataFrame([o.row for o in outcomes.values()]))
        ref = _int8_row(df, int8_hash)
        ref_label = None if ref is None else ref["label"]
        short = [r["label"] for _, r in df.iterrows()
                 if (r["on_front"] or r["label"] == ref_label) and r["n_eval_device"] is not None
                 and r["n_eval_device"] < n_device and len(bench.p.eval_y) > r["n_eval_device"]]  # fmt: skip
        if not short:
            return n_runs
        for label in short:
            o = outcomes[label]
            bench.log(f"front point {label}: top-1 on {n_device} device images")
            try:
                dev = bench.dep.deploy_model(o.model, o.config, n_device, f"{label}/final-full")
                o.row.update(top1_device=dev.top1, n_eval_device=len(dev.labels), bit_exact=dev.equals_reference)
                o.summary.update(top1_device=dev.top1, n_eval_device=len(dev.labels),
                                 device_equals_reference=dev.equals_reference)  # fmt: skip
                write_images(dev, run_dir / "points" / label / "image_predictions.csv")
            except Exception as e:  # noqa: BLE001
                o.row.update(failed_row({"method": o.row["method"], "label": label}, e, o.row["unit"],
                                        o.row["timer"]))  # fmt: skip
                o.row["measured_count"] = None
            n_runs += 1
            write()


# ------------------------------------------------------------------------------------------ the experiment


def run(cfg: DictConfig, run_dir: Path) -> dict:
    t0 = time.perf_counter()
    console = Console(stderr=True)
    e = cfg.experiment
    check_config(cfg)  # (the runner checked it too, before claiming the run folder)
    points = points_of(cfg)
    n_device = int(e.n_eval_device)
    n_screen = min(int(e.n_eval_screen), n_device) if e.n_eval_screen else n_device
    jobs = min(int(e.jobs), len(points))

    def log(s: str) -> None:
        console.print(f"[dim]{s}[/dim]")

    n_prepare = max(n_device, n_screen)
    bench = setup(cfg, log, n_eval_images=n_prepare)
    outcomes: dict[str, Outcome] = {}

    def write() -> pd.DataFrame:
        rows = [outcomes[p["label"]].row for p in points if p["label"] in outcomes]
        df = mark_front(pd.DataFrame(rows, columns=list(COLUMNS)))
        write_table(df, run_dir / "pareto.csv")  # kept up to date: what was measured is never lost
        return df

    def on_done(out: Outcome) -> None:
        outcomes[out.row["label"]] = out
        write()

    run_points(bench, points, run_dir, n_screen, jobs, on_done, n_prepare)
    n_topped = top_up_front(bench, outcomes, run_dir, n_device, write) if n_screen < n_device else 0
    df = write()
    for label, o in outcomes.items():
        if o.summary:
            write_summary(run_dir / "points" / label, {**o.summary, "on_front": bool(
                df.loc[df["label"] == label, "on_front"].iloc[0])})  # fmt: skip

    int8_ref = _int8_reference(bench, df)
    int8_row = _int8_row(df, uniform_config(bench.layers, 8, 8).digest())
    title = (f"Free Bits Pareto front: {bench.p.name} on {cfg.data.name}, {bench.board.cfg.name} "
             f"({bench.unit}); top-1 on the device")  # fmt: skip
    fig = pareto_figure(df, int8_count=bench.int8_count, int8_top1=int8_ref, unit=bench.unit, title=title)
    save(fig, run_dir / "pareto.png", pdf=True)
    summary = {
        "experiment": "freebits-pareto",
        "board": bench.prof.target.board,
        **timer_keys(bench.prof.target),
        "unit": bench.unit,
        "firmware_hash": bench.prof.target.firmware_hash,
        "model": bench.p.name,
        "data": str(cfg.data.name),
        "checkpoint": bench.p.checkpoint,
        "table": str(bench.prof.path),
        "table_new_entries": bench.prof.n_new,
        "baseline_int8_count": bench.int8_count,
        "top1_int8_ptq_device": bench.int8.top1 if bench.int8 is not None else None,
        "n_eval_int8_ptq": len(bench.int8.labels) if bench.int8 is not None else 0,
        "top1_int8_reference": int8_ref,
        "int8_reference": "int8 PTQ" if int8_row is None else f"{int8_row['label']} (fine-tuned)",
        **front_summary(df, int8_ref),
        "n_eval_device": n_device,
        "n_eval_screen": n_screen,
        "front_points_topped_up": n_topped,
        "jobs": jobs,
        "qat_epochs": int(e.qat.epochs),
        "qat_n_train": e.qat.n_train,
        "bit_exact": bool(df["bit_exact"].fillna(True).astype(bool).all()),
        "seconds": {k: round(v, 1) for k, v in bench.seconds.items()},
        "host_seconds": round(time.perf_counter() - t0, 1),
    }
    for _, r in df.iterrows():
        summary[f"measured_count_{r['label']}"] = r["measured_count"]
        summary[f"top1_device_{r['label']}"] = r["top1_device"]
    _print_table(df, bench.unit)
    return summary


def _int8_row(df: pd.DataFrame, int8_hash: str):
    """The row of a fine-tuned point at uniform 8 bits (the reference of the accuracy loss; a point without the
    refiner first), or None."""
    ok = df[(df["error"].fillna("") == "") & (df["config_hash"] == int8_hash)]
    ok = ok.sort_values("refined", kind="stable")
    return ok.iloc[0] if len(ok) else None


def _int8_reference(bench: Bench, df: pd.DataFrame) -> float | None:
    r = _int8_row(df, uniform_config(bench.layers, 8, 8).digest())
    if r is not None:
        return float(r["top1_device"])
    return bench.int8.top1 if bench.int8 is not None else None


def front_summary(df: pd.DataFrame, int8_top1: float | None) -> dict:
    """The flat summary of the measured points: counts, the front, and the best saving within a point of top-1."""
    ok = df[df["error"].fillna("") == ""]
    front = ok[ok["on_front"].astype(bool)]
    out: dict[str, Any] = {
        "n_points": len(df),
        "n_measured": len(ok),
        "n_failed": len(df) - len(ok),
        "failed": [f"{r['label']}: {r['error']}" for _, r in df.iterrows() if r["error"]],
        "n_methods": int(ok["method"].nunique()),
        "methods": sorted(ok["method"].unique().tolist()),
        "n_front": len(front),
        "front": front["label"].tolist(),
        "goal": f">= {GOAL_REDUCTION_PCT} % fewer counts than int8 at <= {GOAL_MAX_TOP1_LOSS_PTS} point top-1 loss",
    }
    best = None
    if int8_top1 is not None and len(front):
        within = front[100.0 * (int8_top1 - front["top1_device"]) <= GOAL_MAX_TOP1_LOSS_PTS]
        if len(within):
            best = within.loc[within["reduction_vs_int8_pct"].idxmax()]
    out["best_reduction_vs_int8_pct"] = float(best["reduction_vs_int8_pct"]) if best is not None else None
    out["best_label"] = str(best["label"]) if best is not None else None
    out["best_top1_device"] = float(best["top1_device"]) if best is not None else None
    out["best_top1_loss_pts"] = (
        100.0 * (int8_top1 - float(best["top1_device"])) if best is not None else None
    )
    out["goal_met"] = bool(best is not None and out["best_reduction_vs_int8_pct"] >= GOAL_REDUCTION_PCT)
    if len(ok):
        fastest = ok.loc[ok["measured_count"].idxmin()]
        out["fastest_label"] = str(fastest["label"])
        out["fastest_reduction_vs_int8_pct"] = float(fastest["reduction_vs_int8_pct"])
        out["max_abs_prediction_error_pct"] = float(ok["prediction_error_pct"].abs().max())
    return out


def _print_table(df: pd.DataFrame, unit: str) -> None:
    t = Table(title=f"Free Bits Pareto points ({unit}; * = on the front)")
    for c in ("label", "method", unit, "vs int8", "predicted", "top-1 device", "top-1 host", "images"):
        t.add_column(c, justify="left" if c in ("label", "method") else "right")
    for _, r in df.iterrows():
        if r["error"]:
            t.add_row(r["label"], r["method"], f"failed: {r['error'][:60]}", "", "", "", "", "")
            continue
        t.add_row(
            ("* " if r["on_front"] else "") + r["label"], r["method"], f"{r['measured_count']:,.0f}",
            f"{r['vs_int8']:.3f}", f"{r['predicted_count']:,.0f}", f"{100 * r['top1_device']:.1f} %",
            f"{100 * r['top1_host']:.1f} %", str(int(r["n_eval_device"])),
        )  # fmt: skip
    c = Console()
    if not c.is_terminal:
        c = Console(width=150)
    c.print(t)
