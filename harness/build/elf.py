"""Read a linked firmware image: symbols, the bytes a symbol holds, the vector table.

Uses pyelftools (a pyOCD dependency). Tests compare the register values the board code writes (kept as const
symbols) with the reference manuals' formulas, and the RTT transport finds ``_SEGGER_RTT`` here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

from harness.errors import BuildError


@dataclass(frozen=True)
class Symbol:
    name: str
    address: int
    size: int


class ElfImage:
    """One ELF file, opened for reading symbols and section contents."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise BuildError(f"firmware image {self.path} does not exist")
        self._fp = self.path.open("rb")
        self.elf = ELFFile(self._fp)
        self._symbols: dict[str, Symbol] | None = None

    def close(self) -> None:
        self._fp.close()

    def __enter__(self) -> ElfImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def symbols(self) -> dict[str, Symbol]:
        if self._symbols is None:
            table = self.elf.get_section_by_name(".symtab")
            found: dict[str, Symbol] = {}
            for s in table.iter_symbols() if table is not None else ():
                if s.name:
                    found[s.name] = Symbol(s.name, int(s["st_value"]), int(s["st_size"]))
            self._symbols = found
        return self._symbols

    def symbol(self, name: str) -> Symbol:
        try:
            return self.symbols()[name]
        except KeyError:
            raise BuildError(f"{self.path.name} has no symbol {name!r}") from None

    def read(self, address: int, size: int) -> bytes:
        """Initial contents at ``address`` (virtual address) from the section that holds it."""
        for sec in self.elf.iter_sections():
            start, length = int(sec["sh_addr"]), int(sec["sh_size"])
            if sec["sh_type"] == "SHT_PROGBITS" and start <= address and address + size <= start + length:
                data = sec.data()
                return bytes(data[address - start : address - start + size])
        raise BuildError(f"{self.path.name}: no loaded section holds {size} bytes at 0x{address:08x}")

    def words(self, name: str) -> list[int]:
        """The little-endian 32-bit words a (data) symbol holds."""
        s = self.symbol(name)
        return list(struct.unpack(f"<{s.size // 4}I", self.read(s.address, s.size - s.size % 4)))

    def section(self, name: str) -> tuple[int, int] | None:
        """(address, size) of a section, or None."""
        sec = self.elf.get_section_by_name(name)
        return None if sec is None else (int(sec["sh_addr"]), int(sec["sh_size"]))

    def vector_table(self, entries: int = 16) -> list[int]:
        """The first ``entries`` words at the symbol th_vectors (initial SP, reset handler, ...)."""
        s = self.symbol("th_vectors")
        return list(struct.unpack(f"<{entries}I", self.read(s.address, 4 * entries)))
