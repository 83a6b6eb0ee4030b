"""``tinyhil bench experiment=reliability``: every hostile serial peer must end in a clear error within its deadline.

Runs the catalogue of :mod:`harness.transport.hostile` (real TCP peers on 127.0.0.1 that flood, stall, die
mid-line or send inconsistent replies) against the real link and protocol client, and, on a QEMU board, two real
firmware failures: the emulator killed in the middle of a long reply, and the emulator stopped (SIGSTOP) while a
command waits. A scenario passes when it ends in the expected error class, naming the expected line or value,
within ``deadline + tolerance_s``. Also measures the link's read throughput.

Outputs in the run folder: ``reliability.csv`` (one row per scenario) and the summary (``scenarios``, ``passed``,
``max_overshoot_s``, ``failed``, ``link_throughput_kB_per_s``); a table on the console. Any failed scenario makes
the command fail (after the summary is written).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from harness.codegen.artifact import layer_artifact
from harness.errors import ConfigError, DeviceError, TinyHilError
from harness.experiments.common import board_from, workdir
from harness.measure.session import Session
from harness.results.io import write_summary, write_table
from harness.synth.random_model import random_input, random_layer_model
from harness.transport.hostile import ScenarioResult, link_throughput, run_scenario, scenarios


def select(names: list[str]) -> list:
    """The catalogue's scenarios named in ``names`` (all when empty); ConfigError for an unknown name."""
    catalogue = scenarios()
    if not names:
        return catalogue
    known = {s.name: s for s in catalogue}
    missing = [n for n in names if n not in known]
    if missing:
        raise ConfigError(f"unknown reliability scenarios {missing}; known: {', '.join(known)}")
    return [known[n] for n in names]


def _judge(name: str, what: str, deadline: float, t0: float, err: BaseException | None, expect: type,
           mentions: str) -> ScenarioResult:  # fmt: skip
    elapsed = time.monotonic() - t0
    msg = str(err) if err is not None else ""
    why = ""
    if err is None:
        why = "returned without an error"
    elif not isinstance(err, expect):
        why = f"{type(err).__name__} instead of {expect.__name__}"
    elif mentions not in msg:
        why = f"the message does not name {mentions!r}"
    return ScenarioResult(name, what, deadline, round(elapsed, 3), type(err).__name__ if err else "", msg,
                          not why, why)  # fmt: skip


def _qemu_model(sram_bytes: int):
    """A one-layer model whose input tensor is long enough that dumping it over the UART takes a while."""
    side = max(8, math.isqrt(min(256 * 1024, sram_bytes // 8) // 16))
    return random_layer_model("pointwise", h=side, w=side, cin=16, cout=16, rng=0)


def qemu_scenarios(board, workdir: Path, deadline: float = 10.0) -> list[ScenarioResult]:
    """Real firmware in real QEMU: killed mid-reply, and stopped while a command waits."""
    model = _qemu_model(board.cfg.sram.size)
    art = layer_artifact(model)
    Session(board, workdir).deploy(art)
    x = art.input_bytes(random_input(model.tensors[model.input], 0))
    results = []

    # 1. QEMU killed while it dumps a tensor as one long hex line.
    dut = board.open_dut(timeout=deadline)
    try:
        dut.load_input(x)
        index = dut.model_info().input_index
        pid = board.driver.proc.pid
        killer = threading.Timer(0.3, lambda: os.kill(pid, signal.SIGKILL))
        t0 = time.monotonic()
        killer.start()
        err: BaseException | None = None
        try:
            dut.tensor(index)
        except Exception as e:  # noqa: BLE001 - judged below
            err = e
        killer.join()
        results.append(_judge("qemu-killed-mid-reply", f"QEMU killed (SIGKILL) 0.3 s into a {2 * len(x)}-char "
                               "reply line", deadline, t0, err, DeviceError, "closed by the board"))  # fmt: skip
    finally:
        board.close()

    # 2. QEMU stopped (SIGSTOP) while a command waits for its reply.
    dut = board.open_dut(timeout=2.0)
    pid = board.driver.proc.pid
    try:
        os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        err = None
        try:
            dut.model_info()
        except Exception as e:  # noqa: BLE001
            err = e
        results.append(_judge("qemu-stopped", "QEMU stopped (SIGSTOP) before it answers 'model'", 2.0, t0, err,
                              DeviceError, "no reply"))  # fmt: skip
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        board.close()
    return results


def _in_time(r: ScenarioResult, tolerance: float) -> ScenarioResult:
    """``r``, failed if it ended more than ``tolerance`` seconds after its deadline."""
    if not r.passed or r.elapsed_s <= r.deadline_s + tolerance:
        return r
    late = f"ended {r.elapsed_s - r.deadline_s:.3f} s after its deadline"
    return ScenarioResult(r.name, r.what, r.deadline_s, r.elapsed_s, r.error, r.message, False, late)


def print_table(results: list[ScenarioResult], tolerance: float, title: str) -> None:
    t = Table(title=title)
    for col, just in [("scenario", "left"), ("hostile behaviour", "left"), ("deadline s", "right"),
                      ("ended after s", "right"), ("error", "left"), ("verdict", "left")]:  # fmt: skip
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in results:
        verdict = "[green]clear error in time[/green]" if r.passed else f"[red]FAIL: {r.why}[/red]"
        t.add_row(r.name, r.what, f"{r.deadline_s:g}", f"{r.elapsed_s:.3f}", r.error or "-", verdict)
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(t)
    console.print(f"a scenario passes when it ends in the expected error, naming the offending line or value, "
                  f"within its deadline + {tolerance:g} s")  # fmt: skip


def run(cfg: DictConfig, run_dir: Path) -> dict:
    t0 = time.perf_counter()
    e = cfg.experiment
    tolerance = float(e.tolerance_s)
    chosen = select([str(n) for n in e.scenarios])
    board = None
    if bool(e.qemu):
        board = board_from(cfg)
        if not board.cfg.emulated:
            raise ConfigError(
                f"experiment.qemu=true needs a QEMU board, not {board.name}; set experiment.qemu=false"
            )
    results = [_in_time(run_scenario(s), tolerance) for s in chosen]
    if board is not None:
        wdir = workdir(cfg, "bench_reliability", board.name)
        results += [_in_time(r, tolerance) for r in qemu_scenarios(board, wdir)]
    tp = link_throughput(int(e.throughput_lines))

    df = pd.DataFrame(
        [{**r.__dict__, "overshoot_s": r.overshoot_s, "message": r.message[:300]} for r in results]
    )
    write_table(df, Path(run_dir) / "reliability.csv")
    print_table(results, tolerance, f"reliability: {len(results)} hostile scenarios")
    failed = [r.name for r in results if not r.passed]
    summary = {
        "experiment": "reliability",
        "board": board.name if board is not None else "",
        "scenarios": len(results),
        "passed": len(results) - len(failed),
        "failed": failed,
        "max_overshoot_s": round(max((r.overshoot_s for r in results), default=0.0), 3),
        "max_elapsed_s": round(max((r.elapsed_s for r in results), default=0.0), 3),
        "tolerance_s": tolerance,
        "link_throughput_kB_per_s": tp["kB_per_s"],
        "host_seconds": round(time.perf_counter() - t0, 3),
    }
    if failed:
        write_summary(run_dir, {**summary, "run": Path(run_dir).name})
        raise TinyHilError(
            f"reliability: {len(failed)} of {len(results)} scenarios did not end in a clear error within their "
            f"deadline: {', '.join(failed)} (see {Path(run_dir) / 'reliability.csv'})"
        )
    return summary
