# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # tinyhil figures from measured runs
#
# Every figure of the papers tinyhil re-measures, drawn from the runs under `results/reference/` (each folder's
# `summary.json` and tables were written by a `tinyhil` command; its README says which). The figures are the
# ones `tinyhil figures` saves as PNG and PDF; here they show inline. A figure whose run is missing is skipped with
# a note. Set `TINYHIL_REFERENCE` to draw from another folder of runs.
#
# This notebook is paired with `figures.py` by jupytext (`jupytext --sync notebooks/figures.ipynb`).

# %%
import json
import os
from pathlib import Path

from harness import REPO_ROOT
from harness.experiments import figures as F

REF = Path(os.environ.get("TINYHIL_REFERENCE", REPO_ROOT / "results" / "reference"))
shown, skipped = [], []


def show(name: str) -> None:
    """Draw one figure inline (or say why it is skipped)."""
    fig = F.FIGURES[name](REF)
    if isinstance(fig, F.Skipped):
        skipped.append(name)
        print(f"skipped {name}: {fig.why}")
    else:
        shown.append(name)  # the inline backend shows the figure at the end of the cell


# %% [markdown]
# ## Kernels: cost per MAC of every layer type at every (a, w) pair
# Green cells run fewer instructions per MAC than a8w8 on the same layer; `ref` is the plain C int8 loop.

# %%
show("kernels_per_mac")

# %% [markdown]
# ## Free Bits: the latency-accuracy Pareto front and the closed loop
# The paper's headline is 28.6 % fewer cycles than int8 at negligible loss.

# %%
show("freebits_pareto")

# %%
show("freebits_loop")
run = F.find_run(REF, "freebits-mbv2")
if run is not None:
    s = json.loads((run / "summary.json").read_text())
    headline = {k: s[k] for k in ("reduction_vs_int8_pct", "top1_loss_pts", "goal_met")}
    print(json.dumps({"freebits": headline}))

# %% [markdown]
# ## QuantMCU: BitOPs, latency and peak memory against 8-bit patch-based inference, and the accuracy trade-off

# %%
show("quantmcu_bars")

# %%
show("quantmcu_tradeoff")

# %% [markdown]
# ## MCUNetV2: per-block peak SRAM, layer by layer and patch-based (computed by the patch planner)

# %%
show("mcunetv2_peak_sram")

# %% [markdown]
# ## QuantuneV2: the sensitivity ranking and top-1 against k

# %%
show("quantune_ranking")

# %%
show("quantune_topk")

# %%
print(json.dumps({"shown": shown, "skipped": skipped}))
