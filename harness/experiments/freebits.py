"""``tinyhil run experiment=freebits``: the closed measure-and-refine loop on a board (the default main job).

1. Profile: the board's latency table covers every entry the network can take (resumable, shared per board:
   ``results/lut/<board>.parquet``; only what is missing is measured).
2. Baseline: uniform int8 (post-training calibration) on the device: its count and top-1 on ``n_eval`` images.
3. Start: ``method`` (default: Bayesian Bits with the BitOPs regulariser, the Free Bits paper's stage 1,
   ``configs/method/bayesbits.yaml``) gives the start, within the board's memory.
4. Loop (:mod:`harness.loop.closed_loop`): export, build, flash, measure per-layer counts, Free Bits refine over the
   profiled table within the board's memory (the firmware's own arena planner and fit check,
   :mod:`harness.search.memory_fit`), repeat until the measured count stops improving (at most ``max_rounds``).
5. Final: short QAT at the final precisions, export, device top-1 on ``n_eval`` images; the device's logits must
   equal the host integer reference's on every image.

Writes ``rounds.csv``, ``predictions.csv`` (per round and layer: predicted by the profiled table, by the in-context
model, measured), ``image_predictions.csv`` (per test image: label, device and reference predictions),
``summary.json``, the start/final configurations, the loop's tables (``lut_profiled`` and ``lut_in_context``),
per-layer counts of int8 and final, and three plots. :class:`Bench` and its helpers are shared with
``experiment=freebits-pareto``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from harness.data.base import DataSplits, ImageSet
from harness.errors import TinyHilError
from harness.experiments.common import board_from, progress, workdir
from harness.experiments.profile import profile_for
from harness.graph.trace import extract_layers
from harness.loop.closed_loop import LoopResult, LoopSettings, closed_loop
from harness.loop.context import context_rows, total_count
from harness.loop.deploy import Deployed, Deployer
from harness.loop.plots import pair_matrix, plot_latency_accuracy, plot_pair_heatmap, plot_rounds
from harness.measure.report import per_layer_frame
from harness.measure.target import timer_keys
from harness.precision.config import PrecisionConfig
from harness.quant.prepare import Prepared, prepare
from harness.quant.qat import qat_finetune
from harness.results.io import write_table
from harness.search import make_start
from harness.search.bitops_budget import bitops, bitops_search
from harness.search.memory_fit import BoardFit, board_fit
from harness.search.uniform import uniform_config
from harness.table.lut import LatencyTable

GOAL_REDUCTION_PCT = 28.6  # the Free Bits paper's headline
GOAL_MAX_TOP1_LOSS_PTS = 1.0
REFUSED = "exceeds the memory budget"  # how the refiner notes a raise the board's memory refused


def _console():
    return Console(stderr=True)


def faster_pairs(table, layers) -> dict[str, int]:
    """Per (a, w) pair: how many of the network's weighted layer shapes run it faster than a8w8 (at o = 8)."""

    m = pair_matrix(table, layers)
    return {c: int((m[c] < 1.0).sum()) for c in m.columns if c != "a8w8"}


def latency_bounds(table, layers, start, int8_predicted: float, fits=None) -> dict:
    """What the table says is reachable: the exact fastest raise-only configuration from ``start`` (what Free
    Bits approximates) and the fastest configuration of all (the latency ILP), both predicted, and vs int8."""

    out: dict = {}
    for name, floor in (("ilp_raise_only", start), ("ilp_fastest", None)):
        try:
            c = bitops_search(layers, objective="latency", table=table, floor=floor)
            pred = table.predict(layers, c, estimate=True)[0]
        except TinyHilError:
            out[f"{name}_predicted_count"] = None
            continue
        out[f"{name}_predicted_count"] = pred
        out[f"{name}_vs_int8_pct"] = 100.0 * (1.0 - pred / int8_predicted)
        if fits is not None:
            out[f"{name}_fits"] = bool(fits(c))
    return out


