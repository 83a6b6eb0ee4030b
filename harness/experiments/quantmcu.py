"""``tinyhil run experiment=quantmcu``: QuantMCU end to end, against 8-bit patch-based inference (MCUNetV2).

1. The zoo model (trained checkpoint if shipped) is quantized to uniform 8 bits and exported.
2. The patch planner picks the split and patch count (``method.split``/``method.n``, ``auto`` by default); the
   layer-by-layer fit on the board is checked (and reported, not fatal: patch-based is the point).
3. QuantMCU (:mod:`harness.search.quantmcu`): VDPC on calibration images, VDQS under the board's memory budget
   (judged by the firmware's arena planner), per-patch models.
4. With ``experiment.finetune.epochs > 0``: quantization-aware fine-tuning of the shared weights through the
   patch-based computation, every patch's precisions and ranges fixed (:mod:`harness.search.quantmcu.finetune`);
   with ``finetune.baseline`` the 8-bit patch-based model gets the same training, so accuracy is compared at
   equal training.
5. Host: top-1 of float, fake-quant 8-bit, the 8-bit patch-based integer model (equal to layer-by-layer int8,
   bit for bit) and QuantMCU's integer model (before and after fine-tuning) on ``n_eval`` test images.
6. Board: QuantMCU's model (and the 8-bit patch-based one, ``device_baseline``) on ``n_device`` images, every
   layer and every (patch, layer) output checked against the integer patch reference; measured peak SRAM.

``summary.json``: ``peak_sram_patch`` (the planner's figure for the deployed precisions), ``peak_sram_layer``,
``peak_sram_device``, ``sram_need`` (what the search judged: the firmware arena's need) against
``memory_budget``, ``macs``/``macs_redundant`` (patch-based as executed), ``bitops`` and ``bitops_patch8``, the
measured count of both with its unit, top-1 on host and device.

``tinyhil run experiment=quantmcu-sweep`` runs a list of QuantMCU settings (``experiment.points``, each a set of
method overrides) on one prepared model and one 8-bit baseline: per point a folder ``points/<label>/`` with the
summary above, and at the top ``sweep.csv`` (one row per configuration: hash, method, BitOPs, measured count and
unit, device and host top-1), ``sweep.png`` and a summary of the best BitOPs and count reductions at comparable
accuracy (within ``experiment.comparable_pts`` of the 8-bit patch-based top-1).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from harness.build.fit import check_fit, runtime_footprint
from harness.build.sizes import min_stack_bytes
from harness.codegen.artifact import Artifact, layer_artifact, patch_artifact
from harness.codegen.emit_patch import PatchArena, plan_patch_arena
from harness.config.board import load_board_config, repo_root
from harness.errors import ConfigError, DoesNotFitError
from harness.experiments.common import board_from, progress, workdir
from harness.ir.model import IntModel
from harness.measure.report import count_keys, print_per_layer, write_per_layer
from harness.measure.session import Measurement, Session
from harness.patch.int_reference import run_patched
from harness.patch.intmodel import (
    PatchedModel,
    layer_specs,
    patched_bitops,
    patched_macs,
    plan_model,
    tensor_bits_of,
)
from harness.patch.plan import PatchPlan
from harness.patch.report import describe
from harness.patch.search import DEFAULT_N, search_patch_plans
from harness.precision.config import PrecisionConfig
from harness.quant.prepare import Prepared, export, integer_inputs, prepare, quantize, top1
from harness.quant.qnet import QuantNet, copy_quantnet
from harness.results.io import atomic_write_text, write_summary, write_table
from harness.results.plotting import pyplot, save
from harness.search.quantmcu import PLAN_KEYS, QuantMcuParams, QuantMcuResult, quantmcu
from harness.search.quantmcu.finetune import finetune, finetuned_patched, training_split

PAPER_BITOPS_REDUCTION = (
    2.2  # QuantMCU's headline: 2.2x fewer BitOPs than 8-bit patch-based, comparable accuracy
)


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
    stack = min_stack_bytes(ld) if ld.is_file() else 8 * 1024
    runtime = runtime_footprint(load_board_config(OmegaConf.to_container(cfg.board, resolve=True))).sram
    return int(cfg.board.sram.size) - runtime - stack


def branch_bits_frame(res: QuantMcuResult) -> pd.DataFrame:
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


# -- what every point of a run shares ----------------------------------------------------------------------


@dataclass
class Bench:
    """The prepared model, its 8-bit patch-based baseline, the board and the images every point uses."""

    cfg: DictConfig
    p: Prepared
    qnet8: QuantNet
    model8: IntModel
    plan: PatchPlan
    base: PatchedModel
    board: Any
    budget: int | None
    calib: list[np.ndarray]  # integer calibration inputs (VDPC/VDQS)
    ev: list[np.ndarray]  # integer evaluation inputs
    n_device: int
    arena8: PatchArena
    fits_layer: bool
    why_not: str
    finetune: dict  # trainer settings, epochs 0 = off
    baseline: dict = field(default_factory=dict)  # the 8-bit patch-based figures (host, device, fine-tuned)

    @property
    def trained(self) -> bool:
        return self.p.checkpoint is not None

    @property
    def dev_x(self) -> list[np.ndarray]:
        return self.ev[: self.n_device]

    @property
    def dev_y(self) -> np.ndarray:
        return self.p.eval_y[: self.n_device]


def _finetune_settings(e: DictConfig, seed: int) -> dict:
    d = OmegaConf.to_container(e.finetune, resolve=True) if e.get("finetune") is not None else {"epochs": 0}
    d["seed"] = seed
    return d


def setup(cfg: DictConfig, run_dir: Path) -> Bench:
    """Prepare the model, its 8-bit export and patch plan, the board, the budget and the images."""
    e, mc = cfg.experiment, cfg.method
    p = prepare(cfg, n_eval=int(e.n_eval), n_calib=int(e.n_calib), require_checkpoint=False)
    config8 = PrecisionConfig.uniform(quantize(p).layer_names(), 8, 8)
    qnet = quantize(p, config8)
    model = export(qnet, config8)
    plan = choose_plan(model, mc.split, mc.n, float(mc.max_mac_overhead))
    base = PatchedModel.uniform(model, plan)
    atomic_write_text(run_dir / "patch_plan.txt", describe(plan) + "\n")
    board = board_from(cfg)
    fits_layer, why_not = True, ""
    try:
        check_fit(board.cfg, layer_artifact(model).estimate)
    except DoesNotFitError as err:
        fits_layer, why_not = False, str(err)
    ev = integer_inputs(model, p.eval_x)
    return Bench(
        cfg,
        p,
        qnet,
        model,
        plan,
        base,
        board,
        memory_budget(cfg),
        integer_inputs(model, p.calib[: int(mc.n_calib)]),
        ev,
        min(int(e.n_device), len(ev)),
        plan_patch_arena(base),
        fits_layer,
        why_not,
        _finetune_settings(e, int(cfg.seed)),
    )


def _train(bench: Bench, pm: PatchedModel, config: PrecisionConfig, scope: str, what: str) -> tuple:
    """Fine-tune a copy of the 8-bit QuantNet through ``pm``'s patch-based computation; the integer model of
    ``config`` on the new weights and the training record."""
    s = dict(bench.finetune)
    n_train, n_test = s.pop("n_train"), int(s.pop("n_test"))
    s.pop("baseline", None)
    data = training_split(bench.p.data, n_train, n_test, int(bench.cfg.seed))
    console = Console(stderr=True)
    q = copy_quantnet(bench.qnet8)
    rec = finetune(q, pm, data, s, log=lambda m: console.print(f"[dim]{what}: {m}[/dim]"))
    rec["n_train"] = len(data.train)
    return finetuned_patched(q, bench.base, config, scope), rec


def _measure(bench: Bench, pm: PatchedModel, label: str) -> tuple[Measurement, Artifact]:
    nd = bench.n_device
    art = patch_artifact(pm)
    with progress(f"{bench.p.name} {label} on {bench.board.name}", nd) as advance:
        session = Session(bench.board, workdir(bench.cfg, "quantmcu", bench.board.name, bench.p.name, label))
        m = session.run(art, bench.dev_x, progress=advance, require_exact=False)
    return m, art


def _dev_top1(m: Measurement | None, y: np.ndarray) -> float | None:
    return float(np.mean(m.predictions() == y)) if m is not None else None


def run_baseline(bench: Bench, device: bool) -> dict:
    """The 8-bit patch-based figures: host top-1, and on the board its count and top-1; with fine-tuning on,
    the same for the 8-bit model trained like QuantMCU's (``finetune.baseline``)."""
    e = bench.cfg.experiment
    top1_p8, pred_p8 = _host_top1(bench.base, bench.ev, bench.p.eval_y)
    out: dict = {"top1_patch8_host": top1_p8, "pred_patch8": pred_p8, "measured": {}}
    out["top1_float"] = top1(bench.p.model, bench.p.eval_x, bench.p.eval_y)
    out["top1_fakequant8"] = top1(bench.qnet8, bench.p.eval_x, bench.p.eval_y)
    if device:
        out["measured"]["patch8"], _ = _measure(bench, bench.base, "patch8")
    if int(bench.finetune["epochs"]) > 0 and bool(bench.finetune.get("baseline", True)):
        config8 = PrecisionConfig.uniform(bench.qnet8.layer_names(), 8, 8)
        pm, rec = _train(bench, bench.base, config8, "stage", "8-bit patch-based")
        out["top1_patch8ft_host"], out["pred_patch8ft"] = _host_top1(pm, bench.ev, bench.p.eval_y)
        out["finetune_seconds_patch8"] = rec["train_seconds"]
        if device and bool(e.get("device_baseline_finetuned", True)):
            out["measured"]["patch8ft"], _ = _measure(bench, pm, "patch8ft")
    return out


