"""SEGGER RTT as a line transport: the same interface as :class:`~harness.transport.link.SerialLink`, carried by
reads and writes of the target's memory instead of a serial port.

The firmware (firmware/boards/common/rtt.c) keeps a control block in RAM, found by the ELF symbol ``_SEGGER_RTT``
or by scanning RAM for its ID string. Layout (SEGGER's, as pyOCD's reader also has it)::

    char acID[16]                  "SEGGER RTT" padded with NUL
    int32 MaxNumUpBuffers, MaxNumDownBuffers
    ring up[MaxNumUpBuffers]       target -> host
    ring down[MaxNumDownBuffers]   host -> target
    ring = {u32 sName, pBuffer, SizeOfBuffer, WrOff, RdOff, Flags}     (24 bytes)

The writer of a ring owns WrOff, the reader owns RdOff; a ring is full when WrOff + 1 == RdOff (mod size).

Any object with ``read(address, size) -> bytes`` and ``write(address, data)`` carries it: pyOCD's target through a
debug probe on silicon (:func:`harness.boards.pyocd_rtt.open_pyocd_rtt`), or a GDB server (:class:`~harness.transport.gdb_memory.
GdbRemoteMemory`, e.g. QEMU's gdbstub, which is how the tests run it against real firmware).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from harness.errors import DeviceError, ProtocolError
from harness.transport.link import MAX_LINE, Diagnose, LinkTimeout

RTT_ID = b"SEGGER RTT"
HEADER_BYTES = 24  # acID[16] + two int32
RING_BYTES = 24
MAX_RINGS = 32  # sanity bound on MaxNumUp/DownBuffers when parsing


class MemoryPort(Protocol):
    """Target memory access, little-endian, byte granular."""

    def read(self, address: int, size: int) -> bytes: ...

    def write(self, address: int, data: bytes) -> None: ...


@dataclass(frozen=True)
class RttRing:
    """One ring descriptor as read from target memory."""

    desc_address: int
    name_ptr: int
    buffer: int
    size: int
    wr_off: int
    rd_off: int
    flags: int

    @property
    def wr_address(self) -> int:
        return self.desc_address + 12

    @property
    def rd_address(self) -> int:
        return self.desc_address + 16

    def pending(self) -> int:
        """Bytes written and not yet read."""
        return (self.wr_off - self.rd_off) % self.size if self.size else 0

    def free(self) -> int:
        """Bytes that can be written (one always stays free)."""
        return self.size - 1 - self.pending() if self.size else 0


@dataclass(frozen=True)
class RttControlBlock:
    address: int
    max_up: int
    max_down: int
    up: tuple[RttRing, ...]
    down: tuple[RttRing, ...]

    @property
    def size(self) -> int:
        return HEADER_BYTES + RING_BYTES * (self.max_up + self.max_down)


def find_control_block(image: bytes, base: int) -> int | None:
    """Address of the first RTT control block ID in a memory image that starts at ``base``."""
    at = image.find(RTT_ID + b"\0")
    return None if at < 0 else base + at


def parse_control_block(image: bytes, address: int, base: int | None = None) -> RttControlBlock:
    """Parse the control block at ``address`` from a memory image starting at ``base`` (default: ``address``).

    ProtocolError when the bytes are not a plausible control block (wrong ID, ring counts, sizes)."""
    base = address if base is None else base
    off = address - base
    if off < 0 or off + HEADER_BYTES > len(image):
        raise ProtocolError(f"RTT control block at 0x{address:08x} is outside the memory image")
    if image[off : off + len(RTT_ID)] != RTT_ID:
        raise ProtocolError(f"no RTT control block ID at 0x{address:08x}: {image[off : off + 16]!r}")
    max_up, max_down = struct.unpack_from("<ii", image, off + 16)
    if not (0 <= max_up <= MAX_RINGS and 0 <= max_down <= MAX_RINGS):
        raise ProtocolError(
            f"RTT control block at 0x{address:08x} has implausible ring counts {max_up}/{max_down}"
        )
    end = off + HEADER_BYTES + RING_BYTES * (max_up + max_down)
    if end > len(image):
        raise ProtocolError(f"RTT control block at 0x{address:08x} runs past the memory image")
    rings = []
    for i in range(max_up + max_down):
        d = off + HEADER_BYTES + RING_BYTES * i
        name, buf, size, wr, rd, flags = struct.unpack_from("<6I", image, d)
        if size and (wr >= size or rd >= size):
            raise ProtocolError(
                f"RTT ring {i} at 0x{base + d:08x}: offsets {wr}/{rd} outside its {size} bytes"
            )
        rings.append(RttRing(base + d, name, buf, size, wr, rd, flags))
    return RttControlBlock(address, max_up, max_down, tuple(rings[:max_up]), tuple(rings[max_up:]))


def ring_data(ring: RttRing, read: Callable[[int, int], bytes]) -> bytes:
    """The pending bytes of ``ring`` (at most two reads: up to the end of the buffer, then from its start)."""
    n = ring.pending()
    if n == 0:
        return b""
    first = min(n, ring.size - ring.rd_off)
    data = read(ring.buffer + ring.rd_off, first)
    if first < n:
        data += read(ring.buffer, n - first)
    return data


def read_c_string(read: Callable[[int, int], bytes], address: int, limit: int = 32) -> str:
    if not address:
        return ""
    raw = read(address, limit)
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


class RttLink:
    """A line link over one RTT up/down ring pair (the Transport the protocol client needs)."""

    def __init__(
        self,
        memory: MemoryPort,
        address: int | None = None,
        search: tuple[int, int] | None = None,
        channel: int = 0,
        find_timeout: float = 10.0,
        poll_s: float = 0.001,
        write_timeout: float = 30.0,
        closer: Callable[[], None] | None = None,
        diagnose: Diagnose | None = None,
        name: str = "rtt",
    ):
        """``address`` of the control block (e.g. the ELF's ``_SEGGER_RTT``), or ``search=(start, size)`` to scan
        RAM for it; either way waits up to ``find_timeout`` for the firmware to set it up."""
        if address is None and search is None:
            raise ValueError("RttLink needs the control block address or a RAM range to search")
        self.memory = memory
        self.url = name
        self.poll_s = poll_s
        self.write_timeout = write_timeout
        self._closer = closer
        self._diagnose = diagnose
        self._buf = bytearray()
        self._closed = False
        self.channel = channel
        self.cb = self._locate(address, search, find_timeout)
        if channel >= min(self.cb.max_up, self.cb.max_down):
            raise DeviceError(f"RTT control block at 0x{self.cb.address:08x} has no channel {channel}")
        self._up = self.cb.up[channel]
        self._down = self.cb.down[channel]
        self._rd = self._up.rd_off  # the host owns the up ring's read offset

    def _locate(self, address: int | None, search: tuple[int, int] | None, timeout: float) -> RttControlBlock:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            try:
                if address is None:
                    assert search is not None
                    start, size = search
                    image = self.memory.read(start, size)
                    at = find_control_block(image, start)
                    if at is not None:
                        return parse_control_block(image, at, start)
                    last = ProtocolError(f"no RTT control block in 0x{start:08x}..0x{start + size:08x}")
                else:
                    head = self.memory.read(address, HEADER_BYTES)
                    if head[: len(RTT_ID)] == RTT_ID:
                        max_up, max_down = struct.unpack_from("<ii", head, 16)
                        n = RING_BYTES * max(0, min(MAX_RINGS, max_up) + min(MAX_RINGS, max_down))
                        return parse_control_block(
                            head + self.memory.read(address + HEADER_BYTES, n), address
                        )
                    last = ProtocolError(f"no RTT control block at 0x{address:08x} yet: {head[:16]!r}")
            except ProtocolError as e:
                last = e
            if time.monotonic() > deadline:
                raise DeviceError(
                    f"the firmware did not set up RTT within {timeout:g} s: {last}{self._context()}"
                )
            time.sleep(0.05)

    def _context(self) -> str:
        extra = self._diagnose() if self._diagnose else None
        return f"\n{extra}" if extra else ""

    def _u32(self, address: int) -> int:
        return struct.unpack("<I", self.memory.read(address, 4))[0]

    def write(self, data: bytes) -> None:
        """Put ``data`` into the down ring, waiting for the firmware to make room."""
        if self._closed:
            raise DeviceError(f"{self.url}: link closed")
        d = self._down
        wr = self._u32(d.wr_address)
        deadline = time.monotonic() + self.write_timeout
        pos = 0
        while pos < len(data):
            rd = self._u32(d.rd_address)
            free = (rd - wr - 1) % d.size
            if free == 0:
                if time.monotonic() > deadline:
                    raise DeviceError(
                        f"{self.url}: the firmware did not read the RTT down ring within {self.write_timeout:g} s"
                        f"{self._context()}"
                    )
                time.sleep(self.poll_s)
                continue
            n = min(free, len(data) - pos, d.size - wr)
            self.memory.write(d.buffer + wr, data[pos : pos + n])
            wr = (wr + n) % d.size
            self.memory.write(
                d.wr_address, struct.pack("<I", wr)
            )  # after the bytes: the firmware reads them next
            pos += n

    def _fill(self) -> int:
        wr = self._u32(self._up.wr_address)
        if wr >= self._up.size:
            raise ProtocolError(
                f"{self.url}: RTT up ring write offset {wr} outside its {self._up.size} bytes"
            )
        ring = RttRing(self._up.desc_address, 0, self._up.buffer, self._up.size, wr, self._rd, 0)
        data = ring_data(ring, self.memory.read)
        if data:
            self._buf += data
            self._rd = wr
            self.memory.write(self._up.rd_address, struct.pack("<I", wr))
        return len(data)

    def read_line(self, timeout: float) -> bytes:
        """The next line without its end-of-line bytes (same errors as SerialLink.read_line)."""
        deadline = time.monotonic() + timeout
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self._buf) > MAX_LINE:
                raise ProtocolError(
                    f"line longer than {MAX_LINE} bytes without an end of line from {self.url}"
                )
            if self._closed:
                raise DeviceError(f"{self.url}: link closed")
            if self._fill():
                continue
            if time.monotonic() > deadline:
                ctx = self._context()
                if self._buf and not ctx:
                    raise ProtocolError(
                        f"truncated line from {self.url}: {bytes(self._buf[:200])!r} (no end of line within {timeout:g} s)"
                    )
                if ctx:
                    raise DeviceError(f"no reply from {self.url} within {timeout:g} s\n{ctx.strip()}")
                raise LinkTimeout(f"no reply from {self.url} within {timeout:g} s")
            time.sleep(self.poll_s)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._closer is not None:
            self._closer()

    def __enter__(self) -> RttLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
