"""``tinyhil figures``: every paper figure redrawn from measured runs (PNG and PDF), plus MCUNetV2's memory figure
computed by the patch planner.

Each ``draw_*`` function reads the runs it needs from a results folder (default ``results/reference``), draws one
figure and returns it, or returns a one-line note when its run is missing (the figure is skipped, the others are
drawn). ``run`` is the command's entry: it saves every figure as PNG and PDF into its run folder (default
``results/figures``) and writes ``summary.json`` listing what was drawn and what was skipped. The notebook
``notebooks/figures.ipynb`` calls the same functions and shows the figures inline.

Figures: kernel cost per MAC of every (a, w) pair (colour bar: relative to a8w8); the Free Bits latency-accuracy
Pareto front (a ``freebits-pareto*`` run) and the closed loop's rounds; QuantMCU's BitOPs, latency and peak memory
against 8-bit patch-based inference and its accuracy trade-off; MCUNetV2's per-block peak SRAM layer by layer and
patch-based (MobileNetV2-1.0 at 224 px and the default model); QuantuneV2's sensitivity ranking and top-1 against k.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from omegaconf import DictConfig
from rich.console import Console

from harness.experiments.pareto import pareto_figure, pareto_front  # noqa: F401 - pareto_front: its API
from harness.graph.trace import extract_layers
from harness.memory.liveness import TINYENGINE, build_steps, layer_by_layer_peak, peak_memory
from harness.models.mobilenetv2 import MobileNetV2
from harness.models.registry import build_model
from harness.patch import LIVENESS, plan_patches, search_patch_plans
from harness.results.plotting import pyplot, save

KIB = 1024.0
PAIRS = ("a8w8", "a8w4", "a8w2", "a4w8", "a4w4", "a4w2", "a2w8", "a2w4", "a2w2", "ref")


@dataclass
class Skipped:
    """A figure that was not drawn, and why."""

    name: str
    why: str


def find_run(results: Path, prefix: str) -> Path | None:
    """The run folder under ``results`` whose name starts with ``prefix`` and holds a summary (the first by
    name), or None."""
    hits = sorted(p for p in Path(results).glob(f"{prefix}*") if (p / "summary.json").is_file())
    return hits[0] if hits else None


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def _where(s: dict, run: Path) -> str:
    """'model on data, board' of a run, from its summary or its config.yaml."""
    cfg = {}
    if (run / "config.yaml").is_file():
        cfg = yaml.safe_load((run / "config.yaml").read_text()) or {}
    model = s.get("model") or (cfg.get("model") or {}).get("name")
    data = s.get("data") or (cfg.get("data") or {}).get("name")
    board = s.get("board") or (cfg.get("board") or {}).get("name")
    parts = [str(model) if model else None, f"on {data}" if data else None]
    text = " ".join(p for p in parts if p)
    return f"{text}, {board}" if board else text


# ------------------------------------------------------------------------------------------ kernels


def draw_kernels(results: Path):
    """Instructions (or cycles) per MAC of every benchmark layer at every (a, w) pair; colour: vs a8w8."""
    run = find_run(results, "kernels-")
    if run is None:
        return Skipped("kernels_per_mac", f"no kernels-* run under {results} (tinyhil bench experiment=kernels)")
    plt = pyplot()
    k = pd.read_csv(run / "kernels.csv")
    s = _summary(run)
    unit = str(k["unit"].iloc[0]) if "unit" in k else "count"
    m = k.pivot_table(index="layer", columns="pair", values="count_per_mac", sort=False)
    cols = [c for c in PAIRS if c in m]
    m = m[cols]
    rel = np.log2(m.div(m["a8w8"], axis=0).clip(lower=0.25, upper=4.0))
    fig, ax = plt.subplots(figsize=(1.0 * len(cols) + 3, 0.55 * len(m) + 1.8))
    im = ax.imshow(rel.to_numpy(), cmap="RdYlGn_r", vmin=-1, vmax=1, aspect="auto")
    for i in range(len(m)):
        for j in range(len(cols)):
            ax.text(j, i, f"{m.iloc[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(m)), m.index, fontsize=8)
    ax.set_xlabel("(input activation, weight) bits; ref = plain C int8 loop")
    ax.set_ylabel("benchmark layer")
    bar = fig.colorbar(im, ax=ax, ticks=[-1, -0.5, 0, 0.5, 1])
    bar.ax.set_yticklabels(["0.5x", "0.71x", "1x", "1.41x", "2x"])
    bar.set_label(f"{unit} per MAC relative to a8w8 (green: fewer)")
    ax.set_title(f"Kernel cost per MAC ({unit}/MAC in the cells): random int data, {s.get('board', '?')}")
    return fig


# ------------------------------------------------------------------------------------------ Free Bits


def _col(df: pd.DataFrame, *names: str) -> str | None:
    norm = {c.lower().replace(" ", "_").replace("-", "_"): c for c in df.columns}
    return next((norm[n] for n in names if n in norm), None)


def draw_freebits_pareto(results: Path):
    """Measured latency (relative to uniform int8) against device top-1 of every configuration the Pareto run
    measured (``pareto.csv`` of ``tinyhil run experiment=freebits-pareto``), its front and the paper's line."""
    run = find_run(results, "freebits-pareto")
    if run is None or not (run / "pareto.csv").is_file():
        return Skipped("freebits_pareto", f"no freebits-pareto* run with pareto.csv under {results}")
    df = pd.read_csv(run / "pareto.csv")
    s = _summary(run)
    xc = _col(df, "measured_count", "measured")
    yc = _col(df, "top1_device", "device_top1", "device_top_1")
    hc = _col(df, "top1_host", "host_top1", "host_top_1")
    if xc is None or (yc is None and hc is None):
        return Skipped("freebits_pareto", f"{run / 'pareto.csv'} lacks a measured count or a top-1 column")
    ycol = yc if yc is not None and df[yc].notna().any() else hc
    df = df.rename(columns={xc: "measured_count", ycol: "top1"})
    if _col(df, "method") is None:
        df["method"] = "configurations"
    unit = str(df["unit"].dropna().iloc[0]) if "unit" in df and df["unit"].notna().any() else s.get("unit", "count")
    return pareto_figure(
        df, x="measured_count", y="top1", int8_count=s.get("baseline_int8_count"),
        int8_top1=s.get("top1_int8_reference"), unit=unit, accuracy="device" if ycol == yc else "host",
        title=f"Free Bits latency-accuracy Pareto front: {_where(s, run)}",
    )  # fmt: skip