# -- one QuantMCU configuration --------------------------------------------------------------------------


def run_point(bench: Bench, params: QuantMcuParams, run_dir: Path, label: str = "quantmcu") -> dict:
    """QuantMCU at ``params``, optionally fine-tuned, on the host and the board; its summary (flat keys) and
    tables in ``run_dir``."""
    t0 = time.perf_counter()
    params = QuantMcuParams(**{**params.__dict__, "budget": bench.budget})
    res = quantmcu(bench.base, bench.calib, params)
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
                "patch": range(bench.plan.num_patches),
                "outlier": res.vdpc.outlier,
                "outlier_fraction": res.vdpc.fraction,
                "peak_ratio": res.vdpc.peak_ratio,
            }
        ),
        run_dir / "vdpc.csv",
    )
    write_table(branch_bits_frame(res), run_dir / "branch_bits.csv")
    top1_ptq, pred_ptq = _host_top1(res.patched, bench.ev, bench.p.eval_y)
    qm, rec = res.patched, None
    if int(bench.finetune["epochs"]) > 0:
        qm, rec = _train(bench, res.patched, res.config, params.scope, label)
        top1_qm, pred_qm = _host_top1(qm, bench.ev, bench.p.eval_y)
    else:
        top1_qm, pred_qm = top1_ptq, pred_ptq
    m, art = _measure(bench, qm, label)
    check_fit(bench.board.cfg, art.estimate)  # what the search judged fits is what the build accepts
    print_per_layer(m, title=f"{bench.p.name} QuantMCU patch-based on {m.board} (last image)")
    write_per_layer(m, run_dir)
    write_table(pd.DataFrame(m.per_patch_rows()), run_dir / "per_patch.csv")
    return point_summary(bench, res, qm, m, art, top1_ptq, top1_qm, pred_qm, rec, time.perf_counter() - t0)


