"""``build_only=true``: build the firmware a run would flash, check it fits, and stop before any board is needed.

Any experiment works unchanged: while the mode is on, ``make_board`` wraps the board so that its ``flash`` raises
:class:`BuiltOnly` carrying the build result; ``harness.cli.execute`` catches it and writes the summary
(``built``, ``flash_used``, ``sram_used``, ``elf_sha256``, ...). The mode is an environment variable so that
worker processes an experiment spawns see it too. No probe, port or emulator is touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.boards.board import Board
from harness.build.sizes import section_sizes
from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.build.project import BuildResult

ENV_VAR = "TINYHIL_BUILD_ONLY"


class BuiltOnly(BaseException):
    """Raised instead of flashing in build-only mode; carries what was built."""

    def __init__(self, board: str, result: BuildResult | str | Path):
        super().__init__(f"built for {board}")
        self.board = board
        self.result = result

    def summary(self) -> dict[str, Any]:
        r = self.result
        if isinstance(r, (str, Path)):
            elf = Path(r)
            s = section_sizes(elf)
            sizes: dict[str, Any] = {"text": s.text, "data": s.data, "bss": s.bss, "stack": s.stack,
                                     "flash_used": s.flash_used, "sram_used": s.sram_used}  # fmt: skip
        else:
            elf = r.elf
            sizes = {"text": r.text, "data": r.data, "bss": r.bss, "stack": r.stack, "flash_used": r.flash_used,
                     "sram_used": r.sram_used, "flash_size": r.flash_size, "sram_size": r.sram_size,
                     "build_seconds": round(r.seconds, 3), "build_cached": r.cached}  # fmt: skip
        return {
            "built": True,
            "build_only": True,
            "board": self.board,
            **sizes,
            "elf": str(elf),
            "elf_sha256": hashlib.sha256(elf.read_bytes()).hexdigest(),
        }


def active() -> bool:
    return os.environ.get(ENV_VAR) == "1"


@contextlib.contextmanager
def mode(on: bool) -> Iterator[None]:
    """Turn build-only mode on (or leave it off) for the duration of a run."""
    old = os.environ.get(ENV_VAR)
    if on:
        os.environ[ENV_VAR] = "1"
    try:
        yield
    finally:
        if on:
            if old is None:
                os.environ.pop(ENV_VAR, None)
            else:
                os.environ[ENV_VAR] = old


class BuildOnlyBoard(Board):
    """Builds like the board it wraps; stops the run where the image would be flashed."""

    def __init__(self, inner: Board):
        super().__init__(inner.cfg)
        self.inner = inner

    def build(self, project, estimate=None, **kw):
        return self.inner.build(project, estimate=estimate, **kw)

    def flash(self, artifact) -> None:
        raise BuiltOnly(self.name, artifact)

    def open_transport(self):
        raise ConfigError(f"{self.name}: build_only=true stops before the board is used")
