# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # tinyhil figures from the reference results
#
# Regenerates the figures of the papers tinyhil re-measures, from the committed runs under `results/reference/`
# (each folder's `summary.json` and tables were written by a `tinyhil` command; its README says which). Run it as a
# notebook (`jupytext --to ipynb notebooks/figures.py`) or as a script:
#
#     python notebooks/figures.py                     # PNGs into results/figures/
#     TINYHIL_FIGURES_OUT=/tmp/figs python notebooks/figures.py
#
# A figure whose input run is missing is skipped with a note, so the notebook also works on a partial set of runs
# (point `TINYHIL_REFERENCE` at another folder of runs).

# %%
from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1] if "__file__" in globals() else Path.cwd().parent
REF = Path(os.environ.get("TINYHIL_REFERENCE", ROOT / "results" / "reference"))
OUT = Path(os.environ.get("TINYHIL_FIGURES_OUT", ROOT / "results" / "figures"))
OUT.mkdir(parents=True, exist_ok=True)
written: list[Path] = []


def run_dir(prefix: str) -> Path | None:
    """The reference run whose folder name starts with ``prefix`` (None when it is not there)."""
    hits = sorted(p for p in REF.glob(f"{prefix}*") if (p / "summary.json").is_file())
    if not hits:
        print(f"skipped: no run {prefix}* under {REF}")
        return None
    return hits[0]


def save(fig, name: str) -> None:
    path = OUT / name
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    written.append(path)
    print(f"wrote {path}")


# %% [markdown]
# ## Kernels: instructions per MAC, layer x (a, w) pair (issue: sub-byte kernels)
# Green cells run fewer instructions per MAC than a8w8 on the same layer; the `ref` column is the plain C loop.