def point_summary(
    bench: Bench,
    res: QuantMcuResult,
    qm: PatchedModel,
    m: Measurement,
    art: Artifact,
    top1_ptq: float,
    top1_qm: float,
    pred_qm: np.ndarray,
    rec: dict | None,
    seconds: float,
) -> dict:
    """The flat summary of one QuantMCU configuration against the run's 8-bit baseline."""
    b, f, params = bench.baseline, res.figures, res.vdpc.params
    arena = art.layout
    p8 = b["measured"].get("patch8")
    p8ft = b["measured"].get("patch8ft")
    est = art.estimate
    nd = bench.n_device
    preds = {"quantmcu": (m, pred_qm), "patch8": (p8, b["pred_patch8"])}
    if p8ft is not None:
        preds["patch8ft"] = (p8ft, b["pred_patch8ft"])
    s = {
        "experiment": "quantmcu",
        "board": m.board,
        **count_keys(m),
        "model": bench.p.name,
        "data": str(bench.cfg.data.name),
        "trained": bench.trained,
        "checkpoint": bench.p.checkpoint,
        "split": bench.plan.split,
        "n": bench.plan.n,
        "phi": params["phi"],
        "lambda": res.vdqs.params["lambda"],
        "bits": "/".join(str(x) for x in res.vdqs.params["bits"]),
        "rule": params["rule"],
        "center": params["center"],
        "maps": params["maps"],
        "range_mode": res.config.meta["range_mode"],
        "scope": res.config.meta["scope"],
        "config_hash": res.config.digest(),
        "n_patches": bench.plan.num_patches,
        "n_outlier_patches": f["n_outlier_patches"],
        "outlier_patches": [i for i, o in enumerate(res.vdpc.outlier) if o],
        "n_moves": f["n_moves"],
        "n_rest_moves": f["n_rest_moves"],
        "peak_sram_patch": arena.planner_peak,
        "peak_sram_patch8": bench.arena8.planner_peak,
        "peak_sram_layer": bench.arena8.layer_peak,  # 8-bit layer by layer: what the fit check refused or accepted
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
        # what VDQS judged against the budget: the firmware arena planner's need (arena + results + scratch)
        "sram_need": f["sram_need"],
        "sram_need_8bit": f["sram_need_8bit"],
        "sram_need_artifact": est.arena + est.scratch,
        "memory_budget": bench.budget,
        "fits_layer_by_layer": bench.fits_layer,
        "layer_by_layer_error": bench.why_not or None,
        "macs": patched_macs(qm),
        "macs_redundant": bench.plan.redundant_macs,
        "macs_layer_by_layer": bench.plan.total_macs,
        "bitops": patched_bitops(qm),
        "bitops_patch8": f["bitops_patch8"],
        "bitops_reduction": f["bitops_reduction"],
        "bitops_stage": f["bitops_stage"],
        "bitops_stage_patch8": f["bitops_stage_patch8"],
        "bitops_stage_reduction": f["bitops_stage_reduction"],
        "finetuned": rec is not None,
        "finetune_epochs": int(bench.finetune["epochs"]),
        "finetune_n_train": rec["n_train"] if rec else 0,
        "finetune_seconds": rec["train_seconds"] if rec else 0.0,
        "n_eval": len(bench.ev),
        "top1_float": b["top1_float"],
        "top1_fakequant8": b["top1_fakequant8"],
        "top1_patch8_host": b["top1_patch8_host"],
        "top1_patch8ft_host": b.get("top1_patch8ft_host"),
        "top1_quantmcu_host_ptq": top1_ptq,  # before fine-tuning (equal to top1_quantmcu_host without it)
        "top1_quantmcu_host": top1_qm,
        "top1_change_host": top1_qm - b["top1_patch8_host"],
        "top1_change_host_vs_patch8ft": (
            top1_qm - b["top1_patch8ft_host"] if "top1_patch8ft_host" in b else None
        ),
        "n_device": nd,
        "top1_quantmcu_device": _dev_top1(m, bench.dev_y),
        "top1_patch8_device": _dev_top1(p8, bench.dev_y),
        "top1_patch8ft_device": _dev_top1(p8ft, bench.dev_y),
        "device_equals_reference": bool(
            all(np.array_equal(x.predictions(), pred[:nd]) for x, pred in preds.values() if x is not None)
        ),
        "bit_exact": bool(all(x.bit_exact for x, _ in preds.values() if x is not None)),
        "total_count_patch8": p8.total_count if p8 is not None else None,
        "count_ratio_vs_patch8": m.total_count / p8.total_count if p8 is not None else None,
        "flash_used": m.build.get("flash_used"),
        "sram_used": m.build.get("sram_used"),
        "host_seconds": round(seconds, 3),
        "emulator_seconds": round(m.emulator_seconds, 3),
    }
    if not bench.trained:
        s["note"] = (
            f"no trained checkpoint for {bench.p.name} on {bench.cfg.data.name}: weights are untrained, so "
            "top-1 is meaningless; BitOPs, MACs and memory are real"
        )
    return s


