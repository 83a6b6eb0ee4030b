"""Ranking quality: how good are the top-k assignments a ranking chooses, against other rankings.

A ranking is judged by what it is for: for each ``k``, keep its ``k`` most sensitive layers high, lower the rest,
and measure top-1. QuantuneV2's claim (arXiv 2501.07161) is speed at equal or better accuracy than the
one-layer-at-a-time ranking; a random ranking is the floor either must beat. Pure functions over rows
``{method, k, top1, ...}`` (one per evaluated assignment); random rankings are named ``random-<i>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

RANDOM = "random"


def random_rankings(names: Sequence[str], n: int, seed: int = 0) -> list[list[str]]:
    """``n`` seeded random orderings of ``names`` (a fresh generator per ranking: ``seed + i``)."""
    return [list(np.random.default_rng(seed + i).permutation(list(names))) for i in range(n)]


def is_random(method: str) -> bool:
    return method == RANDOM or method.startswith(f"{RANDOM}-")


def quality_table(rows: Sequence[Mapping], ks: Sequence[int]) -> list[dict]:
    """Per ``k``: top-1 of each ranking's assignment and of the random rankings (mean, min, max)."""
    out = []
    for k in ks:
        at = [r for r in rows if r.get("k") == k]
        row: dict = {"k": k}
        for r in at:
            if not is_random(r["method"]):
                row[f"top1_{r['method']}"] = r["top1"]
                row[f"bitops_rel_{r['method']}"] = r["bitops_rel_8bit"]
        rnd = [r["top1"] for r in at if is_random(r["method"])]
        if rnd:
            row.update(
                {
                    "top1_random_mean": float(np.mean(rnd)),
                    "top1_random_min": float(np.min(rnd)),
                    "top1_random_max": float(np.max(rnd)),
                    "bitops_rel_random_mean": float(
                        np.mean([r["bitops_rel_8bit"] for r in at if is_random(r["method"])])
                    ),
                }
            )
        out.append(row)
    return out


def quality_summary(
    table: Sequence[Mapping], n: int, seconds: Mapping[str, float], tolerance_pts: float = 1.0
) -> dict:
    """Flat summary keys: mean top-1 of each ranking over the ``k`` where rankings can differ (``0 < k < n``; at
    0 and n every ranking gives the same assignment), head-to-head counts, the time each ranking took and
    whether QuantuneV2's claim holds: faster than the one-at-a-time ranking, and its mean top-1 no more than
    ``tolerance_pts`` points below it."""
    inner = [r for r in table if 0 < r["k"] < n] or list(table)
    out: dict = {"quality_ks": [int(r["k"]) for r in inner], "quality_n_ks": len(inner)}
    cols = {"quantune": "top1_quantune", "baseline": "top1_baseline", "random": "top1_random_mean"}
    means = {}
    for name, col in cols.items():
        vals = [r[col] for r in inner if col in r]
        if vals:
            means[name] = float(np.mean(vals))
            out[f"quality_mean_top1_{name}"] = means[name]
    for other in ("baseline", "random"):
        col = cols[other]
        pairs = [(r["top1_quantune"], r[col]) for r in inner if col in r and "top1_quantune" in r]
        if not pairs:
            continue
        out[f"quality_diff_pts_quantune_vs_{other}"] = 100.0 * (means["quantune"] - means[other])
        out[f"quality_k_quantune_better_than_{other}"] = sum(a > b for a, b in pairs)
        out[f"quality_k_quantune_equal_to_{other}"] = sum(a == b for a, b in pairs)
        out[f"quality_k_quantune_worse_than_{other}"] = sum(a < b for a, b in pairs)
    for name, s in seconds.items():
        out[f"ranking_seconds_{name}"] = float(s)
    if "baseline" in means and "quantune" in seconds and "baseline" in seconds:
        faster = seconds["quantune"] < seconds["baseline"]
        equal = out["quality_diff_pts_quantune_vs_baseline"] >= -float(tolerance_pts)
        out.update(
            {
                "claim_tolerance_pts": float(tolerance_pts),
                "claim_faster": bool(faster),
                "claim_equal_or_better_accuracy": bool(equal),
                "claim_holds": bool(faster and equal),
            }
        )
    return out