# %%
d = run_dir("kernels-")
if d is not None:
    k = pd.read_csv(d / "kernels.csv")
    assert k["bit_exact"].all(), "a benchmark row is not bit-exact"
    m = k.pivot_table(index="layer", columns="pair", values="count_per_mac", sort=False)
    cols = [
        c for c in ("a8w8", "a8w4", "a8w2", "a4w8", "a4w4", "a4w2", "a2w8", "a2w4", "a2w2", "ref") if c in m
    ]
    m = m[cols]
    rel = m.div(m["a8w8"], axis=0)
    fig, ax = plt.subplots(figsize=(1.0 * len(cols) + 2, 0.5 * len(m) + 1.5))
    ax.imshow(np.log2(rel.clip(upper=4.0)), cmap="RdYlGn_r", vmin=-1, vmax=1, aspect="auto")
    for i in range(len(m)):
        for j in range(len(cols)):
            ax.text(j, i, f"{m.iloc[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(m)), m.index)
    ax.set_title("instructions per MAC (qemu-mps2-an386); colour: vs a8w8")
    save(fig, "kernels_per_mac.png")
    faster = {c: int((rel[c] < 1.0).sum()) for c in cols if c not in ("a8w8", "ref")}
    print("layers where the pair beats a8w8:", faster)

# %% [markdown]
# ## Free Bits closed loop: latency vs accuracy of int8, start and final, and the rounds
# The paper's headline is 28.6 % fewer cycles than int8 at negligible loss; the dashed line marks it.

# %%
d = run_dir("freebits-")
if d is not None:
    s = json.loads((d / "summary.json").read_text())
    rounds = pd.read_csv(d / "rounds.csv")
    base = s["baseline_int8_count"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    pts = [
        ("int8", s["baseline_int8_count"], s["top1_int8_host"]),
        ("start", s["start_count"], s["top1_start_host"]),
        ("final (QAT)", s["final_count"], s["top1_final_host"]),
    ]
    for label, c, t in pts:
        a1.scatter(c / base, 100 * t, s=50)
        a1.annotate(label, (c / base, 100 * t), textcoords="offset points", xytext=(5, 5))
    a1.axvline(1 - 0.286, ls="--", c="grey", label="goal: 28.6 % fewer")
    if s.get("ilp_fastest_predicted_count"):
        a1.axvline(
            s["ilp_fastest_predicted_count"] / base, ls=":", c="tab:red", label="table's fastest (any bits)"
        )
    a1.legend(loc="center left", fontsize=8)
    a1.set_xlabel("count / int8 count")
    a1.set_ylabel(f"top-1 % (host, {s['n_eval_host']} images)")
    a1.set_title(f"{s['model']} on {s['board']}")
    a2.plot(rounds["round"], rounds["predicted_count"] / base, "o--", label="predicted (table)")
    a2.plot(rounds["round"], rounds["measured_count"] / base, "s-", label="measured")
    a2.axhline(1.0, c="grey", lw=0.8)
    a2.set_xlabel("round")
    a2.set_ylabel("count / int8 count")
    a2.legend()
    a2.set_title(f"prediction error {s['prediction_error_pct']:+.1f} % (final round)")
    save(fig, "freebits_loop.png")
    print(
        f"final {s['reduction_vs_int8_pct']:+.1f} % vs int8, top-1 loss {s['top1_loss_pts']:.1f} pts "
        f"(goal met: {s['goal_met']}); {s.get('limit', '')}"
    )

# %% [markdown]
# ## QuantMCU: BitOPs of the patch stage vs top-1, over the VDPC threshold phi (and the bit choices)


# %%
def _quantmcu_run(path: Path) -> dict:
    """A QuantMCU summary with the bit choices of its config (``config.yaml`` beside it)."""
    import yaml

    s = json.loads(path.read_text())
    cfg = path.parent / "config.yaml"
    bits = yaml.safe_load(cfg.read_text())["method"]["bits"] if cfg.is_file() else None
    return {**s, "bits": "/".join(map(str, bits)) if bits else "?"}


runs = [
    _quantmcu_run(p)
    for p in sorted(REF.glob("quantmcu-*/**/summary.json"))
    if json.loads(p.read_text()).get("experiment") == "quantmcu"
]
if not runs:
    print(f"skipped: no quantmcu runs under {REF}")
else:
    q = pd.DataFrame(runs)
    fig, ax = plt.subplots(figsize=(6, 4))
    p8 = q.iloc[0]
    ax.scatter([1.0], [100 * p8["top1_patch8_host"]], marker="*", s=150, c="k", label="8-bit patch-based")
    if p8.get("top1_patch8ft_host") is not None and not pd.isna(p8.get("top1_patch8ft_host")):
        ax.scatter([1.0], [100 * p8["top1_patch8ft_host"]], marker="P", s=100, c="k",
                   label="8-bit patch-based, fine-tuned")  # fmt: skip
    for _, r in q.iterrows():
        ax.scatter(r["bitops_stage_reduction"], 100 * r["top1_quantmcu_host"], s=40)
        ax.annotate(
            f"phi {r['phi']:g}, lambda {r['lambda']:g}, bits {r['bits']}",
            (r["bitops_stage_reduction"], 100 * r["top1_quantmcu_host"]),
            textcoords="offset points",
            xytext=(5, 3),
            fontsize=8,
        )
    ax.axvline(2.2, ls="--", c="grey", label="paper: 2.2x")
    ax.set_xlabel("patch-stage BitOPs reduction vs 8-bit patch-based (x)")
    tuned = bool(q.get("finetuned", pd.Series([False])).fillna(False).any())
    ax.set_ylabel(f"top-1 % (host, {int(p8['n_eval'])} images, {'fine-tuned' if tuned else 'no fine-tuning'})")
    ax.legend()
    save(fig, "quantmcu_tradeoff.png")
    cols = [
        "phi",
        "lambda",
        "bits",
        "n_outlier_patches",
        "bitops_stage_reduction",
        "bitops_reduction",
        "top1_quantmcu_host",
    ]
    print(q[cols].to_string(index=False))

# %% [markdown]
# ## QuantuneV2: top-1 vs BitOPs of the top-k assignments

# %%
d = run_dir("quantune-")
if d is not None:
    sw = pd.read_csv(d / "sweep.csv")
    fig, ax = plt.subplots(figsize=(6, 4))
    for method, g in sw.groupby("method"):
        ax.plot(g["bitops_rel_8bit"], 100 * g["top1"], "o-", label=method)
    ax.set_xlabel("BitOPs / uniform 8-bit")
    ax.set_ylabel("top-1 %")
    ax.legend()
    save(fig, "quantune_tradeoff.png")

# %%
print(f"{len(written)} figure(s) in {OUT}")
