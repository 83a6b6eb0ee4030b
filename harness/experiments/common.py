"""Helpers every experiment shares: the board, the work folder, progress bars."""

from __future__ import annotations

import contextlib
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.boards import make_board


def workdir(cfg: DictConfig, *parts: str) -> Path:
    """A build folder under ``cfg.workdir`` (a cache: safe to delete)."""
    base = Path(OmegaConf.select(cfg, "workdir") or ".cache/tinyhil")
    d = base.joinpath(*parts)
    d.mkdir(parents=True, exist_ok=True)
    return d


def board_from(cfg: DictConfig):
    return make_board(OmegaConf.to_container(cfg.board, resolve=True))


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