@dataclass
class Bench:
    """One trained network on one board, ready for Free Bits runs: the prepared model and data, its layers, the
    board and its profiled table, the deployer, the memory judge, and the measured int8 baseline."""

    cfg: DictConfig
    p: Prepared
    layers: list
    board: object
    table: LatencyTable
    prof: object  # harness.measure.profile.ProfileResult
    dep: Deployer
    fit: BoardFit
    log: Callable[[str], None]
    int8: Deployed | None = None
    int8_count: float = float("nan")
    top1_int8_host: float = float("nan")
    seconds: dict = field(default_factory=dict)

    @property
    def unit(self) -> str:
        return self.board.cfg.timer.unit

    @property
    def n_eval(self) -> int:
        return int(self.cfg.experiment.n_eval)

    @property
    def n_host(self) -> int:
        return int(self.cfg.experiment.n_eval_host)

    def settings(self) -> LoopSettings:
        e = self.cfg.experiment
        return LoopSettings(
            max_rounds=int(e.max_rounds),
            min_gain=float(e.min_gain),
            pricing=str(e.pricing),
            out_bits_rule=e.out_bits_rule,
            tie_break=str(e.tie_break),
        )


def setup(
    cfg: DictConfig,
    log: Callable[[str], None],
    *,
    n_eval_images: int | None = None,
    int8_images: int | None = None,
    show: bool = True,
) -> Bench:
    """Prepare, profile the board, build the memory judge and measure the int8 baseline on the device on
    ``int8_images`` images (None: ``experiment.n_eval``; 0: not measured, e.g. in a worker of a parallel sweep
    whose parent measured it). ``n_eval_images``: evaluation images to prepare beyond ``n_eval``/``n_eval_host``."""
    t = time.perf_counter()
    n_eval, n_host = int(cfg.experiment.n_eval), int(cfg.experiment.n_eval_host)
    p = prepare(cfg, n_eval=max(n_eval, n_host, n_eval_images or 0), n_calib=int(cfg.experiment.n_calib))
    layers = extract_layers(p.model, p.input_shape)
    board = board_from(cfg)  # with timer=/timing= applied: the table's target names the cycle model too
    seconds = {"prepare": time.perf_counter() - t}
    t = time.perf_counter()
    prof = profile_for(
        cfg.experiment.profile, board.cfg, layers, workdir(cfg, "profile"), seed=int(cfg.seed), title=p.name
    )
    seconds["profile"] = time.perf_counter() - t
    flags = tuple(cfg.experiment.profile.build_flags)
    dep = Deployer(
        p, board, workdir(cfg, "freebits", board.cfg.name, p.name), target=prof.target, build_flags=flags
    )
    bench = Bench(
        cfg, p, layers, board, prof.table, prof, dep, board_fit(layers, board), log, seconds=seconds
    )
    n8 = n_eval if int8_images is None else int(int8_images)
    if n8 > 0:
        t = time.perf_counter()
        int8 = uniform_config(layers, 8, 8)
        bench.int8 = device_eval(bench, int8, None, n8, "int8", show=show)
        bench.int8_count = total_count(bench.int8.measurement)
        bench.top1_int8_host = dep.host_top1(int8, n_host)
        seconds["int8"] = time.perf_counter() - t
    return bench


def start_config(bench: Bench, method_cfg) -> PrecisionConfig:
    """The start ``method_cfg`` gives for the bench's network, within the board's memory."""
    p = bench.p
    return make_start(
        method_cfg, bench.layers, table=bench.table, model=p.model, calib=p.calib, data=p.data,
        input_shape=p.input_shape, seed=int(bench.cfg.seed), fits=bench.fit,
        cache_dir=workdir(bench.cfg, "bayesbits"), log=bench.log,
    )  # fmt: skip


def run_loop(bench: Bench, start: PrecisionConfig, tag: str = "rounds") -> LoopResult:
    n_measure = int(bench.cfg.experiment.n_measure)
    return closed_loop(
        bench.layers,
        start,
        bench.table,
        lambda c, r: bench.dep.deploy(c, n_measure, tag).measurement,
        settings=bench.settings(),
        fits=bench.fit,
        evaluate=lambda c: bench.dep.host_top1(c, bench.n_host),
        log=bench.log,
    )