def _method(cfg: DictConfig, overrides: dict | None = None) -> dict:
    """The method settings of a point: ``cfg.method`` with ``overrides`` (one entry of ``experiment.points``)."""
    mc = OmegaConf.to_container(cfg.method, resolve=True)
    over = dict(overrides or {})
    if "lambda" in over:
        over["lam"] = over.pop("lambda")
    unknown = sorted(set(over) - set(mc))
    shared = sorted(set(over) & set(PLAN_KEYS))
    if unknown or shared:
        raise ConfigError(
            f"experiment.points: {unknown or shared} "
            + (
                "are not QuantMCU options"
                if unknown
                else "are shared by every point (set them as method.KEY)"
            )
        )
    return {**mc, **over}


def _params(method: dict) -> QuantMcuParams:
    return QuantMcuParams.from_mapping({k: v for k, v in method.items() if k not in PLAN_KEYS})


def run(cfg: DictConfig, run_dir: Path) -> dict:
    t0 = time.perf_counter()
    params = _params(_method(cfg))
    bench = setup(cfg, run_dir)
    bench.baseline = run_baseline(bench, bool(cfg.experiment.device_baseline))
    summary = run_point(bench, params, run_dir)
    summary["emulator_seconds"] = round(
        summary["emulator_seconds"] + sum(x.emulator_seconds for x in bench.baseline["measured"].values()), 3
    )
    summary["host_seconds"] = round(time.perf_counter() - t0, 3)
    _print_summary(summary)
    return summary


