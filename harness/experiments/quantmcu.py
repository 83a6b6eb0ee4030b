"""``tinyhil run experiment=quantmcu``: QuantMCU end to end, against 8-bit patch-based inference (MCUNetV2).

1. The zoo model (trained checkpoint if shipped) is quantized to uniform 8 bits and exported.
2. The patch planner picks the split and patch count (``method.split``/``method.n``, ``auto`` by default); the
   layer-by-layer fit on the board is checked (and reported, not fatal: patch-based is the point).
3. QuantMCU (:mod:`harness.search.quantmcu`): VDPC on calibration images, VDQS under the board's memory budget,
   per-patch models.
4. Host: top-1 of float, fake-quant 8-bit, the 8-bit patch-based integer model (equal to layer-by-layer int8,
   bit for bit) and QuantMCU's integer model on ``n_eval`` test images.
5. Board: QuantMCU's model (and the 8-bit patch-based one, ``device_baseline``) on ``n_device`` images, every
   layer and every (patch, layer) output checked against the integer patch reference; measured peak SRAM.

``summary.json``: ``peak_sram_patch`` (the planner's figure for the deployed precisions), ``peak_sram_layer``,
``peak_sram_device``, ``macs``/``macs_redundant`` (patch-based as executed), ``bitops`` and ``bitops_patch8``,
top-1 on host and device. A sweep: ``tinyhil run -m experiment=quantmcu method.phi=1,2,3``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from harness.build.project import RUNTIME_SRAM_BYTES, check_fit
from harness.build.sizes import min_stack_bytes
from harness.codegen.artifact import layer_artifact, patch_artifact
from harness.codegen.emit_patch import plan_patch_arena
from harness.config.board import repo_root
from harness.errors import ConfigError, DoesNotFitError
from harness.experiments.common import board_from, progress, workdir
from harness.measure.report import count_keys, print_per_layer, write_per_layer
from harness.measure.session import Session
from harness.patch.int_reference import run_patched
from harness.patch.intmodel import PatchedModel, layer_specs, patched_macs, plan_model, tensor_bits_of
from harness.patch.report import describe
from harness.patch.search import DEFAULT_N, search_patch_plans
from harness.precision.config import PrecisionConfig
from harness.quant.prepare import export, integer_inputs, prepare, quantize, top1
from harness.results.io import atomic_write_text, write_table
from harness.search.quantmcu import QuantMcuParams, quantmcu

PLAN_KEYS = ("split", "n", "max_mac_overhead", "n_calib", "memory_budget")


def choose_plan(model, split="auto", n="auto", max_mac_overhead: float = 0.3):
    """The patch plan: given, or the planner's lowest-peak plan within ``max_mac_overhead`` extra MACs."""

    if split != "auto" and n != "auto":
        return plan_model(model, split, int(n))
    plans = search_patch_plans(
        layer_specs(model),
        max_mac_overhead,
        DEFAULT_N if n == "auto" else (int(n),),
        None if split == "auto" else (split,),
        tensor_bits_of(model),
    )
    if not plans:
        raise ConfigError(
            f"no patch plan for {model.name!r} within {max_mac_overhead:.0%} extra MACs "
            f"(split={split}, n={n}); raise method.max_mac_overhead or name a split"
        )
    best = plans[0]
    return plan_model(model, best.split, best.n)


def memory_budget(cfg: DictConfig) -> int | None:
    """SRAM bytes QuantMCU's configurations may use for the arena, the result tables and the scratch buffer:
    the board's SRAM less the runtime and the stack, the same sum the build's fit check makes
    (:func:`harness.build.project.check_fit`)."""

    b = cfg.method.memory_budget
    if b is None or b == "none":
        return None
    if b != "board":
        return int(b)
    ld = repo_root() / str(cfg.board.linker_script)
    stack = min_stack_bytes(ld) if ld.is_file() else 0
    return int(cfg.board.sram.size) - RUNTIME_SRAM_BYTES - stack


def branch_bits_frame(res):
    """Feature-map precision of every branch: one row per patch (``rest``: the shared rest branch)."""

    rows = []
    for p, bits in enumerate(res.vdqs.bits):
        row = {"branch": str(p), "outlier": res.vdpc.outlier[p]}
        row.update({fm.name: bits[fm.index] for fm in res.branches.maps})
        rows.append(row)
    if res.branches.rest is not None:
        row = {"branch": "rest", "outlier": False}
        row.update({fm.name: res.vdqs.rest_bits[fm.index] for fm in res.branches.rest.maps})
        rows.append(row)
    return pd.DataFrame(rows)


