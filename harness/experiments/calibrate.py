"""``tinyhil calibrate board=...``: fit the cycle model's parameters from microbenchmarks.

On an emulated board (``timer=qemu-cycles``, with its timing profile) the fit must recover the profile's own costs:
``max_param_error_pct`` over every parameter the benchmarks identify. On a real board (DWT cycles) the same
benchmarks run twice: on the board, and on the emulated twin of its core under the board's timing profile, which
gives every benchmark's event counts; the fit of the board's cycles says how far the profile is from the silicon
and is written as a fitted profile (``fitted-<profile>.yaml``) beside the summary.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from harness.boards import load_board_config, make_board
from harness.errors import ConfigError
from harness.experiments.common import workdir
from harness.results.io import write_table
from harness.timing.calibrate import (
    CALIBRATION_BENCHES,
    fit,
    param_error_pct,
    parameter_names,
    profile_parameters,
)
from harness.timing.microbench import run_benches
from harness.timing.model import CORE_EVENTS
from harness.timing.profile import timing_config_dir

#: The emulated board that runs a core's benchmarks when the board to calibrate is real silicon.
TWIN_BOARD = {"cortex-m4": "qemu-mps2-an386", "cortex-m7": "qemu-mps2-an500"}
#: The timing profile of each real board (its configs/board yaml names no profile).
BOARD_PROFILE = {"nucleo-h743zi": "stm32h743", "nano33ble": "nrf52840"}


def _timing(cfg: DictConfig):
    t = OmegaConf.select(cfg, "timing")
    return t if t is None or isinstance(t, str) else OmegaConf.to_container(t, resolve=True)


def _emulator_counts(board_name: str, timing, wd: Path):
    """Event counts (rows) and plugin cycles of every calibration benchmark on an emulated board."""

    board = make_board(board_name, timer="qemu-cycles", timing=timing)
    board.cycles.events = True  # type: ignore[attr-defined]
    res = run_benches(board, CALIBRATION_BENCHES, wd)
    n = len(parameter_names())
    events = np.array([r.events[:n] for r in res], dtype=float)  # type: ignore[index]
    cycles = np.array([r.cycles for r in res], dtype=float)
    return board, res, events, cycles


def run(cfg: DictConfig, run_dir: Path) -> dict:
    board_cfg = load_board_config(OmegaConf.to_container(cfg.board, resolve=True))
    timer = OmegaConf.select(cfg, "timer")
    timing = _timing(cfg)
    names = parameter_names()
    if board_cfg.emulated:
        if timer != "qemu-cycles":
            raise ConfigError(f"calibrate on the emulated board '{board_cfg.name}' fits the cycle model: add "
                              "timer=qemu-cycles (and timing=<profile> for another profile than the board's own)")
        board, res, events, counts = _emulator_counts(board_cfg.name, timing, workdir(cfg, "calibrate",
                                                                                      board_cfg.name))
        silicon = False
    else:
        profile_name = timing if isinstance(timing, str) else BOARD_PROFILE.get(board_cfg.name)
        if profile_name is None and timing is None:
            raise ConfigError(f"board '{board_cfg.name}' has no timing profile to compare with: name one (timing=...)")
        twin = TWIN_BOARD.get(board_cfg.core)
        if twin is None:
            raise ConfigError(f"no emulated twin for core {board_cfg.core}")
        board, res, events, _ = _emulator_counts(twin, timing or profile_name, workdir(cfg, "calibrate", twin))
        real = make_board(board_cfg)
        real_res = run_benches(real, CALIBRATION_BENCHES, workdir(cfg, "calibrate", board_cfg.name))
        counts = np.array([real_board_cycles(board_cfg, r.ticks) for r in real_res], dtype=float)
        silicon = True
    counter = board.cycles  # type: ignore[attr-defined]
    truth = profile_parameters(counter.core, counter.profile)
    f = fit(events, counts, names, intercept=silicon)
    err = param_error_pct({k: v for k, v in f.values.items() if k in truth}, truth)
    model_cycles = events @ np.array([truth[n] for n in names])
    rows = [{"bench": r.name, "count": float(c), "model_cycles": float(m),
             "deviation_pct": float((m - c) / c * 100.0) if c else 0.0, "instructions": r.instructions}
            for r, c, m in zip(res, counts, model_cycles)]
    write_table(pd.DataFrame(rows), run_dir / "benches.csv")
    params = [{"parameter": k, "profile": truth.get(k, 0.0), "fitted": v,
               "error_pct": err.get(k, float("nan"))} for k, v in f.values.items()]
    write_table(pd.DataFrame(params), run_dir / "parameters.csv")

    t = Table(title=f"calibrate {board_cfg.name}: {counter.core.name} under timing={counter.profile.name}"
                    f" ({'DWT cycles of the board' if silicon else 'the emulator against its own profile'})")
    for col in ("parameter", "profile", "fitted", "error %"):
        t.add_column(col, justify="left" if col == "parameter" else "right")
    for p in params:
        t.add_row(p["parameter"], f"{p['profile']:.3f}", f"{p['fitted']:.3f}", f"{p['error_pct']:.3f}")
    Console(width=120).print(t)
    summary = {
        "board": board_cfg.name, "timer": "dwt-cycles" if silicon else "qemu-cycles", "unit": "cycles",
        "core": counter.core.name, "timing_profile": counter.profile.name,
        "timing_model_version": counter.version, "n_benches": len(res), "rank": f.rank,
        "max_param_error_pct": max(err.values()) if err else float("nan"),
        "residual_rms_cycles": f.residual_rms, "unidentified": f.unidentified, "unexercised": f.unexercised,
        "fitted": f.values, "profile": {k: truth[k] for k in f.values if k in truth},
    }
    if silicon:
        dev = np.abs((model_cycles - counts) / np.maximum(counts, 1.0)) * 100.0
        summary["profile_median_abs_deviation_pct"] = float(np.median(dev))
        summary["profile_max_abs_deviation_pct"] = float(np.max(dev))
        summary["fitted_profile"] = str(write_fitted_profile(counter, f.values, run_dir))
    return summary


def real_board_cycles(board_cfg, ticks: int) -> float:
    """A real board's layer count in cycles (its DWT timer)."""
    if board_cfg.timer.unit != "cycles":
        raise ConfigError(f"board '{board_cfg.name}' counts {board_cfg.timer.unit}, not cycles: calibrate needs "
                          "a cycle counter (timer.source dwt-cycles)")
    return board_cfg.timer.to_count(ticks)


def write_fitted_profile(counter, values: dict, run_dir: Path) -> Path:
    """The profile with its memory costs replaced by the fitted ones, and the fitted core costs beside it."""

    src = yaml.safe_load((timing_config_dir() / f"{counter.profile.name}.yaml").read_text())
    src["name"] = f"{counter.profile.name}-fitted"
    src["description"] = f"fitted by tinyhil calibrate from {counter.profile.name}"
    for key, v in values.items():
        if "." in key:
            role, event = key.split(".", 1)
            mem = src["placement"][role]
            src["memories"].setdefault(mem, {})[event] = max(0, round(v))
    src["fitted_core_costs"] = {k: round(v, 3) for k, v in values.items() if k in CORE_EVENTS}
    out = run_dir / f"fitted-{counter.profile.name}.yaml"
    out.write_text(yaml.safe_dump(src, sort_keys=False))
    return out