# -- the sweep ---------------------------------------------------------------------------------------------


def point_label(params: QuantMcuParams) -> str:
    """A folder name for a point: its VDPC and VDQS settings."""
    bits = "".join(str(b) for b in params.bits)
    return f"phi{params.phi:g}-lam{params.lam:g}-bits{bits}-{params.maps}-{params.scope}"


SWEEP_COLUMNS = (
    "label",
    "config_hash",
    "method",
    "finetuned",
    "phi",
    "lambda",
    "bits",
    "maps",
    "n_outlier_patches",
    "bitops",
    "bitops_reduction",
    "bitops_stage_reduction",
    "count",
    "unit",
    "count_ratio_vs_patch8",
    "top1_device",
    "n_device",
    "top1_host",
    "top1_host_ptq",
    "n_eval",
    "sram_need",
    "memory_budget",
    "bit_exact",
    "finetune_seconds",
)


def _baseline_rows(bench: Bench) -> list[dict]:
    b = bench.baseline
    rows = []
    for method, host, finetuned in (
        ("patch8", b["top1_patch8_host"], False),
        ("patch8ft", b.get("top1_patch8ft_host"), True),
    ):
        if host is None:
            continue
        m = b["measured"].get(method)
        bitops = patched_bitops(bench.base)
        rows.append(
            {
                "label": method,
                "config_hash": PrecisionConfig.uniform(bench.qnet8.layer_names(), 8, 8).digest(),
                "method": method,
                "finetuned": finetuned,
                "bits": "8",
                "n_outlier_patches": bench.plan.num_patches,
                "bitops": bitops,
                "bitops_reduction": 1.0,
                "bitops_stage_reduction": 1.0,
                "count": m.total_count if m is not None else None,
                "unit": m.unit if m is not None else None,
                "count_ratio_vs_patch8": (
                    m.total_count / b["measured"]["patch8"].total_count
                    if m is not None and "patch8" in b["measured"]
                    else None
                ),
                "top1_device": _dev_top1(m, bench.dev_y),
                "n_device": bench.n_device if m is not None else 0,
                "top1_host": host,
                "top1_host_ptq": b["top1_patch8_host"],
                "n_eval": len(bench.ev),
                "bit_exact": m.bit_exact if m is not None else None,
                "finetune_seconds": b.get("finetune_seconds_patch8", 0.0) if finetuned else 0.0,
            }
        )
    return rows