def _host_top1(pm: PatchedModel, inputs, labels) -> tuple[float, np.ndarray]:
    pred = np.array([int(np.argmax(run_patched(pm, x).output(pm))) for x in inputs])
    return float(np.mean(pred == labels)), pred


def run(cfg: DictConfig, run_dir: Path) -> dict:
    t0 = time.perf_counter()
    e, mc = cfg.experiment, OmegaConf.to_container(cfg.method, resolve=True)
    params = QuantMcuParams.from_mapping({k: v for k, v in mc.items() if k not in PLAN_KEYS})
    p = prepare(cfg, n_eval=int(e.n_eval), n_calib=int(e.n_calib), require_checkpoint=False)
    trained = p.checkpoint is not None
    config8 = PrecisionConfig.uniform(quantize(p).layer_names(), 8, 8)
    qnet = quantize(p, config8)
    model = export(qnet, config8)
    plan = choose_plan(
        model, mc["split"], mc["n"], float(mc["max_mac_overhead"])
    )
    base = PatchedModel.uniform(model, plan)
    atomic_write_text(run_dir / "patch_plan.txt", describe(plan) + "\n")

    board = board_from(cfg)
    fits_layer, why_not = True, ""
    try:
        check_fit(board.cfg, layer_artifact(model).estimate)
    except DoesNotFitError as err:
        fits_layer, why_not = False, str(err)
    arena8 = plan_patch_arena(base)
    budget = memory_budget(cfg)
    params = QuantMcuParams(**{**params.__dict__, "budget": budget})

    calib = integer_inputs(model, p.calib[: int(mc["n_calib"])])
    res = quantmcu(base, calib, params)
    qm = res.patched
    res.config.save(run_dir / "config_precision.json")
    write_table(
        pd.DataFrame(
            [m.__dict__ for m in res.vdqs.moves]
            or [{"patch": None, "feature_map": None, "old": None, "new": None}]
        ),
        run_dir / "vdqs_moves.csv",
    )
    write_table(
        pd.DataFrame(
            {
                "patch": range(plan.num_patches),
                "outlier": res.vdpc.outlier,
                "outlier_fraction": res.vdpc.fraction,
                "peak_ratio": res.vdpc.peak_ratio,
            }
        ),
        run_dir / "vdpc.csv",
    )

    write_table(branch_bits_frame(res), run_dir / "branch_bits.csv")
    ev = integer_inputs(model, p.eval_x)
    top1_p8, pred_p8 = _host_top1(base, ev, p.eval_y)
    top1_qm, pred_qm = _host_top1(qm, ev, p.eval_y)

    nd = min(int(e.n_device), len(ev))
    dev_x, dev_y = ev[:nd], p.eval_y[:nd]
    runs = {"quantmcu": qm, **({"patch8": base} if bool(e.device_baseline) else {})}
    measured, arts = {}, {}
    for label, pm in runs.items():
        with progress(f"{p.name} {label} on {board.name}", nd) as advance:
            session = Session(board, workdir(cfg, "quantmcu", board.name, p.name, label))
            arts[label] = patch_artifact(pm)
            measured[label] = session.run(arts[label], dev_x, progress=advance, require_exact=False)
    m = measured["quantmcu"]
    print_per_layer(m, title=f"{p.name} QuantMCU patch-based on {m.board} (last image)")
    write_per_layer(m, run_dir)
    write_table(pd.DataFrame(m.per_patch_rows()), run_dir / "per_patch.csv")
    arena = arts["quantmcu"].layout

    def dev_top1(label: str) -> float | None:
        return float(np.mean(measured[label].predictions() == dev_y)) if label in measured else None

    f = res.figures
    summary = {
        "experiment": "quantmcu",
        "board": m.board,
        **count_keys(m),
        "model": p.name,
        "data": str(cfg.data.name),
        "trained": trained,
        "checkpoint": p.checkpoint,
        "split": plan.split,
        "n": plan.n,
        "phi": params.phi,
        "lambda": params.lam,
        "rule": params.rule,
        "range_mode": params.range_mode,
        "scope": params.scope,
        "n_patches": plan.num_patches,
        "n_outlier_patches": f["n_outlier_patches"],
        "outlier_patches": [i for i, o in enumerate(res.vdpc.outlier) if o],
        "n_moves": f["n_moves"],
        "n_rest_moves": f["n_rest_moves"],
        "peak_sram_patch": arena.planner_peak,
        "peak_sram_patch8": arena8.planner_peak,
        "peak_sram_layer": arena8.layer_peak,  # 8-bit layer by layer: what the fit check refused or accepted
        "peak_sram_layer_mixed": arena.layer_peak,  # layer by layer at QuantMCU's widest per-tensor precisions
        "peak_sram_device": m.peak_sram_device,
        # the activation part measured on the device (painted arena: bytes up to the highest one written), the
        # like-for-like figure for the planner's peak; peak_sram_device adds scratch, runtime data and stack
        "peak_arena_device": m.mem.get("arena_used"),
        "device_within_planner": (
            m.mem.get("arena_used") is not None and int(m.mem["arena_used"]) <= arena.planner_peak
        ),
        "arena_bytes": arena.arena_bytes,
        # > 0 when first-fit placement (and the split layer's per-patch output buffer, which the firmware scatters
        # into the stage output and the planner's liveness figure does not count) needs more than the planner
        "arena_over_planner_bytes": arena.arena_bytes - arena.planner_peak,
        "memory_budget": budget,
        "fits_layer_by_layer": fits_layer,
        "layer_by_layer_error": why_not or None,
        "macs": patched_macs(qm),
        "macs_redundant": plan.redundant_macs,
        "macs_layer_by_layer": plan.total_macs,
        "bitops": f["bitops"],
        "bitops_patch8": f["bitops_patch8"],
        "bitops_reduction": f["bitops_reduction"],
        "bitops_stage": f["bitops_stage"],
        "bitops_stage_patch8": f["bitops_stage_patch8"],
        "bitops_stage_reduction": f["bitops_stage_reduction"],
        "n_eval": len(ev),
        "top1_float": top1(p.model, p.eval_x, p.eval_y),
        "top1_fakequant8": top1(qnet, p.eval_x, p.eval_y),
        "top1_patch8_host": top1_p8,
        "top1_quantmcu_host": top1_qm,
        "top1_change_host": top1_qm - top1_p8,
        "n_device": nd,
        "top1_quantmcu_device": dev_top1("quantmcu"),
        "top1_patch8_device": dev_top1("patch8"),
        "device_equals_reference": bool(
            all(
                np.array_equal(measured[k].predictions(), pred[:nd])
                for k, pred in (("quantmcu", pred_qm), ("patch8", pred_p8))
                if k in measured
            )
        ),
        "bit_exact": bool(all(x.bit_exact for x in measured.values())),
        "total_count_patch8": measured["patch8"].total_count if "patch8" in measured else None,
        "flash_used": m.build.get("flash_used"),
        "sram_used": m.build.get("sram_used"),
        "host_seconds": round(time.perf_counter() - t0, 3),
        "emulator_seconds": round(sum(x.emulator_seconds for x in measured.values()), 3),
    }
    if not trained:
        summary["note"] = (
            f"no trained checkpoint for {p.name} on {cfg.data.name}: weights are untrained, so "
            "top-1 is meaningless; BitOPs, MACs and memory are real"
        )
    _print_summary(summary)
    return summary