def draw_freebits_loop(results: Path):
    """The closed loop: count and top-1 of int8, the start and the final configuration, and each round's predicted
    and measured count."""
    run = find_run(results, "freebits-mbv2") or find_run(results, "freebits-")
    if run is None or not (run / "rounds.csv").is_file():
        return Skipped("freebits_loop", f"no freebits-* run with rounds.csv under {results} (tinyhil run)")
    plt = pyplot()
    s = _summary(run)
    rounds = pd.read_csv(run / "rounds.csv")
    unit = s.get("unit", "count")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    pts = [("uniform int8", s["baseline_int8_count"], s.get("top1_int8_host"), "o"),
           (f"start ({s.get('start_method', 'start')})", s["start_count"], s.get("top1_start_host"), "s"),
           ("final after QAT", s["final_count"], s.get("top1_final_host"), "D")]
    for label, c, t, mk in pts:
        if t is not None:
            a1.scatter(c / 1e6, 100 * t, s=60, marker=mk, label=label)
    a1.set_xlabel(f"measured latency (million {unit} per inference)")
    a1.set_ylabel(f"top-1 % (host, {s.get('n_eval_host', '?')} test images)")
    a1.legend(fontsize=8, loc="best")
    a1.set_title("latency and accuracy")
    a2.plot(rounds["round"], rounds["predicted_count"] / 1e6, "o--", label="predicted by the table")
    a2.plot(rounds["round"], rounds["measured_count"] / 1e6, "s-", label="measured on the board")
    a2.axhline(s["baseline_int8_count"] / 1e6, c="grey", lw=0.8, ls=":", label="uniform int8 (measured)")
    a2.set_xticks(rounds["round"])
    a2.set_xlabel("round of the loop")
    a2.set_ylabel(f"million {unit} per inference")
    a2.legend(fontsize=8)
    a2.set_title("rounds")
    fig.suptitle(f"Free Bits closed loop: {_where(s, run)}")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ QuantMCU


