"""Byte link to a board: a pyserial port or URL (``socket://host:port`` for QEMU, ``/dev/ttyACM0`` for silicon).

Reads go ``max(1, in_waiting)`` bytes at a time: pyserial's ``read(4096)`` throws away what it had gathered when the
peer closes, which would lose a crashing board's last words.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Protocol

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


class SerialLink:
    """A line-oriented link over pyserial; lines end with ``\\n`` (a ``\\r`` before it is dropped)."""

    def __init__(self, url: str, baudrate: int = 115200, diagnose: Diagnose | None = None):
        import serial

        self.url = url
        self._diagnose = diagnose
        self._buf = bytearray()
        self._closed = False
        try:
            port = serial.serial_for_url(
                url, baudrate=baudrate, timeout=0.05, write_timeout=30, do_not_open=True
            )
            if url.startswith("socket://"):
                # pyserial's open() "resets the input buffer" by reading and discarding whatever already arrived:
                # a board that answers the connection at once (QEMU starts the guest on accept) would lose its
                # first lines. Nothing stale can be waiting on a fresh TCP connection, so skip that.
                port.reset_input_buffer = lambda: None  # type: ignore[method-assign]
            port.open()
            self._port = port
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceError(f"cannot open serial link {url}: {exc}{self._context()}") from exc

    def _context(self) -> str:
        extra = self._diagnose() if self._diagnose else None
        return f"\n{extra}" if extra else ""

    def write(self, data: bytes) -> None:
        import serial

        try:
            self._port.write(data)
            self._port.flush()
        except (serial.SerialException, OSError) as exc:
            raise DeviceError(f"write to {self.url} failed: {exc}{self._context()}") from exc

    def _fill(self) -> bool:
        """Read what is available (at least one byte, or nothing within the port timeout); False on EOF."""
        import serial

        try:
            n = max(1, self._port.in_waiting)
            chunk = self._port.read(n)
        except (serial.SerialException, OSError):
            return False
        if chunk:
            self._buf += chunk
        return True

    def read_line(self, timeout: float) -> bytes:
        """The next line without its end-of-line bytes.

        DeviceError when the link closes or nothing complete arrives within ``timeout`` seconds (with the
        board's diagnosis, e.g. the emulator's exit status); ProtocolError when a partial line is left hanging
        on a live link, or a line grows beyond any legal size.
        """
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
            if self._closed or not self._fill():
                self._closed = True
                partial = f" (unterminated: {bytes(self._buf[:200])!r})" if self._buf else ""
                raise DeviceError(f"serial link {self.url} closed by the board{partial}{self._context()}")
            if time.monotonic() > deadline:
                ctx = self._context()
                if self._buf and not ctx:
                    raise ProtocolError(
                        f"truncated line from {self.url}: {bytes(self._buf[:200])!r} "
                        f"(no end of line within {timeout:g} s)"
                    )
                if ctx:
                    raise DeviceError(f"no reply from {self.url} within {timeout:g} s\n{ctx.strip()}")
                raise LinkTimeout(f"no reply from {self.url} within {timeout:g} s")

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