def _print_summary(s: dict) -> None:
    t = Table(title=f"QuantMCU vs 8-bit patch-based: {s['model']} on {s['board']}")
    t.add_column("")
    t.add_column("8-bit patch-based", justify="right")
    t.add_column("QuantMCU", justify="right")

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f} %"

    t.add_row("BitOPs", f"{s['bitops_patch8']:,}", f"{s['bitops']:,} ({s['bitops_reduction']:.2f}x fewer)")
    t.add_row(
        "BitOPs, patch stage",
        f"{s['bitops_stage_patch8']:,}",
        f"{s['bitops_stage']:,} ({s['bitops_stage_reduction']:.2f}x fewer)",
    )
    t.add_row("peak SRAM (planner)", f"{s['peak_sram_patch8']:,} B", f"{s['peak_sram_patch']:,} B")
    t.add_row("top-1 host", pct(s["top1_patch8_host"]), pct(s["top1_quantmcu_host"]))
    t.add_row("top-1 device", pct(s["top1_patch8_device"]), pct(s["top1_quantmcu_device"]))
    t.add_row(
        f"count ({s['unit']})",
        "-" if s["total_count_patch8"] is None else f"{s['total_count_patch8']:,.0f}",
        f"{s['total_count']:,.0f}",
    )
    c = Console()
    if not c.is_terminal:
        c = Console(width=140)
    c.print(t)
    c.print(
        f"outlier patches {s['outlier_patches']} of {s['n_patches']}; device peak {s['peak_sram_device']:,} B "
        f"(arena written {s['peak_arena_device'] or 0:,} B vs planner {s['peak_sram_patch']:,} B); "
        f"8-bit layer by layer {s['peak_sram_layer']:,} B ({'fits' if s['fits_layer_by_layer'] else 'does NOT fit'})"
    )