def finetune(bench: Bench, config: PrecisionConfig, qat_cfg=None) -> tuple[object, dict]:
    """Short QAT of ``config``'s calibrated fake-quant network on a training subset (a copy); test top-1 on the host
    before/after."""

    q = OmegaConf.to_container(qat_cfg if qat_cfg is not None else bench.cfg.experiment.qat, resolve=True)
    qnet = copy.deepcopy(bench.dep.qnet(config))
    epochs = int(q.pop("epochs"))
    n_train = q.pop("n_train")
    n_test = int(q.pop("n_test"))
    if epochs <= 0:
        return qnet, {"qat_epochs": 0}
    data, seed = bench.p.data, int(bench.cfg.seed)
    train = data.train.subset(min(int(n_train), len(data.train)), seed + 7) if n_train else data.train
    test = data.test.subset(min(n_test, len(data.test)), seed + 11)
    sub = DataSplits(
        data.name, ImageSet(train.x, train.y), ImageSet(test.x, test.y), data.classes, data.mean, data.std,
        dict(data.meta),
    )  # fmt: skip
    res = qat_finetune(qnet, sub, {"epochs": epochs, "seed": seed, **q}, log=bench.log)
    return qnet, {
        "qat_epochs": epochs,
        "qat_n_train": len(train),
        "qat_top1_before": res["test_top1_before"],
        "qat_top1_after": res["test_top1_after"],
        "qat_seconds": res["train_seconds"],
    }


def device_eval(bench: Bench, config: PrecisionConfig, qnet, n: int, tag: str, show: bool = True) -> Deployed:
    """``config`` (from ``qnet`` when given) on the board over the first ``n`` evaluation images, with a rich
    progress bar unless ``show`` is false (a worker process beside others)."""
    if not show:
        return bench.dep.deploy(config, n, tag, qnet=qnet)
    with progress(f"{tag} on {bench.board.cfg.name}", n) as advance:
        return bench.dep.deploy(config, n, tag, qnet=qnet, progress=advance)


def predicted_count(bench: Bench, config: PrecisionConfig) -> float:
    """``config``'s end-to-end count as the profiled table predicts it (what the loop predicts each round)."""
    rule = bench.settings().out_bits_rule
    return float(bench.table.explain(bench.layers, config, rule, estimate=True)["count"].sum())


@dataclass
class Finished:
    """A configuration fine-tuned at its precisions and evaluated: host fake-quant and device top-1."""

    config: PrecisionConfig
    qnet: object
    qat: dict
    top1_host: float
    device: Deployed
    seconds: dict


def finish(
    bench: Bench, config: PrecisionConfig, tag: str, n_device: int, show: bool = True, qat_cfg=None
) -> Finished:
    """Step 5 of the loop: short QAT at ``config``'s precisions (``qat_cfg``, default ``experiment.qat``), host
    top-1, then top-1 on the device over ``n_device`` images (logits checked against the host integer reference
    on every image)."""
    t = time.perf_counter()
    qnet, qat = finetune(bench, config, qat_cfg)
    top1_host = bench.dep.host_top1(n=bench.n_host, qnet=qnet)
    seconds = {"qat": time.perf_counter() - t}
    t = time.perf_counter()
    dev = device_eval(bench, config, qnet, n_device, tag, show=show)
    seconds["device"] = time.perf_counter() - t
    return Finished(config, qnet, qat, top1_host, dev, seconds)


def learn_in_context(bench: Bench, res: LoopResult) -> int:
    """Add to the board's table the entries it lacked, as the loop measured them in context; how many."""
    target = bench.prof.target
    board_table = LatencyTable.load(bench.prof.path, missing_ok=True)
    latest = {
        (row["layer_key"], row["a_bits"], row["w_bits"], row["o_bits"]): row
        for r in res.rounds
        for row in context_rows(r.measurement, bench.layers, round_=r.index)
    }
    n_learned = len(
        board_table.add(
            list(latest.values()),
            board=target.board,
            timer=target.timer,
            firmware_hash=target.firmware_hash,
            cflags=target.cflags,
        )
    )
    if n_learned:
        board_table.save(bench.prof.path)
    return n_learned


def memory_figures(bench: Bench, config: PrecisionConfig, prefix: str) -> dict:
    est = bench.fit.need(config)
    return {
        f"{prefix}_arena_bytes": est.arena,
        f"{prefix}_scratch_bytes": est.scratch,
        f"{prefix}_weights_bytes": est.weights,
    }


