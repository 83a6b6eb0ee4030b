"""Target memory through a GDB server (the GDB Remote Serial Protocol): QEMU's gdbstub, OpenOCD, pyOCD's gdbserver.

A MemoryPort for :class:`~harness.transport.rtt.RttLink`: with it RTT runs against an emulator exactly as against a
probe, which is how the RTT transport is tested end to end here. Packets are ``$payload#cs`` with a two-digit
modulo-256 checksum, acknowledged with ``+``. Memory is read with ``m addr,len`` and written with
``M addr,len:hex``; a stub may only do either while the target is stopped, so each access interrupts the
target (0x03), waits for its stop reply, and lets it continue (``c``) afterwards.
"""

from __future__ import annotations

import socket
import time

from harness.errors import DeviceError

MAX_CHUNK = 1024  # bytes per m/M packet (QEMU's packet buffer holds far more)


def _checksum(payload: bytes) -> bytes:
    return b"%02x" % (sum(payload) & 0xFF)


class GdbRemoteMemory:
    """MemoryPort over a GDB remote connection; the target runs between accesses."""

    def __init__(self, host: str, port: int, timeout: float = 5.0):
        self.timeout = timeout
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise DeviceError(f"cannot connect to the GDB server at {host}:{port}: {exc}") from exc
        self._rx = bytearray()
        # The target may be running or already stopped (some stubs stop it when a debugger connects, QEMU stops
        # it on the first byte it receives): interrupt, take the stop reply if one comes, and drop anything else.
        self._running = True
        self.sock.sendall(b"\x03")
        self._drain_stop_replies(settle=0.3)
        self._running = False

    # --- packets -------------------------------------------------------------------------------------------------

    def _read_more(self, deadline: float) -> None:
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise DeviceError(f"the GDB server did not answer within {self.timeout:g} s") from None
        if not chunk:
            raise DeviceError("the GDB server closed the connection (the emulator exited?)")
        self._rx += chunk

    def _send(self, payload: bytes) -> None:
        packet = b"$" + payload + b"#" + _checksum(payload)
        deadline = time.monotonic() + self.timeout
        for _ in range(3):
            self.sock.sendall(packet)
            while not self._rx:
                self._read_more(deadline)
            ack = self._rx[:1]
            del self._rx[:1]
            if ack == b"+":
                return
            if ack != b"-":
                self._rx[:0] = ack  # not an ack: a packet already; the stub runs in no-ack mode
                return
        raise DeviceError("the GDB server rejected a packet three times")

    def _recv_packet(self) -> bytes:
        deadline = time.monotonic() + self.timeout
        while True:
            start = self._rx.find(b"$")
            if start >= 0:
                end = self._rx.find(b"#", start)
                if end >= 0 and len(self._rx) >= end + 3:
                    payload = bytes(self._rx[start + 1 : end])
                    cs = bytes(self._rx[end + 1 : end + 3])
                    del self._rx[: end + 3]
                    if cs.lower() != _checksum(payload):
                        self.sock.sendall(b"-")
                        continue
                    self.sock.sendall(b"+")
                    return payload
            self._read_more(deadline)

    def _command(self, payload: bytes) -> bytes:
        self._send(payload)
        reply = self._recv_packet()
        if reply.startswith(b"E") and len(reply) == 3:
            raise DeviceError(f"the GDB server refused {payload[:40]!r}: {reply.decode()}")
        return reply

    def _drain_stop_replies(self, settle: float) -> None:
        """Read and acknowledge whatever the stub sends until it has been quiet for ``settle`` seconds."""
        while True:
            self.sock.settimeout(settle)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                raise DeviceError("the GDB server closed the connection (the emulator exited?)")
            self._rx += chunk
            while b"#" in self._rx and len(self._rx) >= self._rx.find(b"#") + 3:
                self._recv_packet()
        self._rx.clear()

    # --- run control ---------------------------------------------------------------------------------------------

    def _stop(self) -> None:
        if not self._running:
            return
        self.sock.sendall(b"\x03")
        while True:
            reply = self._recv_packet()
            if reply[:1] in (b"T", b"S"):
                break
            if reply[:1] in (b"W", b"X"):
                raise DeviceError(f"the target exited (GDB stop reply {reply.decode(errors='replace')})")
        self._running = False

    def _continue(self) -> None:
        self._send(b"c")  # the stop reply to this comes when we interrupt
        self._running = True

    # --- MemoryPort ----------------------------------------------------------------------------------------------

    def read(self, address: int, size: int) -> bytes:
        self._stop()
        try:
            out = bytearray()
            while len(out) < size:
                n = min(MAX_CHUNK, size - len(out))
                reply = self._command(b"m%x,%x" % (address + len(out), n))
                out += bytes.fromhex(reply.decode("ascii"))
            return bytes(out)
        finally:
            self._continue()

    def write(self, address: int, data: bytes) -> None:
        self._stop()
        try:
            for pos in range(0, len(data), MAX_CHUNK):
                chunk = data[pos : pos + MAX_CHUNK]
                if self._command(b"M%x,%x:" % (address + pos, len(chunk)) + chunk.hex().encode()) != b"OK":
                    raise DeviceError(
                        f"the GDB server did not write {len(chunk)} bytes at 0x{address + pos:08x}"
                    )
        finally:
            self._continue()

    def close(self) -> None:
        try:
            self._stop()
            self._send(b"D")  # detach: the target runs on
        except (DeviceError, OSError):
            pass
        finally:
            self.sock.close()