def _sweep_row(label: str, s: dict) -> dict:
    return {
        "label": label,
        "config_hash": s["config_hash"],
        "method": "quantmcu",
        "finetuned": s["finetuned"],
        "phi": s["phi"],
        "lambda": s["lambda"],
        "bits": s["bits"],
        "maps": s["maps"],
        "n_outlier_patches": s["n_outlier_patches"],
        "bitops": s["bitops"],
        "bitops_reduction": s["bitops_reduction"],
        "bitops_stage_reduction": s["bitops_stage_reduction"],
        "count": s["total_count"],
        "unit": s["unit"],
        "count_ratio_vs_patch8": s["count_ratio_vs_patch8"],
        "top1_device": s["top1_quantmcu_device"],
        "n_device": s["n_device"],
        "top1_host": s["top1_quantmcu_host"],
        "top1_host_ptq": s["top1_quantmcu_host_ptq"],
        "n_eval": s["n_eval"],
        "sram_need": s["sram_need"],
        "memory_budget": s["memory_budget"],
        "bit_exact": s["bit_exact"],
        "finetune_seconds": s["finetune_seconds"],
    }


def sweep_summary(rows: list[dict], comparable_pts: float) -> dict:
    """Best reductions among the QuantMCU points whose top-1 is within ``comparable_pts`` of the 8-bit
    patch-based reference (fine-tuned when it was, so training is equal): host top-1 on ``n_eval`` images and,
    separately, device top-1 on ``n_device``."""
    ref = next((r for r in rows if r["method"] == "patch8ft"), None) or next(
        r for r in rows if r["method"] == "patch8"
    )
    out: dict = {"reference": ref["method"], "comparable_pts": comparable_pts}
    qm = [r for r in rows if r["method"] == "quantmcu"]
    for where in ("host", "device"):
        key = f"top1_{where}"
        if ref.get(key) is None:
            continue
        ok = [r for r in qm if r.get(key) is not None and 100 * (ref[key] - r[key]) <= comparable_pts]
        out[f"reference_top1_{where}"] = ref[key]
        out[f"n_comparable_{where}"] = len(ok)
        if ok:
            best = max(ok, key=lambda r: r["bitops_reduction"])
            out[f"best_bitops_reduction_comparable_{where}"] = best["bitops_reduction"]
            out[f"best_bitops_stage_reduction_comparable_{where}"] = best["bitops_stage_reduction"]
            out[f"best_bitops_point_comparable_{where}"] = best["label"]
            counted = [r for r in ok if r.get("count_ratio_vs_patch8") is not None]
            if counted:
                fast = min(counted, key=lambda r: r["count_ratio_vs_patch8"])
                out[f"best_count_ratio_comparable_{where}"] = fast["count_ratio_vs_patch8"]
                out[f"best_count_point_comparable_{where}"] = fast["label"]
    if qm:
        out["max_bitops_reduction"] = max(r["bitops_reduction"] for r in qm)
        out["max_bitops_stage_reduction"] = max(r["bitops_stage_reduction"] for r in qm)
        counted = [r["count_ratio_vs_patch8"] for r in qm if r.get("count_ratio_vs_patch8") is not None]
        if counted:
            out["min_count_ratio"] = min(counted)
    out["paper_bitops_reduction"] = PAPER_BITOPS_REDUCTION
    return out


