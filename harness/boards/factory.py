"""The one place that picks a Board class from a config (labgrid's strategy: the core never asks which)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.boards import build_only
from harness.boards.board import Board, QemuBoard, SerialBoard
from harness.config.board import BoardConfig, load_board_config


def make_board(board_cfg: str | Mapping[str, Any] | BoardConfig) -> Board:
    """The Board for a config (a name, a mapping / Hydra ``cfg.board``, or a BoardConfig); ConfigError if unknown.

    In build-only mode (``build_only=true``, harness.boards.build_only) the board builds and stops at flash()."""
    cfg = load_board_config(board_cfg)
    board: Board = QemuBoard(cfg) if cfg.driver.type == "qemu" else SerialBoard(cfg)
    return build_only.BuildOnlyBoard(board) if build_only.active() else board
