"""``tinyhil sensitivity``: QuantuneV2 layer sensitivity from two inference passes, and its top-k assignment.

Prints the ranked list (rich table) and writes ``ranking.csv`` (per conv/linear), ``ops.csv`` (per unfused op),
``sensitivity.png`` (bar chart), ``precision.json`` (the top-``method.k`` assignment) and its BitOPs and, with
``evaluate``, its host fake-quant top-1. Every network analysed and evaluated is the deployed one: activation
tensors at their group's precision (:mod:`harness.search.quantune.grouping`).

``experiment=quantune`` adds the one-layer-at-a-time accuracy ranking (n + 1 evaluations) and compares the two
(time ratio, Spearman, top-k overlap; ``baseline.csv``), then judges the rankings by what they choose: for every
``k`` in ``experiment.ks`` (default 0..n, n the layers whose bits can change) the top-1 of the top-k assignment
of QuantuneV2's ranking, of the one-at-a-time ranking and of ``experiment.n_random`` random rankings, beside
uniform precisions (``sweep.csv``; per k ``ranking_quality.csv``; ``ranking_quality.png``, ``tradeoff.png``) and
whether the paper's claim (faster at equal or better accuracy) holds (``claim_*`` keys).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table
from torch import nn

from harness.data import load_data
from harness.data.base import to_model_input
from harness.errors import ConfigError
from harness.graph.spec import LayerSpec
from harness.graph.trace import extract_layers
from harness.models import build_model, checkpoint_path, load_checkpoint
from harness.models.registry import model_id, train_command
from harness.precision.config import PrecisionConfig
from harness.precision.groups import harmonize
from harness.quant.accounting import account
from harness.results.io import atomic_write_bytes, repo_relative, write_table
from harness.results.plotting import pyplot, save
from harness.search.quantune.assign import fixed_layers, topk_config
from harness.search.quantune.baseline import one_at_a_time
from harness.search.quantune.evaluate import deployed, one_at_a_time_template, only_layer, top1_and_loss
from harness.search.quantune.grouping import input_group_tensors
from harness.search.quantune.pipeline import (
    QuantuneParams,
    calibration_images,
    probe_config,
    save_ranking,
    sensitivity,
)
from harness.search.quantune.quality import is_random, quality_summary, quality_table, random_rankings
from harness.search.quantune.ranking import RankRule, rank_layers, spearman, topk_overlap
from harness.search.uniform import uniform_config

# combination rules also scored against the baseline, from the same metrics (see ranking.py)
ALT_RULES = {
    "dsqnr": RankRule("dsqnr"),
    "zscore": RankRule("zscore"),
    "wsqnr": RankRule("zscore", weights={"dsqnr": 0, "mse": 0, "wsqnr": 1}),
    "mse": RankRule("zscore", weights={"dsqnr": 0, "mse": 1, "wsqnr": 0}),
    "dsqnr_mse": RankRule("zscore", weights={"dsqnr": 1, "mse": 1, "wsqnr": 0}),
}


# -- loading ------------------------------------------------------------------------------------------------


def load_model(cfg: DictConfig, data) -> tuple[nn.Module, str | None]:
    """The float model with its trained weights; ``checkpoint: auto`` looks in ``checkpoints/``."""

    model = build_model(cfg.model, num_classes=data.num_classes)
    ck = cfg.checkpoint
    if ck == "auto":
        path = checkpoint_path(model_id(cfg.model), str(cfg.data.name))
        if not path.exists():
            Console(stderr=True).print(
                f"[yellow]warning:[/yellow] no checkpoint {repo_relative(path)}: ranking a randomly "
                f"initialised model (train one with `{train_command(cfg.model, str(cfg.data.name))}`)"
            )
            return model.eval(), None
        ck = repo_relative(path)
    if ck in (None, "none", "null"):
        return model.eval(), None
    load_checkpoint(model, ck)
    return model.eval(), repo_relative(ck)


def model_inputs(images, input_shape: Sequence[int], data) -> torch.Tensor:
    return to_model_input(images.x, input_shape, data.mean, data.std)


# -- output -------------------------------------------------------------------------------------------------


def print_ranking(rows: Sequence[dict], k: int, top: int, title: str, show_score: bool = False) -> None:
    """The ranked list as a rich table (the first ``top`` rows; the kept top-k in bold)."""

    cols = ["rank", "layer", "dSQNR", "MSE", "SQNR_w", "SQNR_in", "SQNR_out"] + (
        ["score"] if show_score else []
    )
    t = Table(title=title)
    for c in cols:
        t.add_column(c, justify="left" if c == "layer" else "right", no_wrap=True)
    for r in rows[:top]:
        cells = [
            str(r["rank"]),
            r["layer"],
            f"{r['dsqnr']:.2f}",
            f"{r['mse']:.3g}",
            f"{r['w_sqnr']:.1f}",
            f"{r['a_sqnr_in']:.1f}",
            f"{r['a_sqnr_out']:.1f}",
        ] + ([f"{r['score']:.3g}"] if show_score else [])
        t.add_row(*cells, style="bold" if r["rank"] <= k else None)
    more = f"{len(rows) - top} more in ranking.csv; " if len(rows) > top else ""
    t.caption = f"{more}SQNR and dSQNR in dB; bold: the k={k} kept at high precision"
    console = Console()
    if not console.is_terminal:  # a log file is not 80 columns wide: keep layer names whole
        console = Console(width=max(console.width, 120))
    console.print(t)


def plot_ranking(rows: Sequence[dict], k: int, path: Path, title: str) -> Path:
    """Horizontal bars of each layer's dSQNR, most sensitive on top; the kept top-k highlighted."""
    plt = pyplot()

    n = len(rows)
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.18 * n + 1.2)))
    colors = ["tab:red" if r["rank"] <= k else "tab:blue" for r in rows]
    ax.barh(range(n), [r["dsqnr"] for r in rows], color=colors)
    ax.set_yticks(range(n), [r["layer"] for r in rows], fontsize=6 if n > 30 else 8)
    ax.invert_yaxis()
    ax.set_xlabel("dSQNR (dB of SQNR the fused layer loses)")
    ax.set_title(title.replace(", probe", ",\nprobe", 1), fontsize=9)
    ax.legend(
        handles=[
            plt.matplotlib.patches.Patch(color="tab:red", label=f"top-{k}: kept high"),
            plt.matplotlib.patches.Patch(color="tab:blue", label="lowered"),
        ],
        fontsize=7,
        loc="lower right",
    )
    fig.tight_layout()

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def plot_comparison(
    sens_order: Sequence[str],
    base_order: Sequence[str],
    sweep: Sequence[dict],
    float_top1: float,
    path: Path,
    title: str,
) -> Path:
    """Left: rank under QuantuneV2 vs rank under the one-at-a-time ranking. Right: top-1 vs BitOPs."""

    plt = pyplot()

    panels = 2 if base_order else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.5), squeeze=False)
    ax_i = 0
    if base_order:
        ax = axes[0][0]
        pos = {n: i + 1 for i, n in enumerate(base_order)}
        ax.scatter([i + 1 for i in range(len(sens_order))], [pos[n] for n in sens_order], s=12)
        ax.plot([1, len(sens_order)], [1, len(sens_order)], color="gray", lw=0.8, ls="--")
        ax.set_xlabel("QuantuneV2 rank (two passes)")
        ax.set_ylabel("one-at-a-time rank (n + 1 evaluations)")
        ax.set_title(f"Spearman {spearman(sens_order, base_order):.2f}", fontsize=9)
        ax_i = 1
    ax = axes[0][ax_i]
    for method, style in (("quantune", "o-"), ("baseline", "s--")):
        pts = sorted((r["bitops_rel_8bit"], r["top1"], r["k"]) for r in sweep if r["method"] == method)
        if pts:
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                style,
                label="QuantuneV2 top-k" if method == "quantune" else "one-at-a-time top-k",
            )
            for x, y, k in pts:
                ax.annotate(f"k={k}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    for r in sweep:
        if r["method"] == "uniform":
            ax.plot(r["bitops_rel_8bit"], r["top1"], "k^")
            ax.annotate(
                r["config"],
                (r["bitops_rel_8bit"], r["top1"]),
                fontsize=7,
                xytext=(3, -9),
                textcoords="offset points",
            )
    if not math.isnan(float_top1):
        ax.axhline(float_top1, color="gray", lw=0.8, ls=":", label="float")
    ax.set_xlabel("BitOPs / uniform 8-bit BitOPs")
    ax.set_ylabel("top-1 (host fake-quant, no fine-tuning)")
    ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


# -- the experiment -----------------------------------------------------------------------------------------


def bitops_of(layers: Sequence[LayerSpec], config: PrecisionConfig) -> int:
    """BitOPs of the conv/linear layers, ``sum(macs * a * w)`` with ``a`` the bits of the tensor a layer reads."""

    return int(account(list(layers), config.layers)["bitops"])


def deployable(layers: Sequence[LayerSpec], config: PrecisionConfig) -> PrecisionConfig:
    """What deploys: readers of one activation tensor raised to one precision (as make_start does)."""

    return harmonize(layers, config)


def _ks(e: Any, n: int) -> list[int]:
    """The ks of the sweep: ``"all"`` is 0..n; a list keeps its ks in [0, n]."""
    if e["ks"] == "all":
        return list(range(n + 1))
    if isinstance(e["ks"], (str, int)) or not isinstance(e["ks"], Sequence):
        raise ConfigError(f"experiment.ks must be 'all' or a list of ints, got {e['ks']!r}")
    return sorted({int(k) for k in e["ks"] if 0 <= int(k) <= n})


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Entry of ``tinyhil sensitivity`` (see the module docstring)."""

    t_start = time.perf_counter()
    torch.set_num_threads(int(cfg.threads))
    seed = int(cfg.seed)
    torch.manual_seed(seed)
    method = OmegaConf.to_container(cfg.method, resolve=True)
    if method.get("name") != "quantune":
        raise ConfigError(f"tinyhil sensitivity runs method=quantune, got method={method.get('name')!r}")
    p = QuantuneParams.from_mapping(method)
    if p.ranking:
        raise ConfigError("tinyhil sensitivity computes the ranking; method.ranking is for starting points")
    e = OmegaConf.to_container(cfg.experiment, resolve=True) if cfg.get("experiment") else {}
    data = load_data(cfg.data)
    model, ck = load_model(cfg, data)
    shape = tuple(model.input_shape)
    layers = extract_layers(model)
    n_weighted = sum(s.has_weights for s in layers)
    fixed = fixed_layers(layers, p.high, p.low, p.input_bits)
    n_change = n_weighted - len(fixed)  # the k budget: layers whose bits change when kept high
    if p.k > n_change:
        raise ConfigError(
            f"method.k={p.k} but {cfg.model.name} has {n_change} conv/linear layers whose bits can change "
            f"({n_weighted} in all)"
        )
    calib = calibration_images(data, shape, p.n_calib, seed)

    def topk(order: Sequence[str], k: int) -> PrecisionConfig:
        return deployable(layers, topk_config(order, layers, k, p.high, p.low, input_bits=p.input_bits))

    # QuantuneV2: the probe pair and the two passes
    sens = sensitivity(model, layers, calib, p)
    q_seconds = sens.seconds + sens.meta["quantize_s"]
    q_cpu = sens.cpu_seconds + sens.meta["quantize_cpu_s"]
    title = (
        f"QuantuneV2 sensitivity: {cfg.model.name} on {cfg.data.name}, probe a{p.probe[0]}w{p.probe[1]}, "
        f"rule {p.rule.rule}, {sens.images} calibration images"
    )
    print_ranking(sens.layers, p.k, int(cfg.top), title, show_score=p.rule.rule != "dsqnr")
    save_ranking(sens.layers, run_dir / "ranking.csv")
    write_table(pd.DataFrame(sens.ops), run_dir / "ops.csv")
    plot_ranking(sens.layers, p.k, run_dir / "sensitivity.png", title)

    assigned = topk(sens.ranking, p.k)
    assigned.save(run_dir / "precision.json")
    ref8 = bitops_of(layers, uniform_config(layers, 8, 8, input_bits=8))
    summary: dict[str, Any] = {
        "command": "sensitivity",
        "model": str(cfg.model.name),
        "data": str(cfg.data.name),
        "checkpoint": ck,
        "n_layers": n_weighted,
        "n_layers_changeable": n_change,
        "fixed_layers": fixed,
        "n_unfused_ops": len(sens.ops),
        "n_calib": sens.images,
        "rule": p.rule.rule,
        "probe": f"a{p.probe[0]}w{p.probe[1]}",
        "high": f"a{p.high[0]}w{p.high[1]}",
        "low": f"a{p.low[0]}w{p.low[1]}",
        "k": p.k,
        "quantune_seconds": q_seconds,
        "quantune_pass_seconds": sens.seconds,
        "quantune_build_seconds": sens.meta["quantize_s"],
        "quantune_cpu_seconds": q_cpu,
        "quantune_forward_calls": sens.forward_calls,
        "quantune_inference_passes": sens.meta["passes"],
        "most_sensitive": sens.ranking[0],
        "ranking": sens.ranking,
        "kept_high": assigned.meta["kept_high"],
        "bitops": bitops_of(layers, assigned),
        "bitops_8bit": ref8,
        "bitops_rel_8bit": bitops_of(layers, assigned) / ref8,
        "harmonized_layers": len(assigned.meta.get("harmonized", [])),
    }

    evaluate = bool(cfg.evaluate)
    if not (evaluate or e.get("baseline") or e.get("sweep")):
        return _finish(summary, t_start)
    n_eval = int(e["n_eval"] if e else cfg.n_eval)
    bs = int(cfg.eval_batch_size)
    test = data.test.subset(min(n_eval, len(data.test)), seed + 1)
    x_eval, y_eval = model_inputs(test, shape, data), torch.from_numpy(test.y)
    summary["n_eval"] = len(test)
    t0, c0 = time.perf_counter(), time.process_time()
    float_top1, float_loss = top1_and_loss(model, x_eval, y_eval, bs)
    float_eval_s = (time.perf_counter() - t0, time.process_time() - c0)
    summary["top1_float"] = float_top1

    cache: dict[str, tuple[float, float]] = {}

    def acc_of(config: PrecisionConfig) -> tuple[float, float]:
        d = config.digest()  # rankings often choose the same assignment (k = 0, k = n): evaluate it once
        if d not in cache:
            cache[d] = top1_and_loss(deployed(model, config, calib), x_eval, y_eval, bs)
        return cache[d]

    if evaluate:
        summary["top1_assigned"] = acc_of(assigned)[0]

    base = None
    if e.get("baseline"):
        base = _baseline(
            model,
            layers,
            calib,
            input_group_tensors(layers, p.input_bits is not None),
            probe_config(layers, p.probe, p.input_bits),
            x_eval,
            y_eval,
            bs,
            (float_top1, float_loss),
            float_eval_s,
        )
        write_table(pd.DataFrame(base.rows), run_dir / "baseline.csv")
        summary.update(
            {
                "baseline_seconds": base.seconds,
                "baseline_evaluations": base.evaluations,
                "baseline_eval_images": len(y_eval),
                "baseline_cpu_seconds": base.cpu_seconds,
                "time_ratio": base.seconds / q_seconds,
                "cpu_time_ratio": base.cpu_seconds / q_cpu,
                "search_time_reduction_pct": 100.0 * (1.0 - q_seconds / base.seconds),
                "spearman": spearman(sens.ranking, base.ranking),
                "baseline_most_sensitive": base.ranking[0],
                "baseline_ranking": base.ranking,
            }
        )
        for k in sorted({1, 3, 5, 10, *_ks(e, n_weighted)}):
            if 0 < k <= n_weighted:
                summary[f"topk_overlap_k{k}"] = topk_overlap(sens.ranking, base.ranking, k)
        # the same two passes ranked by the other combination rules (no extra inference)
        for rule_name, alt in ALT_RULES.items():
            order = [sens.layers[i]["layer"] for i in rank_layers(sens.layers, alt)]
            summary[f"spearman_rule_{rule_name}"] = spearman(order, base.ranking)
            summary[f"topk_overlap_k5_rule_{rule_name}"] = topk_overlap(order, base.ranking, 5)

    sweep_rows: list[dict] = []
    if e.get("sweep"):
        ks = _ks(e, n_change)
        orders = [("quantune", sens.ranking)]
        seconds = {"quantune": q_seconds}
        if base is not None and e["baseline_topk"]:
            orders.append(("baseline", base.ranking))
            seconds["baseline"] = base.seconds
        t0 = time.perf_counter()
        changeable = [n for n in sens.ranking if n not in set(fixed)]
        rnd = random_rankings(changeable, int(e["n_random"]), seed)
        seconds["random"] = time.perf_counter() - t0
        orders += [(f"random-{i}", r + sorted(fixed)) for i, r in enumerate(rnd)]
        console = Console(stderr=True)
        for name, order in orders:
            for k in ks:
                sweep_rows.append(_sweep_row(name, f"k{k}", k, topk(order, k), layers, ref8, acc_of))
                console.print(
                    f"[dim]{name} k={k}: top-1 {sweep_rows[-1]['top1']:.3f} "
                    f"({len(cache)} evaluations, {time.perf_counter() - t_start:.0f} s)[/dim]"
                )
        for b in e["uniform"]:
            a_b, w_b = (b, b) if isinstance(b, int) else tuple(b)
            c = uniform_config(layers, a_b, w_b, input_bits=p.input_bits)
            sweep_rows.append(_sweep_row("uniform", f"a{a_b}w{w_b}", None, c, layers, ref8, acc_of))
        sweep_df = pd.DataFrame(sweep_rows)
        sweep_df["k"] = sweep_df["k"].astype("Int64")  # blank for the uniform rows, not a float
        write_table(sweep_df, run_dir / "sweep.csv")
        for r in sweep_rows:
            if not is_random(r["method"]):
                summary[f"top1_{r['method']}_{r['config']}"] = r["top1"]
                summary[f"bitops_rel_{r['method']}_{r['config']}"] = r["bitops_rel_8bit"]
        table = quality_table(sweep_rows, ks)
        write_table(pd.DataFrame(table), run_dir / "ranking_quality.csv")
        for r in table:
            if "top1_random_mean" in r:
                summary[f"top1_random_mean_k{r['k']}"] = r["top1_random_mean"]
        summary.update(quality_summary(table, n_change, seconds, float(e["tolerance_pts"])))
        summary["n_evaluations"] = len(cache)
        plot_quality(
            table,
            sweep_rows,
            float_top1,
            seconds,
            run_dir / "ranking_quality.png",
            f"Ranking quality: {cfg.model.name} on {cfg.data.name}, keep k at a{p.high[0]}w{p.high[1]}, "
            f"rest a{p.low[0]}w{p.low[1]}, {len(y_eval)} test images (host, no fine-tuning)",
        )
    if base is not None or sweep_rows:
        plot_comparison(
            sens.ranking,
            base.ranking if base else [],
            [r for r in sweep_rows if not is_random(r["method"])],
            float_top1,
            run_dir / "tradeoff.png",
            f"QuantuneV2 vs one-at-a-time: {cfg.model.name} on {cfg.data.name}",
        )
    return _finish(summary, t_start)


def plot_quality(
    table: Sequence[dict], rows: Sequence[dict], float_top1: float, seconds: dict, path: Path, title: str
) -> Path:
    """Top-1 of each ranking's top-k assignment vs k (random: mean and range), uniform precisions as lines."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ks = [r["k"] for r in table]
    for name, style, label in (
        ("quantune", "o-", "QuantuneV2 (two passes)"),
        ("baseline", "s--", "one at a time (n + 1 evaluations)"),
    ):
        col = f"top1_{name}"
        if any(col in r for r in table):
            t = seconds.get(name)
            ax.plot(
                ks,
                [100 * r[col] for r in table],
                style,
                ms=3,
                label=f"{label}, ranked in {t:.1f} s" if t is not None else label,
            )
    if any("top1_random_mean" in r for r in table):
        ax.plot(ks, [100 * r["top1_random_mean"] for r in table], ":", c="gray", label="random (mean)")
        ax.fill_between(
            ks,
            [100 * r["top1_random_min"] for r in table],
            [100 * r["top1_random_max"] for r in table],
            color="gray",
            alpha=0.2,
            label="random (min-max)",
        )
    for r in rows:
        if r["method"] == "uniform":
            ax.axhline(100 * r["top1"], lw=0.7, ls="-.", c="k")
            ax.annotate(
                f"uniform {r['config']}", (ks[-1], 100 * r["top1"]), fontsize=7, ha="right", va="bottom"
            )
    if not math.isnan(float_top1):
        ax.axhline(100 * float_top1, lw=0.8, ls=":", c="tab:green", label="float")
    ax.set_xlabel("k: layers kept at high precision")
    ax.set_ylabel("top-1 % (host fake-quant)")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    return save(fig, path)[0]


def _baseline(
    model,
    layers,
    calib,
    group_tensors,
    probe: PrecisionConfig,
    x_eval,
    y_eval,
    bs: int,
    float_result,
    float_eval_s,
):
    """The one-layer-at-a-time ranking; its time includes building its quantized template and the float
    evaluation (its evaluation 0, shared with the float top-1)."""

    t0, c0 = time.perf_counter(), time.process_time()
    template = one_at_a_time_template(model, probe, calib)
    build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0

    def one(name: str | None) -> tuple[float, float]:
        if name is None:
            return float_result
        return top1_and_loss(only_layer(template, name, group_tensors), x_eval, y_eval, bs)

    base = one_at_a_time([s.name for s in layers if s.has_weights], one)
    base.seconds += build_s + float_eval_s[0]
    base.cpu_seconds += build_cpu + float_eval_s[1]
    return base


def _sweep_row(
    method: str, config: str, k: int | None, c: PrecisionConfig, layers, ref8: int, acc_of
) -> dict:
    top1, loss = acc_of(c)
    b = bitops_of(layers, c)
    return {
        "method": method,
        "config": config,
        "k": k,
        "top1": top1,
        "loss": loss,
        "bitops": b,
        "bitops_rel_8bit": b / ref8,
        "harmonized": len(c.meta.get("harmonized", [])),
    }


def _finish(summary: dict, t_start: float) -> dict:
    summary["seconds"] = time.perf_counter() - t_start
    c = Console()
    for k, v in summary.items():
        if not isinstance(v, (list, dict)):
            c.print(f"  {k}: {v:.4g}" if isinstance(v, float) else f"  {k}: {v}")
    return summary