def _quantmcu_runs(results: Path) -> list[tuple[Path, dict]]:
    out = []
    for p in sorted(Path(results).glob("quantmcu-*/**/summary.json")):
        s = json.loads(p.read_text())
        if s.get("experiment") == "quantmcu":
            cfg = p.parent / "config.yaml"
            bits = yaml.safe_load(cfg.read_text())["method"]["bits"] if cfg.is_file() else None
            out.append((p.parent, {**s, "bits": "/".join(map(str, bits)) if bits else "?"}))
    return out


def draw_quantmcu_bars(results: Path):
    """BitOPs, measured latency and peak SRAM: layer by layer, 8-bit patch-based and QuantMCU (the main run)."""
    run = find_run(results, "quantmcu-")
    if run is None:
        return Skipped("quantmcu_bars", f"no quantmcu-* run under {results} (tinyhil run experiment=quantmcu)")
    plt = pyplot()
    s = _summary(run)
    unit = s.get("unit", "count")
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    panels = [
        ("BitOPs (G)", [("8-bit patch-based", s["bitops_patch8"] / 1e9), ("QuantMCU", s["bitops"] / 1e9)]),
        (f"measured latency (M {unit})", [("8-bit patch-based", s["total_count_patch8"] / 1e6),
                                          ("QuantMCU", s["total_count"] / 1e6)]),
        ("peak activation SRAM (KiB)", [("layer by layer", s["peak_sram_layer"] / KIB),
                                        ("8-bit patch-based", s["peak_sram_patch8"] / KIB),
                                        ("QuantMCU", s["peak_sram_patch"] / KIB)]),
    ]
    colours = {"layer by layer": "tab:grey", "8-bit patch-based": "tab:blue", "QuantMCU": "tab:orange"}
    for ax, (ylabel, bars) in zip(axes, panels, strict=True):
        names = [b[0] for b in bars]
        vals = [b[1] for b in bars]
        ax.bar(range(len(bars)), vals, color=[colours[n] for n in names])
        ax.set_xticks(range(len(bars)), names, rotation=15, fontsize=8)
        ax.set_ylabel(ylabel)
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:.3g}", ha="center", va="bottom", fontsize=8)
        ax.margins(y=0.15)
    fig.suptitle(f"QuantMCU vs 8-bit patch-based inference: {_where(s, run)}")
    fig.tight_layout()
    return fig


