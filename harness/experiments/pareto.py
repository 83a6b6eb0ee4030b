"""The latency-accuracy Pareto front and its figure (``experiment=freebits-pareto`` and ``tinyhil figures``).

Pure functions over a table of measured points: :func:`pareto_front` keeps the points no other point beats in both
latency (lower is better) and accuracy (higher is better); :func:`front_mask` marks them in place of the table's
rows; :func:`pareto_figure` draws latency relative to uniform int8 against top-1, one marker per method, the front
as a step line and the Free Bits paper's headline (28.6 % fewer than int8) as a vertical line.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.results.plotting import pyplot

GOAL_REDUCTION_PCT = 28.6  # the Free Bits paper's headline: 28.6 % lower latency than int8
GOAL_MAX_TOP1_LOSS_PTS = 1.0  # at no more than one point of top-1 lost
MARKERS = "osD^v<>PX*h"


def pareto_front(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The points no other point beats in both ``x`` (lower is better) and ``y`` (higher is better); of points
    with equal ``x`` and ``y``, the first."""
    p = points.sort_values([x, y], ascending=[True, False], kind="stable")
    best, keep = -np.inf, []
    for i, r in p.iterrows():
        if r[y] > best:
            keep.append(i)
            best = r[y]
    return p.loc[keep]


def front_mask(points: pd.DataFrame, x: str, y: str) -> pd.Series:
    """True for the rows of ``points`` on the front (rows with a missing ``x`` or ``y`` are never on it)."""
    ok = points.dropna(subset=[x, y])
    on = pd.Series(False, index=points.index)
    if len(ok):
        on.loc[pareto_front(ok, x, y).index] = True
    return on


def dominated(points: pd.DataFrame, x: str, y: str, i) -> bool:
    """Whether another row of ``points`` is at least as good as row ``i`` in both and better in one."""
    r = points.loc[i]
    o = points.drop(index=i).dropna(subset=[x, y])
    return bool((((o[x] <= r[x]) & (o[y] >= r[y])) & ((o[x] < r[x]) | (o[y] > r[y]))).any())


def pareto_figure(
    df: pd.DataFrame,
    *,
    int8_count: float | None,
    int8_top1: float | None = None,
    unit: str = "count",
    accuracy: str = "device",
    title: str = "",
    x: str = "measured_count",
    y: str = "top1_device",
):
    """Latency relative to uniform int8 (``x / int8_count``; absolute when ``int8_count`` is None) against top-1
    (``y``, 0..1) of every measured point, per ``method``, labelled; the front; the paper's 28.6 % line and,
    with ``int8_top1``, the 1-point-loss line."""
    plt = pyplot()
    d = df.dropna(subset=[x, y]).copy()
    rel = int8_count is not None and int8_count > 0
    d["_x"] = d[x] / int8_count if rel else d[x] / 1e6
    d["_y"] = 100.0 * d[y]
    fig, ax = plt.subplots(figsize=(8, 5))
    methods = list(dict.fromkeys(d["method"])) if "method" in d else ["configurations"]
    for k, m in enumerate(methods):
        g = d[d["method"] == m] if "method" in d else d
        ax.scatter(g["_x"], g["_y"], s=45, marker=MARKERS[k % len(MARKERS)], alpha=0.85, label=str(m), zorder=3)
    if "label" in d:  # one note per position: points that measured the same lie on each other
        for (px, py), g in d.groupby([d["_x"].round(4), d["_y"].round(2)], sort=False):
            ax.annotate(", ".join(map(str, g["label"])), (px, py), fontsize=6, xytext=(4, -9),
                        textcoords="offset points")  # fmt: skip
    on = d["on_front"].astype(bool) if "on_front" in d else front_mask(d, "_x", "_y")
    front = d[on].sort_values("_x")
    ax.scatter(front["_x"], front["_y"], s=140, facecolors="none", edgecolors="k", lw=1.0, zorder=2,
               label="on the Pareto front")  # fmt: skip
    if len(front) > 1:
        ax.plot(front["_x"], front["_y"], "k-", lw=1.0, drawstyle="steps-post", zorder=1)
    if rel:
        ax.axvline(1.0, color="grey", lw=0.8, ls=":", label="uniform int8")
        ax.axvline(1.0 - GOAL_REDUCTION_PCT / 100.0, color="tab:red", lw=1.0, ls="--",
                   label=f"Free Bits paper: {GOAL_REDUCTION_PCT} % below int8")  # fmt: skip
        ax.set_xlabel(f"measured latency relative to uniform int8 ({unit} per inference)")
    else:
        ax.set_xlabel(f"measured latency (million {unit} per inference)")
    if int8_top1 is not None and np.isfinite(int8_top1):
        ax.axhline(100.0 * int8_top1 - GOAL_MAX_TOP1_LOSS_PTS, color="tab:red", lw=0.8, ls=":",
                   label=f"int8 top-1 - {GOAL_MAX_TOP1_LOSS_PTS:g} point")  # fmt: skip
    ax.set_ylabel(f"top-1 % ({accuracy})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(title or "latency-accuracy Pareto front", fontsize=9)
    return fig
