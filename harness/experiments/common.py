"""Helpers every experiment shares: the board, the work folder, progress bars."""

from __future__ import annotations

import contextlib
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def workdir(cfg: DictConfig, *parts: str) -> Path:
    """A build folder under ``cfg.workdir`` (a cache: safe to delete)."""
    base = Path(OmegaConf.select(cfg, "workdir") or ".cache/tinyhil")
    d = base.joinpath(*parts)
    d.mkdir(parents=True, exist_ok=True)
    return d


def refuse_cycle_timer(cfg: DictConfig, what: str) -> None:
    """ConfigError before any work when ``timer=qemu-cycles``/``timing=`` reach a command that does not count
    cycles yet (it would otherwise measure instructions)."""
    from harness.errors import ConfigError

    if OmegaConf.select(cfg, "timer") == "qemu-cycles" or OmegaConf.select(cfg, "timing") is not None:
        raise ConfigError(f"{what} does not count cycles yet (timer=qemu-cycles works with run experiment=smoke|int8, "
                          "calibrate and bench experiment=timing): drop timer=/timing=")


def timing_keys(m) -> dict:
    """Summary keys of a cycle count (timer=qemu-cycles): core, profile, model version, instructions beside the
    cycles, milliseconds at the profile's clock. Empty for other timers."""
    x = m.extra
    if "timing_profile" not in x:
        return {}
    return {"core": x["core"], "timing_profile": x["timing_profile"],
            "timing_model_version": x["timing_model_version"], "clock_hz": x["clock_hz"],
            "instructions_total": m.instructions_total,
            "milliseconds": m.total_count / x["clock_hz"] * 1e3}


def board_from(cfg: DictConfig):
    """The configured board, with ``timer=`` and ``timing=`` (``timer=qemu-cycles timing=stm32h743``) applied."""
    from harness.boards import make_board

    timing = OmegaConf.select(cfg, "timing")
    if timing is not None and not isinstance(timing, str):
        timing = OmegaConf.to_container(timing, resolve=True)
    return make_board(OmegaConf.to_container(cfg.board, resolve=True), timer=OmegaConf.select(cfg, "timer"),
                      timing=timing)


@contextlib.contextmanager
def progress(description: str, total: int):
    """A rich progress bar; yields a zero-argument ``advance`` callable."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=False) as p:
        task = p.add_task(description, total=total)
        yield lambda: p.advance(task)
