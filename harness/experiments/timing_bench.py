"""``tinyhil bench experiment=timing``: how far the cycle model can be trusted, and what it costs.

1. Documented sequences: the Cortex-M4 TRM's cycle counts (single instructions, load/store pairings) must come out
   exactly (``trm_exact``); the Cortex-M7 model's dual-issue rules are checked the same way (``m7_rules_ok``).
2. llvm-mca cross-check: the hottest one-block loops of the kernels, run on the closed loop's network (MobileNetV2
   w0.35, 96x96x3, int8) and a mixed 2/4/8-bit network, each on both cores at zero wait states; the model's cycles
   per iteration against llvm-mca's steady state, per kernel loop, with the tolerance stated in the config.
3. Cost: CPU time of QEMU per inference of the closed loop's network with the plugin against plain ``-icount``
   (``slowdown_vs_icount``: the worst of the default board's profile and the M7 under ``timing=stm32h743``).
Also reported: the model's M7/M4 cycle ratio on that network beside the ratio of published MLPerf Tiny results.
"""

from __future__ import annotations

import glob
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from harness.boards import make_board
from harness.codegen.artifact import layer_artifact
from harness.experiments.common import workdir
from harness.experiments.smoke import smoke_model
from harness.measure.session import Session
from harness.results.io import write_table
from harness.synth.random_model import random_input, random_network
from harness.timing.mca import loops, mca_cycles_per_iteration, read_hot
from harness.timing.trm import M4_CASES, M7_CASES, run_cases

KERNEL_SOURCES = Path(__file__).resolve().parents[2] / "firmware" / "runtime" / "kernels"
#: MLPerf Tiny v1.2, X-CUBE-AI 9.0 (docs/timing-facts): ms on NUCLEO-L4R5ZI (Cortex-M4, 120 MHz) and
#: NUCLEO-H7A3ZI-Q (Cortex-M7, 280 MHz) for KWS, VWW, IC, AD. Cycle ratio M7/M4 = (ms7 * 280) / (ms4 * 120).
MLPERF_TINY_MS = {"kws": (43.2, 11.3), "vww": (88.9, 23.8), "ic": (165.1, 40.8), "ad": (5.26, 1.23)}


def _cpu_seconds(pid: int) -> float | None:
    files = glob.glob(f"/proc/{pid}/task/*/schedstat")
    if not files:
        return None
    return sum(int(Path(f).read_text().split()[0]) for f in files) / 1e9


def _closed_loop_network(cfg: DictConfig):
    e = cfg.experiment
    mcfg = OmegaConf.load(Path(__file__).resolve().parents[2] / "configs" / "model" / f"{e.network}.yaml")
    sub = OmegaConf.create({"seed": int(cfg.seed), "experiment": {
        "source": "torch", "model": mcfg, "n_inputs": 1, "resolution": int(mcfg.resolution),
        "channels": int(mcfg.in_channels), "classes": int(mcfg.num_classes)}})
    return smoke_model(sub)


def _mixed_network(cfg: DictConfig):
    model = random_network(int(cfg.seed), input_shape=(32, 32, 3), width=16, classes=10, bits=(2, 4, 8),
                           name="mixed")
    return model, [random_input(model.tensors[model.input], np.random.default_rng(int(cfg.seed)))]


def _session(model, x, board_name: str, timer, timing, wd: Path, *, hot: bool, reps: int, n: int):
    """Deploy ``model``, warm up, then ``reps`` times ``infer n``: QEMU CPU seconds per inference (the minimum:
    the host is shared), cycles/instructions per inference, and the plugin's block dump."""

    board = make_board(board_name, timer=timer, timing=timing)
    cycles = board.cycles
    hot_path = wd / f"hot-{board_name}-{timing or 'default'}.txt"
    if cycles is not None and hot:
        cycles.hot_path = hot_path
    art = layer_artifact(model)
    Session(board, wd / f"{board_name}-{timer or 'icount'}-{timing or 'default'}").deploy(art)
    dut = board.open_dut()
    try:
        dut.set_crc(False)
        dut.load_input(art.input_bytes(x))
        if cycles is not None:
            cycles.begin()
        dut.infer(1, 0)
        counts = cycles.collect(len(model.layers)) if cycles is not None else None
        pid = board.driver.proc.pid  # type: ignore[attr-defined]
        per, clock = [], "QEMU CPU time"
        for _ in range(reps):
            c0, t0 = _cpu_seconds(pid), time.perf_counter()
            dut.infer(n, 0)
            c1, t1 = _cpu_seconds(pid), time.perf_counter()
            if c0 is None or c1 is None:
                c0, c1, clock = t0, t1, "wall time"
            per.append((c1 - c0) / n)
        dut.exit(0)
        board.wait_exit(30)  # the plugin writes its block dump when QEMU exits
    finally:
        board.close()
    out: dict = {"seconds_per_inference": float(min(per)), "clock": clock}
    if counts is not None:
        out["cycles"] = float(sum(c.cycles for c in counts))
        out["instructions"] = float(sum(c.instructions for c in counts))
    return out, (hot_path if cycles is not None and hot else None), board