def run(cfg: DictConfig, run_dir: Path) -> dict:
    t0 = time.perf_counter()
    console = _console()

    def log(s: str) -> None:
        console.print(f"[dim]{s}[/dim]")

    bench = setup(cfg, log)
    p, layers, unit = bench.p, bench.layers, bench.unit
    target, d8, int8_count = bench.prof.target, bench.int8, bench.int8_count
    seconds = bench.seconds

    # 3. the start and 4. the loop
    t = time.perf_counter()
    start = start_config(bench, cfg.method)
    seconds["start"] = time.perf_counter() - t
    t = time.perf_counter()
    res = run_loop(bench, start)
    seconds["loop"] = time.perf_counter() - t
    rounds = pd.DataFrame([r.row() for r in res.rounds])
    write_table(rounds, run_dir / "rounds.csv")
    write_table(res.predictions, run_dir / "predictions.csv")
    res.table.save(run_dir / "lut_profiled", merge=False)
    res.context.save(run_dir / "lut_in_context", merge=False)
    start.save(run_dir / "start_config.json")
    final = res.best.config
    final.save(run_dir / "final_config.json")

    # the board's table learns the entries it lacked (measured in context)
    n_learned = learn_in_context(bench, res)

    # 5. QAT at the final precisions, then top-1 on the device
    fin = finish(bench, final, "final", bench.n_eval)
    qat, top1_final_host, df_ = fin.qat, fin.top1_host, fin.device
    seconds["qat"], seconds["final"] = fin.seconds["qat"], fin.seconds["device"]
    final_count = total_count(df_.measurement)

    write_table(per_layer_frame(d8.measurement), run_dir / "per_layer_int8.csv")
    write_table(per_layer_frame(df_.measurement), run_dir / "per_layer_final.csv")
    write_table(
        pd.DataFrame(
            {
                "label": df_.labels,
                "int8_device": d8.predictions,
                "int8_reference": d8.reference_predictions,
                "final_device": df_.predictions,
                "final_reference": df_.reference_predictions,
            }
        ),
        run_dir / "image_predictions.csv",
    )

    # plots
    plot_rounds(rounds, run_dir / "rounds.png", int8_count=int8_count, unit=unit)
    plot_pair_heatmap(res.table, layers, run_dir / "pair_heatmap.png")
    start_count = res.start.measured
    plot_latency_accuracy(
        [
            {"label": "int8 (PTQ)", "count": int8_count, "top1": bench.top1_int8_host},
            {
                "label": f"start ({start.meta.get('method', '')}, PTQ)",
                "count": start_count,
                "top1": res.start.top1,
            },
            {"label": "final (QAT)", "count": final_count, "top1": top1_final_host},
        ],
        run_dir / "latency_accuracy.png",
        unit=unit,
        ylabel=f"host fake-quant, {min(bench.n_host, len(p.eval_y))} images",
    )

    best = res.best
    share = per_layer_frame(d8.measurement).groupby("op")["count"].sum()
    share = (share / share.sum()).round(4)
    int8 = uniform_config(layers, 8, 8)
    bounds = latency_bounds(
        res.table, layers, start, res.table.predict(layers, int8, estimate=True)[0], bench.fit
    )
    errors = [r.error_pct for r in res.rounds]
    ctx_errors = [r.error_in_context_pct for r in res.rounds[1:]]
    reduction = 100.0 * (1.0 - final_count / int8_count)
    loss_pts = round(100.0 * (d8.top1 - df_.top1), 6)  # top-1 is a count over n images: drop float noise
    int8_bitops = bitops(layers, int8)
    summary = {
        "experiment": "freebits",
        "board": target.board,
        **timer_keys(target),
        "unit": unit,
        "firmware_hash": target.firmware_hash,
        "model": p.name,
        "data": str(cfg.data.name),
        "checkpoint": p.checkpoint,
        "start_method": str(start.meta.get("method", cfg.method.name)),
        "start_meta": {k: v for k, v in start.meta.items() if isinstance(v, (int, float, str, bool))},
        "table": str(bench.prof.path),
        "table_new_entries": bench.prof.n_new,
        "table_learned_in_context": n_learned,
        "baseline_int8_count": int8_count,
        "start_count": start_count,
        "final_count": final_count,
        "final_count_loop": best.measured,
        "predicted_final_count": best.predicted,
        "prediction_error_pct": best.error_pct,
        "prediction_error_pct_rounds": errors,
        "max_abs_prediction_error_pct": float(np.max(np.abs(errors))),
        "mean_abs_prediction_error_pct": float(np.mean(np.abs(errors))),
        "prediction_error_in_context_pct_rounds": ctx_errors,
        "start_prediction_error_pct": res.start.error_pct,
        "top1_int8": d8.top1,
        "top1_final": df_.top1,
        "top1_int8_host": bench.top1_int8_host,
        "top1_start_host": res.start.top1,
        "top1_final_host": top1_final_host,
        "n_eval": len(df_.labels),
        "n_eval_host": min(bench.n_host, len(p.eval_y)),
        "rounds": len(res.rounds),
        "final_round": best.index,
        "stop_reason": res.stop_reason,
        "reduction_vs_int8_pct": reduction,
        "start_vs_int8_pct": 100.0 * (1.0 - start_count / int8_count),
        "final_vs_start_pct": 100.0 * (1.0 - final_count / start_count),
        "top1_loss_pts": loss_pts,
        "goal": f">= {GOAL_REDUCTION_PCT} % fewer counts than int8 at <= {GOAL_MAX_TOP1_LOSS_PTS} point top-1 loss",
        "goal_met": bool(reduction >= GOAL_REDUCTION_PCT and loss_pts <= GOAL_MAX_TOP1_LOSS_PTS),
        "start_bitops_vs_int8": bitops(layers, start) / int8_bitops,
        "final_bitops_vs_int8": bitops(layers, final) / int8_bitops,
        "pairs_faster_than_a8w8": faster_pairs(res.table, layers),
        **bounds,
        "int8_count_share": {str(k): float(v) for k, v in share.items()},
        # uniform int8 is at least as fast (within 1 %) and no less accurate: the mixed configuration buys nothing
        "int8_dominates": bool(final_count >= 0.99 * int8_count and df_.top1 <= d8.top1),
        "limit": _limit(bounds),
        "final_pairs": _pair_counts(final),
        "start_pairs": _pair_counts(start),
        "memory_board_flash_bytes": bench.fit.board.flash.size,
        "memory_board_sram_bytes": bench.fit.board.sram.size,
        **memory_figures(bench, start, "start"),
        **memory_figures(bench, final, "final"),
        "memory_refusals": sum(REFUSED in n for n in res.notes),
        "device_equals_reference_int8": d8.equals_reference,
        "device_equals_reference_final": df_.equals_reference,
        **qat,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "host_seconds": round(time.perf_counter() - t0, 1),
    }
    console.print(
        f"[bold]{p.name} on {target.board}[/bold]: int8 {int8_count:,.0f}, start {start_count:,.0f}, final "
        f"{final_count:,.0f} {unit} ({reduction:+.1f} % vs int8); top-1 int8 {100 * d8.top1:.1f} %, final "
        f"{100 * df_.top1:.1f} % (device, {len(df_.labels)} images); {len(res.rounds)} rounds "
        f"({res.stop_reason}); table error {best.error_pct:+.2f} % (worst round "
        f"{summary['max_abs_prediction_error_pct']:.2f} %)"
    )
    return summary


def _limit(bounds: dict) -> str:
    """What bounds the saving, in words: the table's own optimum vs the goal."""
    best = bounds.get("ilp_fastest_vs_int8_pct")
    if best is None:
        return "the latency ILP over the table found no configuration"
    if best < GOAL_REDUCTION_PCT:
        return (
            f"kernels: the table's fastest configuration (any precisions, accuracy ignored) is {best:.1f} % "
            f"below int8, short of the {GOAL_REDUCTION_PCT} % goal whatever the search does"
        )
    return f"search/accuracy: the table allows {best:.1f} % below int8"


def _pair_counts(config) -> dict[str, int]:
    """How many layers run each (a, w) pair."""
    out: dict[str, int] = {}
    for a, w in config.layers.values():
        out[f"a{a}w{w}"] = out.get(f"a{a}w{w}", 0) + 1
    return dict(sorted(out.items()))