def plot_sweep(rows: list[dict], path: Path, title: str) -> Path:
    """Left: BitOPs reduction vs host top-1 (before and after fine-tuning). Right: measured count relative to
    8-bit patch-based vs device top-1."""
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.6))
    qm = [r for r in rows if r["method"] == "quantmcu"]
    for r in qm:
        a.annotate(
            r["label"].replace("-stage", ""),
            (r["bitops_reduction"], 100 * r["top1_host"]),
            fontsize=6,
            xytext=(3, 3),
            textcoords="offset points",
        )
        if r["top1_host_ptq"] != r["top1_host"]:
            a.plot(
                [r["bitops_reduction"]] * 2,
                [100 * r["top1_host_ptq"], 100 * r["top1_host"]],
                c="gray",
                lw=0.6,
            )
    a.scatter([r["bitops_reduction"] for r in qm], [100 * r["top1_host_ptq"] for r in qm], marker="x", c="gray",
              label="QuantMCU, no fine-tuning")  # fmt: skip
    a.scatter([r["bitops_reduction"] for r in qm], [100 * r["top1_host"] for r in qm], c="tab:blue",
              label="QuantMCU, fine-tuned" if any(r["finetuned"] for r in qm) else "QuantMCU")  # fmt: skip
    for r in rows:
        if r["method"] in ("patch8", "patch8ft"):
            lab = "8-bit patch-based" + (", fine-tuned" if r["finetuned"] else "")
            a.scatter([1.0], [100 * r["top1_host"]], marker="*" if r["finetuned"] else "P", s=120, c="k",
                      label=lab)  # fmt: skip
    a.axvline(PAPER_BITOPS_REDUCTION, ls="--", c="gray", lw=0.8, label="paper: 2.2x")
    a.set_xlabel("network BitOPs reduction vs 8-bit patch-based (x)")
    n_eval = rows[0]["n_eval"]
    a.set_ylabel(f"top-1 % (host integer reference, {n_eval} test images)")
    a.legend(fontsize=7)
    dev = [r for r in rows if r.get("top1_device") is not None and r.get("count_ratio_vs_patch8") is not None]
    for r in dev:
        base = r["method"] != "quantmcu"
        b.scatter(r["count_ratio_vs_patch8"], 100 * r["top1_device"], c="k" if base else "tab:blue",
                  marker="*" if base else "o", s=100 if base else 30)  # fmt: skip
        b.annotate(r["label"].replace("-stage", ""), (r["count_ratio_vs_patch8"], 100 * r["top1_device"]),
                   fontsize=6, xytext=(3, 3), textcoords="offset points")  # fmt: skip
    if dev:
        unit, nd = dev[0]["unit"], dev[0]["n_device"]
        b.axvline(1.0, ls=":", c="gray", lw=0.8)
        b.set_xlabel(f"measured {unit} per inference / 8-bit patch-based")
        b.set_ylabel(f"top-1 % (device, {nd} test images)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save(fig, path)[0]


def run_sweep(cfg: DictConfig, run_dir: Path) -> dict:
    """``experiment=quantmcu-sweep``: every point of ``experiment.points`` against one 8-bit baseline."""
    t0 = time.perf_counter()
    e = cfg.experiment
    points = OmegaConf.to_container(e.points, resolve=True)
    if not points:
        raise ConfigError("experiment.points is empty: give a list of method overrides, e.g. [{phi: 3}]")
    methods = [_method(cfg, dict(pt)) for pt in points]
    plist = [_params(m) for m in methods]
    labels = [point_label(pp) for pp in plist]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"experiment.points repeat a setting: {labels}")
    bench = setup(cfg, run_dir)
    bench.baseline = run_baseline(bench, bool(e.device_baseline))
    rows = _baseline_rows(bench)
    summaries = {}
    for label, pp, method in zip(labels, plist, methods):
        d = run_dir / "points" / label
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_text(d / "config.yaml", OmegaConf.to_yaml({"method": method}))
        s = run_point(bench, pp, d, label)
        summaries[label] = s
        write_summary(d, s)
        rows.append(_sweep_row(label, s))
        write_table(pd.DataFrame(rows)[list(SWEEP_COLUMNS)], run_dir / "sweep.csv")  # kept up to date
    plot_sweep(
        rows,
        run_dir / "sweep.png",
        f"QuantMCU vs 8-bit patch-based inference: {bench.p.name} on {cfg.data.name}, "
        f"{bench.plan.n}x{bench.plan.n} patches up to {bench.plan.split}, {bench.board.name}"
        + (f", fine-tuned {bench.finetune['epochs']} epoch(s)" if int(bench.finetune["epochs"]) > 0 else ""),
    )
    first = next(iter(summaries.values()))
    measured = [m for m in bench.baseline["measured"].values()]
    summary = {
        "experiment": "quantmcu-sweep",
        "board": first["board"],
        "timer": first["timer"],
        "unit": first["unit"],
        "model": bench.p.name,
        "data": str(cfg.data.name),
        "trained": bench.trained,
        "split": bench.plan.split,
        "n": bench.plan.n,
        "n_points": len(summaries),
        "points": labels,
        "n_eval": len(bench.ev),
        "n_device": bench.n_device,
        "finetune_epochs": int(bench.finetune["epochs"]),
        "finetune_n_train": first["finetune_n_train"],
        "top1_float": first["top1_float"],
        "top1_patch8_host": first["top1_patch8_host"],
        "top1_patch8ft_host": first["top1_patch8ft_host"],
        "top1_patch8_device": first["top1_patch8_device"],
        "top1_patch8ft_device": first["top1_patch8ft_device"],
        "total_count_patch8": first["total_count_patch8"],
        "memory_budget": bench.budget,
        **sweep_summary(rows, float(e.comparable_pts)),
        "bit_exact": bool(all(s["bit_exact"] for s in summaries.values())),
        "device_equals_reference": bool(all(s["device_equals_reference"] for s in summaries.values())),
        "emulator_seconds": round(
            sum(s["emulator_seconds"] for s in summaries.values())
            + sum(m.emulator_seconds for m in measured),
            3,
        ),
        "host_seconds": round(time.perf_counter() - t0, 3),
    }
    for label, s in summaries.items():
        summary[f"top1_device_{label}"] = s["top1_quantmcu_device"]
        summary[f"top1_host_{label}"] = s["top1_quantmcu_host"]
        summary[f"bitops_reduction_{label}"] = s["bitops_reduction"]
        summary[f"count_ratio_{label}"] = s["count_ratio_vs_patch8"]
    _print_sweep(rows)
    return summary


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f} %"