def _mca_rows(hot_path: Path, board, network: str, cpu: str, top: int) -> list[dict]:
    elf = Path(board.image)
    kernels = [p.stem for p in KERNEL_SOURCES.glob("*.c")]
    refill = float(board.cycles.core.costs.get("refill_direct", 0.0)) if cpu == "cortex-m4" else 0.0
    rows = []
    for lp in loops(read_hot(hot_path), elf, cpu, map_file=elf.with_suffix(".map"), objects=kernels, top=top):
        mca = mca_cycles_per_iteration(lp.asm, cpu)
        rows.append({"core": cpu, "network": network, "kernel": lp.function, "source": lp.source,
                     "address": f"{lp.vaddr:#x}", "instructions": lp.n, "iterations": lp.execs,
                     "model_cycles": lp.model_static, "model_cycles_with_refill": lp.model_static + refill,
                     "mca_cycles": round(mca, 3), "error_pct": round((lp.model_static - mca) / mca * 100.0, 2)})
    return rows


def run(cfg: DictConfig, run_dir: Path) -> dict:
    e = cfg.experiment
    wd = workdir(cfg, "bench-timing")
    console = Console(width=140)
    t0 = time.perf_counter()

    # 1. documented sequences
    m4 = run_cases(make_board("qemu-mps2-an386", timer="qemu-cycles"), M4_CASES, wd / "trm-m4")
    m7 = run_cases(make_board("qemu-mps2-an500", timer="qemu-cycles"), M7_CASES, wd / "trm-m7")
    trm = pd.DataFrame([{"core": core, "case": r.name, "model": r.model, "expected": r.expected,
                         "expected_range": None if r.expected_range is None else
                         "{:g}-{:g}".format(*r.expected_range), "ok": r.ok, "source": r.source}
                        for core, rs in (("cortex-m4", m4), ("cortex-m7", m7)) for r in rs])
    write_table(trm, run_dir / "sequences.csv")
    t = Table(title="documented sequences (cycles; M4: TRM, M7: model rules)")
    for col in ("core", "case", "model", "expected", "ok"):
        t.add_column(col)
    for r in trm.itertuples():
        t.add_row(r.core, r.case, f"{r.model:g}", f"{r.expected:g}" if r.expected == r.expected and
                  r.expected is not None else str(r.expected_range), "yes" if r.ok else "NO")
    console.print(t)

    # 2 + 3. workloads
    net, net_inputs = _closed_loop_network(cfg)
    mixed, mixed_inputs = _mixed_network(cfg)
    reps, n = int(e.reps), int(e.inferences)
    sessions = {}
    mca_rows: list[dict] = []
    plan = [  # (key, board, timer, timing, hot)
        ("an386-icount", "qemu-mps2-an386", None, None, False),
        ("an386-cycles", "qemu-mps2-an386", "qemu-cycles", None, True),
        ("an500-icount", "qemu-mps2-an500", None, None, False),
        ("an500-cycles", "qemu-mps2-an500", "qemu-cycles", None, True),
        ("an500-cycles-stm32h743", "qemu-mps2-an500", "qemu-cycles", "stm32h743", False),
    ]
    for key, bname, timer, timing, hot in plan:
        res, hot_path, board = _session(net, net_inputs[0], bname, timer, timing, wd / key, hot=hot, reps=reps, n=n)
        sessions[key] = res
        if hot_path is not None:
            cpu = "cortex-m4" if "an386" in bname else "cortex-m7"
            mca_rows += _mca_rows(hot_path, board, str(e.network), cpu, int(e.top_loops))
            _, mhot, mboard = _session(mixed, mixed_inputs[0], bname, timer, timing, wd / f"{key}-mixed",
                                       hot=True, reps=1, n=1)
            mca_rows += _mca_rows(mhot, mboard, "mixed-2/4/8", cpu, int(e.top_loops))
    mca = pd.DataFrame(mca_rows)
    tol = {"cortex-m4": float(e.mca_tolerance_pct.m4), "cortex-m7": float(e.mca_tolerance_pct.m7)}
    tol_keys = {"m4": tol["cortex-m4"], "m7": tol["cortex-m7"]}
    if not mca.empty:
        mca = mca.drop_duplicates(subset=["core", "address", "instructions"]).reset_index(drop=True)
        mca["within_tolerance"] = [abs(r.error_pct) <= tol[r.core] for r in mca.itertuples()]
    write_table(mca, run_dir / "mca.csv")
    t = Table(title="kernel inner loops: model vs llvm-mca steady state (cycles per iteration)")
    for col in ("core", "network", "kernel", "source", "insns", "model", "model+refill", "llvm-mca", "error %", "ok"):
        t.add_column(col)
    for r in mca.itertuples():
        t.add_row(r.core, r.network, r.kernel, r.source, str(r.instructions), f"{r.model_cycles:g}",
                  f"{r.model_cycles_with_refill:g}", f"{r.mca_cycles:g}", f"{r.error_pct:+.1f}",
                  "yes" if r.within_tolerance else "NO")
    console.print(t)

    slow = {  # plugin vs plain -icount, same board and image
        "an386": sessions["an386-cycles"]["seconds_per_inference"] / sessions["an386-icount"]["seconds_per_inference"],
        "an500": sessions["an500-cycles"]["seconds_per_inference"] / sessions["an500-icount"]["seconds_per_inference"],
        "an500_stm32h743": sessions["an500-cycles-stm32h743"]["seconds_per_inference"]
        / sessions["an500-icount"]["seconds_per_inference"],
    }
    write_table(pd.DataFrame([{"session": k, **v} for k, v in sessions.items()]), run_dir / "sessions.csv")
    for k, v in slow.items():
        console.print(f"slowdown vs -icount, {k}: {v:.2f}x")
    ratio = sessions["an500-cycles"]["cycles"] / sessions["an386-cycles"]["cycles"]
    published = {k: (m7 * 280.0) / (m4 * 120.0) for k, (m4, m7) in MLPERF_TINY_MS.items()}
    console.print(f"M7/M4 cycles on {e.network}: {ratio:.3f} (MLPerf Tiny v1.2 X-CUBE-AI, L4R5 vs H7A3: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in published.items()) + ")")
    by_core = {c: mca[mca.core == c] for c in ("cortex-m4", "cortex-m7")} if not mca.empty else {}
    return {
        "experiment": "timing",
        "trm_cases": len(m4),
        "trm_exact": bool(all(r.ok for r in m4)),
        "trm_exact_cases": sum(1 for r in m4 if r.exact),
        "trm_range_cases": sum(1 for r in m4 if not r.exact),
        "m7_rule_cases": len(m7),
        "m7_rules_ok": bool(all(r.ok for r in m7)),
        "mca_loops": len(mca),
        "mca_median_abs_error_pct": float(mca.error_pct.abs().median()) if not mca.empty else float("nan"),
        "mca_median_abs_error_pct_m4": float(by_core["cortex-m4"].error_pct.abs().median()) if by_core else None,
        "mca_median_abs_error_pct_m7": float(by_core["cortex-m7"].error_pct.abs().median()) if by_core else None,
        "mca_tolerance_pct": tol_keys,
        "mca_within_tolerance": int(mca.within_tolerance.sum()) if not mca.empty else 0,
        "slowdown_vs_icount": float(max(slow.values())),
        "slowdown": slow,
        "slowdown_measure": "QEMU CPU seconds per inference (minimum of the repetitions), plugin vs plain -icount",
        "network": str(e.network),
        "cycles_per_inference": {k.replace("-", "_"): v["cycles"] for k, v in sessions.items() if "cycles" in v},
        "instructions_per_inference": {k.replace("-", "_"): v["instructions"] for k, v in sessions.items()
                                       if "cycles" in v},
        "m7_m4_cycle_ratio": float(ratio),
        "mlperf_tiny_m7_m4_cycle_ratio": published,
        "host_seconds": round(time.perf_counter() - t0, 1),
    }