def draw_quantmcu_tradeoff(results: Path):
    """Host top-1 against the patch stage's BitOPs reduction over the sweep (phi, lambda, bit choices)."""
    runs = _quantmcu_runs(results)
    if not runs:
        return Skipped("quantmcu_tradeoff", f"no quantmcu runs under {results}")
    plt = pyplot()
    first_run, first = runs[0]
    fig, ax = plt.subplots(figsize=(8, 4.8))
    ax.scatter([1.0], [100 * first["top1_patch8_host"]], marker="*", s=180, c="k", label="8-bit patch-based")
    markers = "osD^v<>ph"
    for i, (_, r) in enumerate(runs):
        ax.scatter(r["bitops_stage_reduction"], 100 * r["top1_quantmcu_host"], s=50, marker=markers[i % 9],
                   label=f"phi {r['phi']:g}, lambda {r['lambda']:g}, bits {r['bits']}")
    ax.axvline(2.2, ls="--", c="grey", label="paper: 2.2x")
    ax.set_xlabel("patch-stage BitOPs reduction vs 8-bit patch-based (x)")
    ax.set_ylabel(f"top-1 % (host, {int(first['n_eval'])} test images, no fine-tuning)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside the axes: never over a point
    ax.set_title(f"QuantMCU accuracy trade-off: {_where(first, first_run)}")
    return fig


# ------------------------------------------------------------------------------------------ MCUNetV2


def block_of(name: str) -> str:
    """The block a layer belongs to: ``features.3`` of ``features.3.dw.conv``; the head for the rest."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "features" and len(parts) > 1 else parts[0]


def per_block_peaks(layers, split: str, n: int, rule=TINYENGINE) -> pd.DataFrame:
    """Per block, the peak activation SRAM (bytes) layer by layer and patch-based (``n x n`` patches up to
    ``split``), from the patch planner's liveness sweeps."""
    plan = plan_patches(layers, split, n, bits=8, rule=rule)
    full = layer_by_layer_peak(layers, 8, rule)
    steps = build_steps(layers, rule)
    stage = [x for x in layers if x.name in plan.stage]
    stage_steps = build_steps(stage, rule)
    patch = peak_memory(stage_steps, plan.patch_buffer_bytes)
    fixed = plan.stage_out_bytes + (plan.stage_peak - plan.stage_out_bytes - plan.patch_working_set)
    patched = {st.name: fixed + v for st, v in zip(stage_steps, patch.per_step, strict=True)}
    rows = []
    for st, v in zip(steps, full.per_step, strict=True):
        blk = block_of(st.layers[0])
        rows.append({"block": blk, "layer_by_layer": v, "patch_based": patched.get(st.name, v),
                     "in_stage": st.name in patched})
    df = pd.DataFrame(rows).groupby("block", sort=False).max().reset_index()
    df.attrs.update(layer_peak=plan.layer_peak, patch_peak=plan.patch_peak, split=plan.split, n=plan.n)
    return df


def draw_mcunetv2_memory(results: Path | None = None):
    """MCUNetV2 Fig. 1: per-block peak SRAM of MobileNetV2-1.0 at 224 px (4x4 patches over the first blocks,
    TinyEngine's in-place buffers) and of the default model (its best plan, plain liveness)."""
    plt = pyplot()
    big = extract_layers(MobileNetV2(1.0, 224).eval(), (3, 224, 224))
    small = extract_layers(build_model("mbv2-w0.35").eval())
    best = search_patch_plans(small, max_mac_overhead=0.3)[0]
    cases = [("MobileNetV2-1.0, 224 px (TinyEngine in-place buffers)", per_block_peaks(
        big, "features.4.project.conv", 4, TINYENGINE)),
             (f"mbv2-w0.35, 96 px (default model; plain liveness, {best.n}x{best.n} patches)",
              per_block_peaks(small, best.split, best.n, LIVENESS))]
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.6))
    for ax, (title, df) in zip(axes, cases, strict=True):
        x = np.arange(len(df))
        ax.bar(x - 0.2, df["layer_by_layer"] / KIB, 0.4, color="tab:grey",
               label=f"layer by layer (peak {df.attrs['layer_peak'] / KIB:.1f} KiB)")
        ax.bar(x + 0.2, df["patch_based"] / KIB, 0.4,
               label=f"patch-based (peak {df.attrs['patch_peak'] / KIB:.1f} KiB)", color="tab:blue")
        ax.set_xticks(x, [b.replace("features.", "b") for b in df["block"]], rotation=60, fontsize=7)
        ax.set_xlabel(f"block (patch stage up to {df.attrs['split']})")
        ax.set_ylabel("peak activation SRAM (KiB, int8)")
        ax.legend(fontsize=8)
        ax.set_title(title, fontsize=10)
    fig.suptitle("MCUNetV2 per-block peak SRAM, computed by tinyhil's patch planner (no board)")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ QuantuneV2


