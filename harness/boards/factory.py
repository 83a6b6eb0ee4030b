"""The one place that picks a Board class from a config (labgrid's strategy: the core never asks which)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.boards import build_only
from harness.boards.board import Board, QemuBoard, SerialBoard
from harness.config.board import BoardConfig, load_board_config
from harness.timing import TIMER, apply_timer


def chosen_timer(cfg: BoardConfig, timer: str | None, timing: Any = None) -> tuple[str | None, Any]:
    """``(timer, timing)`` as the user gave them, else the board's defaults (``default_timer``, and
    ``default_timing`` when that timer counts emulated cycles)."""
    if timer in (None, "") and cfg.default_timer:
        timer = cfg.default_timer
        if timing in (None, "") and cfg.default_timing and timer == TIMER:
            timing = cfg.default_timing
    return timer, timing


def make_board(
    board_cfg: str | Mapping[str, Any] | BoardConfig, *, timer: str | None = None, timing: Any = None
) -> Board:
    """The Board for a config (a name, a mapping / Hydra ``cfg.board``, or a BoardConfig); ConfigError if unknown.

    ``timer`` overrides the board's timer (``qemu-cycles`` on emulated boards) and ``timing`` names its timing
    profile (``configs/timing``); see :func:`harness.timing.apply_timer`. In build-only mode (``build_only=true``, harness.boards.build_only) the board builds and stops at flash()."""
    cfg = load_board_config(board_cfg)
    timer, timing = chosen_timer(cfg, timer, timing)
    cycles = None
    if timer not in (None, "") or timing not in (None, "") or cfg.timer.source == TIMER:
        cfg, cycles = apply_timer(cfg, timer, timing)
    board: Board
    if cfg.driver.type == "qemu":
        board = QemuBoard(cfg, cycles=cycles)
    elif cfg.driver.type == "labgrid":
        from harness.boards.labgrid_board import LabgridBoard  # labgrid (grpc) loads only for farm boards

        board = LabgridBoard(cfg)
    else:
        board = SerialBoard(cfg)
    return build_only.BuildOnlyBoard(board) if build_only.active() else board
