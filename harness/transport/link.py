"""Byte link to a board: ``socket://host:port`` (QEMU's UART) or a pyserial port (``/dev/ttyACM0`` on silicon).

Reads go in blocks: a TCP link takes whatever has arrived (up to :data:`BLOCK` bytes) with one ``recv``; a serial
port reads ``in_waiting`` bytes. TCP is read with the socket module rather than pyserial's ``socket://`` handler,
whose ``in_waiting`` is 0 or 1 (one byte per call) and whose ``read(n)`` throws away what it gathered when the
peer closes, which would lose a crashing board's last words.

A line is capped at :data:`MAX_LINE` bytes and every read honours its deadline, so neither an endless line nor a
trickle of bytes can hold the host.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

import serial

from harness.errors import DeviceError, ProtocolError


class LinkTimeout(DeviceError):
    """Nothing (complete) arrived within the timeout, but the link is still open."""


class Transport(Protocol):
    """What the protocol client needs from a link."""

    def write(self, data: bytes) -> None: ...

    def read_line(self, timeout: float) -> bytes: ...

    def close(self) -> None: ...

#: Called when the link fails; returns extra context (e.g. "QEMU exited with status 3: ...") or None.
Diagnose = Callable[[], "str | None"]

MAX_LINE = 1 << 20  # a 100 KB tensor dumped as hex plus framing fits comfortably
BLOCK = 1 << 16  # bytes asked for per read
WRITE_TIMEOUT = 30.0


class _Port(Protocol):
    def read_some(self, timeout: float) -> bytes | None:
        """What arrived within ``timeout`` (b"" if nothing), or None once the peer has closed."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

class _TcpPort:
    """A TCP connection (QEMU's ``-serial tcp:...,server``): block reads with ``select`` + ``recv``."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        if not parts.hostname or parts.port is None:
            raise ValueError(f"expected socket://HOST:PORT, got {url!r}")
        self._sock = socket.create_connection((parts.hostname, parts.port), timeout=10.0)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # commands are tiny; send them now
        self._sock.settimeout(WRITE_TIMEOUT)  # bounds sendall; reads wait in select, never in recv

    def read_some(self, timeout: float) -> bytes | None:
        ready, _, _ = select.select([self._sock], [], [], max(0.0, timeout))
        if not ready:
            return b""
        try:
            data = self._sock.recv(BLOCK)
        except (ConnectionResetError, ConnectionAbortedError):
            return None
        return data if data else None

    def write(self, data: bytes) -> None:
        self._sock.sendall(data)

    def close(self) -> None:
        self._sock.close()


class _SerialPort:
    """A pyserial port (a UART or a pyserial URL other than ``socket://``): reads ``in_waiting`` bytes."""

    def __init__(self, url: str, baudrate: int):
        self._port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.05, write_timeout=WRITE_TIMEOUT)

    def read_some(self, timeout: float) -> bytes | None:

        # The port's own timeout (0.05 s) is the poll interval; the caller loops to its deadline.
        try:
            return self._port.read(max(1, self._port.in_waiting))
        except (serial.SerialException, OSError):
            return None

    def write(self, data: bytes) -> None:
        self._port.write(data)
        self._port.flush()

    def close(self) -> None:
        self._port.close()


class SerialLink:
    """A line-oriented link; lines end with ``\\n`` (a ``\\r`` before it is dropped)."""

    def __init__(
        self, url: str, baudrate: int = 115200, diagnose: Diagnose | None = None, max_line: int = MAX_LINE,
        port: _Port | None = None,
    ):
        """``port``: a byte port opened elsewhere (a labgrid farm board's serial driver); ``url`` then only names
        it in messages."""
        self.url = url
        self.max_line = max_line
        self._diagnose = diagnose
        self._buf = bytearray()
        self._scan = 0  # bytes of _buf already searched for a newline
        self._skip_line = False  # dropping the rest of an over-long line
        self._closed = False
        try:
            if port is not None:
                self._port: _Port = port
            else:
                self._port = _TcpPort(url) if url.startswith("socket://") else _SerialPort(url, baudrate)
        except Exception as exc:  # noqa: BLE001 - socket, pyserial and URL errors alike mean "cannot open"
            raise DeviceError(f"cannot open serial link {url}: {exc}{self._context()}") from None

    def _context(self) -> str:
        extra = self._diagnose() if self._diagnose else None
        return f"\n{extra}" if extra else ""

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
        except Exception as exc:  # noqa: BLE001 - OSError, socket.timeout, pyserial's SerialException
            raise DeviceError(f"write to {self.url} failed: {exc}{self._context()}") from None

    def _take_line(self) -> bytes | None:
        """The first complete line in the buffer, if any (an over-long line's tail is dropped up to its end)."""
        while True:
            nl = self._buf.find(b"\n", self._scan)
            if nl < 0:
                self._scan = len(self._buf)
                if self._skip_line:
                    self._buf.clear()
                    self._scan = 0
                return None
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            self._scan = 0
            if self._skip_line:
                self._skip_line = False
                continue
            return line[:-1] if line.endswith(b"\r") else line

    def read_line(self, timeout: float) -> bytes:
        """The next line without its end-of-line bytes, within ``timeout`` seconds (one deadline for the line).

        DeviceError when the link closes or nothing complete arrives in time (with the board's diagnosis, e.g.
        the emulator's exit status); ProtocolError when a partial line is left hanging on a live link, or a line
        grows beyond ``max_line`` bytes (the rest of that line is then skipped).
        """
        deadline = time.monotonic() + timeout
        tried = False  # read at least once, even with no time left: what has arrived is a line in time
        while True:
            line = self._take_line()
            if line is not None and len(line) > self.max_line:
                raise ProtocolError(
                    f"line of {len(line)} bytes (longer than {self.max_line} bytes) from {self.url}: {line[:80]!r}..."
                )
            if line is not None:
                return line
            if len(self._buf) > self.max_line:
                head = bytes(self._buf[:80])
                self._buf.clear()
                self._scan = 0
                self._skip_line = True
                raise ProtocolError(
                    f"line longer than {self.max_line} bytes without an end of line from {self.url}: {head!r}..."
                )
            left = deadline - time.monotonic()
            if tried and left <= 0:  # checked on every pass: a trickle of bytes must not extend the deadline
                # No diagnosis here: the link is still open, so the emulator still runs (its death closes the
                # link), and asking would only wait for an exit that is not coming, past the deadline.
                if self._buf:
                    raise ProtocolError(
                        f"truncated line from {self.url}: {bytes(self._buf[:200])!r} "
                        f"(no end of line within {timeout:g} s)"
                    )
                raise LinkTimeout(f"no reply from {self.url} within {timeout:g} s")
            chunk = None if self._closed else self._port.read_some(left)
            tried = True
            if chunk is None:
                self._closed = True
                partial = f" (unterminated: {bytes(self._buf[:200])!r})" if self._buf else ""
                raise DeviceError(f"serial link {self.url} closed by the board{partial}{self._context()}")
            self._buf += chunk

    @property
    def closed(self) -> bool:
        """True once the peer closed the link (a crashed or exited board)."""
        return self._closed

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(Exception):  # closing a dead link must not mask the original error
            self._port.close()

    def __enter__(self) -> SerialLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
