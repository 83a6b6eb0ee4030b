"""Boards: configuration, resources (passive data), drivers (QEMU, pyOCD, PlatformIO) and the Board interface."""

from harness.boards.board import Board, QemuBoard, SerialBoard
from harness.boards.factory import make_board
from harness.config.board import BoardConfig, known_boards, load_board_config

__all__ = [
    "Board",
    "BoardConfig",
    "QemuBoard",
    "SerialBoard",
    "known_boards",
    "load_board_config",
    "make_board",
]
