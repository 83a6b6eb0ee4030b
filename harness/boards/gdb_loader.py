"""Flashing through a GDB server (the GDB Remote Serial Protocol over TCP): a board farm's network debug port.

A lab host runs a GDB server in front of each board: OpenOCD's or pyOCD's gdbserver in front of a debug probe, or
QEMU's gdbstub in front of an emulated board (how the farm path is tested here). :func:`load_elf` halts the target,
resets it, writes every loadable segment of the image (``PT_LOAD``, at its physical address), reads it back, resets
again so the core takes its stack pointer and entry from the new vector table, and detaches: the firmware runs.

Resets use the server's ``monitor`` command (``qRcmd``): ``system_reset`` for QEMU, ``reset halt`` for OpenOCD and
pyOCD (``monitor_reset``). Plain memory writes (``M``) reach RAM, and QEMU's ROM too; a server in front of real
flash needs its flash-programming packets instead (OpenOCD and pyOCD accept ``M`` to flash only through GDB's
``load``), so real boards behind OpenOCD are flashed with labgrid's own OpenOCDDriver (docs/scaling.md).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from elftools.elf.elffile import ELFFile

from harness.errors import DeviceError
from harness.transport.gdb_memory import MAX_CHUNK, GdbRemoteMemory

#: The ``monitor`` command that resets the target and leaves it halted, per kind of GDB server.
MONITOR_RESET = {"qemu": "system_reset", "openocd": "reset halt", "pyocd": "reset halt"}


def load_segments(elf: str | Path) -> list[tuple[int, bytes]]:
    """(physical address, bytes) of every loadable segment with file contents, in address order."""
    out = []
    with open(elf, "rb") as f:
        image = ELFFile(f)
        for seg in image.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_filesz"] > 0:
                out.append((int(seg["p_paddr"]), seg.data()[: seg["p_filesz"]]))
    if not out:
        raise DeviceError(f"{elf} has no loadable segment")
    return sorted(out)


class GdbLoader(GdbRemoteMemory):
    """A GDB remote connection that loads an image and starts it (the target stays halted while loading)."""

    def __init__(self, host: str, port: int, server: str = "qemu", timeout: float = 10.0):
        if server not in MONITOR_RESET:
            raise DeviceError(f"unknown GDB server kind {server!r}; one of {sorted(MONITOR_RESET)}")
        self.server = server
        super().__init__(host, port, timeout=timeout)  # interrupts the target: it is halted from here on
        # Many small packets, each answered before the next: without this each waits out a delayed ACK.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.where = f"{host}:{port}"

    def monitor(self, command: str) -> str:
        """Run a server ``monitor`` command; its console output."""
        self._send(b"qRcmd," + command.encode().hex().encode())
        text = b""
        while True:
            reply = self._recv_packet()
            if reply.startswith(b"O") and reply != b"OK":
                text += bytes.fromhex(reply[1:].decode())
                continue
            if reply == b"OK" or reply == b"":
                return text.decode(errors="replace")
            raise DeviceError(f"the GDB server at {self.where} refused 'monitor {command}': {reply.decode()}")

    def reset(self) -> None:
        self.monitor(MONITOR_RESET[self.server])
        time.sleep(0.05)  # QEMU performs a requested reset from its main loop, right after the command returns

    def write_block(self, address: int, data: bytes) -> None:
        for pos in range(0, len(data), MAX_CHUNK):
            chunk = data[pos : pos + MAX_CHUNK]
            if self._command(b"M%x,%x:" % (address + pos, len(chunk)) + chunk.hex().encode()) != b"OK":
                raise DeviceError(f"the GDB server at {self.where} did not write 0x{address + pos:08x}")

    def read_block(self, address: int, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            n = min(MAX_CHUNK, size - len(out))
            out += bytes.fromhex(self._command(b"m%x,%x" % (address + len(out), n)).decode("ascii"))
        return bytes(out)

    def load(self, elf: str | Path, verify: bool = True) -> int:
        """Reset, write and (``verify``) read back every segment of ``elf``, reset, and let it run (detach).
        Returns the bytes written."""
        segments = load_segments(elf)
        self.reset()
        for addr, data in segments:
            self.write_block(addr, data)
        if verify:
            for addr, data in segments:
                if self.read_block(addr, len(data)) != data:
                    raise DeviceError(
                        f"the image read back from 0x{addr:08x} through {self.where} differs from {Path(elf).name}"
                        " (flash not written? a GDB server in front of real flash needs OpenOCD's loader)"
                    )
        self.reset()  # the core takes SP and PC from the vector table just written
        self._send(b"D")  # detach: the target runs
        self._running = True
        self.sock.close()
        return sum(len(d) for _, d in segments)


def load_elf(host: str, port: int, elf: str | Path, server: str = "qemu", timeout: float = 10.0) -> int:
    """Load and start ``elf`` on the target behind the GDB server at ``host:port``; the bytes written."""
    return GdbLoader(host, port, server, timeout).load(elf)
