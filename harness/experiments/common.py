"""Helpers every experiment shares: the board, the work folder, progress bars."""

from __future__ import annotations

import contextlib
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.boards import make_board


def workdir(cfg: DictConfig, *parts: str) -> Path:
    """A build folder under ``cfg.workdir``: the run's private work folder, which the command runner sets to
    ``<workdir>/runs/<run id>`` before the entry runs (:mod:`harness.experiments.folders`), so that no other run
    builds in it. Safe to delete once the run has ended; images live on in the content-addressed build cache."""
    base = Path(OmegaConf.select(cfg, "workdir") or ".cache/tinyhil")
    d = base.joinpath(*parts)
    d.mkdir(parents=True, exist_ok=True)
    return d


def board_from(cfg: DictConfig):
    """The configured board, with ``timer=`` and ``timing=`` (``timer=qemu-cycles timing=stm32h743``) applied."""
    timing = OmegaConf.select(cfg, "timing")
    if timing is not None and not isinstance(timing, str):
        timing = OmegaConf.to_container(timing, resolve=True)
    return make_board(OmegaConf.to_container(cfg.board, resolve=True), timer=OmegaConf.select(cfg, "timer"),
                      timing=timing)


@contextlib.contextmanager
def progress(description: str, total: int):
    """A rich progress bar; yields a zero-argument ``advance`` callable."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    ) as p:
        task = p.add_task(description, total=total)
        yield lambda: p.advance(task)
