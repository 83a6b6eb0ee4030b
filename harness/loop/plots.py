"""Figures of a Free Bits run (PNG, matplotlib's Agg backend): rounds, per-layer pair costs, latency vs accuracy."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from harness.graph.spec import LayerSpec
from harness.results.io import atomic_write_bytes
from harness.results.plotting import pyplot
from harness.table.lut import LatencyTable

PAIRS = [(a, w) for a in (2, 4, 8) for w in (2, 4, 8)]


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    pyplot().close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def plot_rounds(
    rounds: pd.DataFrame, path: str | Path, *, int8_count: float | None = None, unit: str = "count"
) -> Path:
    """Measured and predicted end-to-end count of every round (``rounds.csv``), the int8 count as a line."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(rounds["round"], rounds["measured_count"], "o-", label="measured on the board")
    ax.plot(rounds["round"], rounds["predicted_count"], "s--", label="predicted by the table")
    if int8_count is not None:
        ax.axhline(int8_count, color="grey", ls=":", label="uniform int8 (measured)")
    ax.set_xlabel("round")
    ax.set_ylabel(f"end-to-end {unit}")
    ax.set_xticks(list(rounds["round"]))
    ax.set_title("Free Bits loop: measured vs predicted")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, Path(path))


def pair_matrix(table: LatencyTable, layers: Sequence[LayerSpec], o_bits: int = 8) -> pd.DataFrame:
    """Rows: the network's unique weighted layer shapes (first layer name), columns ``aAwW``: count at
    ``o_bits`` (the nearest measured o when that one is missing) relative to the shape's a8w8 count."""
    df = table.df
    df = df[df["w_bits"] > 0]
    out, seen = {}, set()
    for s in layers:
        if not s.has_weights or s.key() in seen:
            continue
        seen.add(s.key())
        rows = df[df["layer_key"] == s.key()]
        vals = {}
        for a, w in PAIRS:
            r = rows[(rows["a_bits"] == a) & (rows["w_bits"] == w)]
            if len(r):
                r = r.iloc[(r["o_bits"] - o_bits).abs().argsort()[:1]]
                vals[f"a{a}w{w}"] = float(r["count"].iloc[0])
        ref = vals.get("a8w8")
        out[s.name] = (s.key(), {k: v / ref for k, v in vals.items()} if ref else {})
    m = pd.DataFrame({n: v for n, (_, v) in out.items()}).T
    return m.reindex(columns=[f"a{a}w{w}" for a, w in PAIRS])


def plot_pair_heatmap(table: LatencyTable, layers: Sequence[LayerSpec], path: str | Path) -> Path:
    """Heatmap of every unique layer shape's count at each (a, w) pair, relative to its a8w8 count."""
    plt = pyplot()
    m = pair_matrix(table, layers)
    fig, ax = plt.subplots(figsize=(7, max(3, 0.28 * len(m) + 1.5)))
    data = np.log2(m.to_numpy(dtype=float))
    lim = max(1.0, float(np.nanmax(np.abs(data)))) if np.isfinite(data).any() else 1.0
    im = ax.imshow(data, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(m.columns)), m.columns)
    ax.set_yticks(range(len(m.index)), [n if len(n) < 28 else "..." + n[-25:] for n in m.index], fontsize=7)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            v = m.iat[i, j]
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax, label="log2(count / count at a8w8)")
    ax.set_title("per-layer count at each (a, w) pair (o = 8), relative to a8w8")
    return _save(fig, Path(path))


def plot_latency_accuracy(
    points: Sequence[dict], path: str | Path, unit: str = "count", ylabel: str = ""
) -> Path:
    """Scatter of ``{"label", "count", "top1"}`` points (int8, start, final)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for p, marker in zip(points, "osD^v<>", strict=False):
        if p.get("top1") is None or p.get("count") is None:
            continue
        ax.scatter(
            p["count"],
            100.0 * p["top1"],
            s=70,
            marker=marker,
            alpha=0.8,
            label=f"{p['label']}: {p['count']:,.0f}, {100.0 * p['top1']:.1f} %",
        )
    ax.legend(fontsize=8)
    ax.set_xlabel(f"end-to-end {unit} (measured)")
    ax.set_ylabel(f"top-1 (%){' ' + ylabel if ylabel else ''}")
    ax.set_title("latency vs accuracy")
    ax.grid(alpha=0.3)
    return _save(fig, Path(path))