def _print_sweep(rows: list[dict]) -> None:
    t = Table(title="QuantMCU sweep vs 8-bit patch-based")
    for c in ("label", "BitOPs red.", "count ratio", "top-1 device", "top-1 host", "host no FT"):
        t.add_column(c, justify="left" if c == "label" else "right")
    for r in rows:
        ratio = r.get("count_ratio_vs_patch8")
        t.add_row(
            r["label"],
            f"{r['bitops_reduction']:.2f}x",
            "-" if ratio is None else f"{ratio:.3f}",
            _pct(r.get("top1_device")),
            _pct(r["top1_host"]),
            _pct(r["top1_host_ptq"]),
        )
    c = Console()
    if not c.is_terminal:
        c = Console(width=140)
    c.print(t)


def _print_summary(s: dict) -> None:
    t = Table(title=f"QuantMCU vs 8-bit patch-based: {s['model']} on {s['board']}")
    t.add_column("")
    t.add_column("8-bit patch-based", justify="right")
    t.add_column("QuantMCU", justify="right")

    t.add_row("BitOPs", f"{s['bitops_patch8']:,}", f"{s['bitops']:,} ({s['bitops_reduction']:.2f}x fewer)")
    t.add_row(
        "BitOPs, patch stage",
        f"{s['bitops_stage_patch8']:,}",
        f"{s['bitops_stage']:,} ({s['bitops_stage_reduction']:.2f}x fewer)",
    )
    t.add_row("peak SRAM (planner)", f"{s['peak_sram_patch8']:,} B", f"{s['peak_sram_patch']:,} B")
    t.add_row("top-1 host", _pct(s["top1_patch8_host"]), _pct(s["top1_quantmcu_host"]))
    if s["finetuned"]:
        t.add_row("top-1 host, fine-tuned 8-bit / before fine-tuning", _pct(s["top1_patch8ft_host"]),
                  _pct(s["top1_quantmcu_host_ptq"]))  # fmt: skip
    t.add_row("top-1 device", _pct(s["top1_patch8_device"]), _pct(s["top1_quantmcu_device"]))
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
        f"(arena written {s['peak_arena_device'] or 0:,} B vs planner {s['peak_sram_patch']:,} B); SRAM need "
        f"{s['sram_need']:,} B of a budget of {s['memory_budget'] or 0:,} B; 8-bit layer by layer "
        f"{s['peak_sram_layer']:,} B ({'fits' if s['fits_layer_by_layer'] else 'does NOT fit'})"
    )
