"""Section sizes of a linked firmware image, and the flash/SRAM they occupy."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.errors import BuildError, MissingDependencyError

SIZE_TOOL = "arm-none-eabi-size"
_OVERFLOW_RE = re.compile(r"region [`'](\w+)' overflowed by (\d+) bytes")
_MIN_STACK_RE = re.compile(r"__th_min_stack\s*=\s*(\d+)\s*([KkMm]?)\s*;")


@dataclass(frozen=True)
class SectionSizes:
    text: int  # code + read-only data (weights), incl. .ARM.exidx
    data: int  # initialised RAM data (also stored in flash)
    bss: int  # zero-initialised RAM (arena, scratch, runtime tables; on real boards also .th_uncached)
    stack: int  # the minimum stack the linker script reserves

    @property
    def flash_used(self) -> int:
        return self.text + self.data

    @property
    def sram_used(self) -> int:
        return self.data + self.bss + self.stack


def section_sizes(elf: str | Path) -> SectionSizes:
    """Sizes from ``arm-none-eabi-size -A`` (sysv format: one line per section)."""
    if shutil.which(SIZE_TOOL) is None:
        raise MissingDependencyError(f"{SIZE_TOOL} not found: apt-get install -y gcc-arm-none-eabi")
    r = subprocess.run([SIZE_TOOL, "-A", "-d", str(elf)], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise BuildError(f"{SIZE_TOOL} failed on {elf}: {r.stderr.strip()}")
    sec: dict[str, int] = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sec[parts[0]] = int(parts[1])
    return SectionSizes(
        text=sec.get(".text", 0) + sec.get(".ARM.exidx", 0) + sec.get(".rodata", 0),
        data=sec.get(".data", 0),
        bss=sec.get(".bss", 0) + sec.get(".th_uncached", 0),  # real boards: RTT rings in uncached RAM
        stack=sec.get(".stack", 0),
    )


def linker_overflows(output: str) -> dict[str, int]:
    """``{region: bytes}`` for every "region `X' overflowed by N bytes" in a linker's output."""
    found: dict[str, int] = {}
    for region, n in _OVERFLOW_RE.findall(output):
        found[region] = max(found.get(region, 0), int(n))
    return found


def min_stack_bytes(linker_script: str | Path) -> int:
    """The ``__th_min_stack`` a board's linker script reserves (8 KB if it does not say)."""
    m = _MIN_STACK_RE.search(Path(linker_script).read_text())
    if not m:
        return 8 * 1024
    scale = {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
    return int(m.group(1)) * scale