def draw_quantune_ranking(results: Path, top: int = 20):
    """The QuantuneV2 sensitivity (dSQNR) of the most sensitive layers, in ranking order."""
    run = find_run(results, "quantune-")
    if run is None or not (run / "ranking.csv").is_file():
        return Skipped("quantune_ranking", f"no quantune-* run with ranking.csv under {results}")
    plt = pyplot()
    s = _summary(run)
    r = pd.read_csv(run / "ranking.csv").sort_values("rank").head(top)
    k = int(s.get("k", 0))
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(r) + 1.6))
    colours = ["tab:red" if rank <= k else "tab:blue" for rank in r["rank"]]
    ax.barh(range(len(r)), r["dsqnr"], color=colours)
    ax.set_yticks(range(len(r)), r["layer"], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("dSQNR (dB): SQNR lost at the layer's output")
    ax.set_ylabel(f"layer (top {len(r)} of {s.get('n_layers', '?')}; red: the k={k} kept at high precision)")
    ax.set_title(f"QuantuneV2 sensitivity ranking: {_where(s, run)}, probe {s.get('probe', '?')}")
    return fig


def draw_quantune_topk(results: Path):
    """Host top-1 of the top-k assignments against k (QuantuneV2 and the one-at-a-time baseline), and uniform."""
    run = find_run(results, "quantune-")
    if run is None or not (run / "sweep.csv").is_file():
        return Skipped("quantune_topk", f"no quantune-* run with sweep.csv under {results}")
    plt = pyplot()
    s = _summary(run)
    sw = pd.read_csv(run / "sweep.csv")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, g in sw[sw["method"] != "uniform"].groupby("method"):
        g = g.sort_values("k")
        ax.plot(g["k"], 100 * g["top1"], "o-",
                label=f"{method} ranking: top-k at {s.get('high', 'high')}, rest {s.get('low', 'low')}")
    for _, u in sw[sw["method"] == "uniform"].iterrows():
        ax.axhline(100 * u["top1"], ls=":", c="grey")
        ax.text(sw["k"].max(), 100 * u["top1"], f"uniform {u['config']}", va="bottom", ha="right", fontsize=8)
    ax.set_xscale("symlog", linthresh=1)
    ks = sorted(sw.loc[sw["method"] != "uniform", "k"].unique())
    ax.set_xticks(ks, [str(int(k)) for k in ks])
    ax.set_xlim(-0.2, max(ks) * 1.15)
    ax.margins(y=0.1)
    ax.set_xlabel("k (layers kept at high precision)")
    ax.set_ylabel(f"top-1 % (host, {s.get('n_eval', '?')} test images)")
    ax.legend(fontsize=8)
    ax.set_title(f"QuantuneV2 top-1 vs k: {_where(s, run)}")
    return fig


#: Every figure: file name -> drawing function (results folder -> figure or Skipped).
FIGURES: dict[str, Callable] = {
    "kernels_per_mac": draw_kernels,
    "freebits_pareto": draw_freebits_pareto,
    "freebits_loop": draw_freebits_loop,
    "quantmcu_bars": draw_quantmcu_bars,
    "quantmcu_tradeoff": draw_quantmcu_tradeoff,
    "mcunetv2_peak_sram": draw_mcunetv2_memory,
    "quantune_ranking": draw_quantune_ranking,
    "quantune_topk": draw_quantune_topk,
}


def draw_all(results: Path, out: Path, log: Callable[[str], None] = print) -> tuple[list[Path], list[Skipped]]:
    """Draw every figure from ``results`` into ``out`` (PNG and PDF); returns (files written, skipped)."""
    written, skipped = [], []
    for name, fn in FIGURES.items():
        fig = fn(Path(results))
        if isinstance(fig, Skipped):
            skipped.append(fig)
            log(f"skipped {fig.name}: {fig.why}")
            continue
        paths = save(fig, Path(out) / f"{name}.png", pdf=True)
        written += paths
        log(f"wrote {', '.join(str(p) for p in paths)}")
    return written, skipped


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """``tinyhil figures``: every figure from ``cfg.results`` into the run folder (``cfg.out``)."""
    console = Console(stderr=True)
    written, skipped = draw_all(Path(str(cfg.results)), run_dir, log=console.print)
    return {
        "experiment": "figures",
        "results": str(cfg.results),
        "figures": len([p for p in written if p.suffix == ".png"]),
        "files": [p.name for p in written],
        "skipped": [f"{s.name}: {s.why}" for s in skipped],
    }
