"""RTT through a pyOCD debug probe: the driver that binds a probe resource to an :class:`RttLink`."""

from __future__ import annotations

import contextlib
from pathlib import Path

from harness.boards.pyocd_flasher import pyocd_session
from harness.build.elf import ElfImage
from harness.transport.rtt import RttLink


class PyOcdMemory:
    """MemoryPort over a pyOCD target (the core keeps running: RTT needs no halt)."""

    def __init__(self, target) -> None:
        self.target = target

    def read(self, address: int, size: int) -> bytes:
        return bytes(self.target.read_memory_block8(address, size))

    def write(self, address: int, data: bytes) -> None:
        self.target.write_memory_block8(address, list(data))


def open_pyocd_rtt(probe, elf: str | Path | None = None, find_timeout: float = 10.0) -> RttLink:
    """An RttLink through a pyOCD session on ``probe`` (a resources.DebugProbe), attached without halting.

    The control block is found by the ELF's ``_SEGGER_RTT`` symbol when ``elf`` is given, else by scanning the
    target's RAM regions."""
    stack = contextlib.ExitStack()
    session = stack.enter_context(pyocd_session(probe, connect_mode="attach"))
    try:
        memory = PyOcdMemory(session.board.target)
        address = None
        search = None
        if elf is not None and Path(elf).is_file():
            with ElfImage(elf) as image:
                sym = image.symbols().get("_SEGGER_RTT")
                address = sym.address if sym else None
        if address is None:
            from pyocd.core.memory_map import MemoryType

            ram = session.board.target.get_memory_map().get_default_region_of_type(MemoryType.RAM)
            search = (ram.start, min(ram.length, 256 * 1024))
        return RttLink(
            memory,
            address=address,
            search=search,
            find_timeout=find_timeout,
            closer=stack.close,
            name=f"rtt:{probe.unique_id or probe.target}",
        )
    except BaseException:
        stack.close()
        raise
