"""Client for the firmware's serial protocol (MLPerf Tiny / EEMBC runner style plus tinyhil's extensions).

Wire format (firmware/README.md has the full specification): the host sends ``command*XXXX%``; the board answers
with lines ``payload*XXXX\\r\\n`` and ends every command with ``m-ready``. ``XXXX`` is the CRC-16/CCITT-FALSE of the
payload (``binascii.crc_hqx(payload, 0xFFFF)``) in upper-case hex, so every corrupted, truncated or garbage line is
detected. Errors are ``e-[...]`` lines.
"""

from __future__ import annotations

import binascii
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import DeviceError, ProtocolError
from harness.transport.link import LinkTimeout, Transport

_FIELD = re.compile(r"\[([^\]]*)\]")


def line_crc(payload: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), as the firmware computes it."""
    return binascii.crc_hqx(payload, 0xFFFF)


def frame(payload: str | bytes) -> bytes:
    """A command or line with its checksum: ``payload*XXXX`` (no terminator)."""
    p = payload.encode("ascii") if isinstance(payload, str) else payload
    return p + b"*%04X" % line_crc(p)


def parse_line(raw: bytes) -> str:
    """The verified payload of one received line; ProtocolError if its checksum is missing or wrong."""
    star = raw.rfind(b"*")
    if star < 0 or len(raw) - star != 5:
        raise ProtocolError(f"line without a valid checksum suffix (garbage or truncated): {raw[:200]!r}")
    payload, suffix = raw[:star], raw[star + 1 :]
    try:
        want = int(suffix.decode("ascii"), 16)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError(f"line with a malformed checksum: {raw[:200]!r}") from None
    got = line_crc(payload)
    if got != want:
        raise ProtocolError(f"line checksum mismatch (sent {want:04X}, computed {got:04X}): {raw[:200]!r}")
    try:
        return payload.decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError(f"non-ASCII line: {raw[:200]!r}") from None


def fields(line: str) -> list[str]:
    """The ``[...]`` fields of a reply line, in order."""
    return _FIELD.findall(line)


@dataclass(frozen=True)
class LayerResult:
    """One row of ``layers%``: ticks of the last inference and (if enabled) the CRC-32 of the layer's output."""

    index: int
    ticks: int
    crc32: int | None
    name: str
    op: str
    macs: int


@dataclass(frozen=True)
class PatchStepResult:
    """One row of ``patches%``: a stage layer on one patch in the last inference."""

    patch: int
    step: int
    ticks: int
    copy_ticks: int
    crc32: int | None
    a_bits: int
    o_bits: int
    macs: int


@dataclass(frozen=True)
class ModelInfo:
    name: str
    hash: int
    n_layers: int
    n_tensors: int
    arena_size: int
    scratch_size: int
    input_index: int
    input_bytes: int
    output_index: int
    output_bytes: int
    input_clobbered: bool
    board: str
    core_hz: int
    timer: str
    timer_hz: int
    runtime_version: str
    max_layers: int


@dataclass(frozen=True)
class MemInfo:
    """SRAM use measured on the device: static data (arena and scratch included) and the stack high-water mark."""

    static_ram: int
    stack_size: int
    stack_used: int
    arena_size: int
    scratch_size: int
    arena_used: int | None = None  # arena bytes up to the highest one written since boot (painted arena)

    @property
    def peak_sram(self) -> int:
        return self.static_ram + self.stack_used


@dataclass(frozen=True)
class InferTiming:
    """``m-lap-us`` stamps around the timed inferences of the last ``infer``."""

    iterations: int
    warmup: int
    lap_us: int


class Dut:
    """Device under test: one command at a time over a :class:`Transport`."""

    def __init__(
        self,
        link: Transport,
        timeout: float = 60.0,
        chunk_bytes: int = 2048,
        retries: int = 3,
        host_dir: str | Path | None = None,
        host_min_bytes: int = 512,
    ):
        """``host_dir``: a folder the board can read directly (QEMU semihosting); inputs of at least
        ``host_min_bytes`` then travel as a file (``db host PATH%``) instead of hex over the UART."""
        self.link = link
        self.host_dir = Path(host_dir) if host_dir is not None else None
        self.host_min_bytes = host_min_bytes
        self.timeout = timeout
        self.chunk_bytes = chunk_bytes
        self.retries = retries
        self._info: ModelInfo | None = None
        self._last_input: bytes | None = None
        self._input_fresh = False
        self._crc_on: bool | None = None
        self.last_timing: InferTiming | None = None

    # ------------------------------------------------------------ plumbing
    def read_line(self, timeout: float | None = None) -> str:
        """The next verified line (empty lines, e.g. before a fault report, are skipped)."""
        while True:
            raw = self.link.read_line(self.timeout if timeout is None else timeout)
            if raw.strip():
                return parse_line(raw)

    def command(self, cmd: str, timeout: float | None = None) -> list[str]:
        """Send ``cmd`` and return the reply lines before ``m-ready``; DeviceError on an ``e-[...]`` reply."""
        self.link.write(frame(cmd) + b"%")
        lines: list[str] = []
        while True:
            line = self.read_line(timeout)
            if line == "m-ready":
                break
            if line.startswith("e-[fault"):
                raise DeviceError(f"the board faulted while running '{cmd}': {line}")
            lines.append(line)
        errors = [ln for ln in lines if ln.startswith("e-")]
        if errors:
            raise DeviceError(f"the board rejected '{_short(cmd)}': {'; '.join(errors)}")
        return lines

    def sync(self, timeout: float = 10.0, banner_wait: float = 2.0) -> str:
        """Get past the boot banner and any noise, and return the board's name.

        The banner (``m-init-done``, ``m-ready``) is awaited first: a UART that is not enabled yet drops what it
        receives (QEMU's STM32 USART does). A board already running (real silicon) shows no banner, so after
        ``banner_wait`` seconds ``name%`` is sent, and re-sent every second until ``timeout``.
        """
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                line = self._read_noisy(min(banner_wait, max(0.01, deadline - time.monotonic())))
                if (
                    line == "m-init-done"
                    and self._read_noisy(max(0.01, deadline - time.monotonic())) == "m-ready"
                ):
                    break
        except LinkTimeout:
            pass
        sent = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeviceError(f"the board did not answer 'name%' within {timeout:g} s")
            self.link.write(frame("name") + b"%")
            sent += 1
            name = None
            try:
                while True:
                    line = self._read_noisy(min(1.0, max(0.01, deadline - time.monotonic())))
                    if line.startswith("m-name-dut-"):
                        name = fields(line)[0] if fields(line) else line
                    elif line == "m-ready" and name is not None:
                        break
            except LinkTimeout:
                continue
            if sent > 1:
                self._drain(0.3)  # replies to the earlier, late `name%` must not answer the next command
            return name

    def _read_noisy(self, timeout: float) -> str:
        """A verified line within ``timeout``, skipping garbled ones (used only while synchronising)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise LinkTimeout(f"only garbled lines for {timeout:g} s")
            try:
                line = self.read_line(left)
            except ProtocolError:
                continue
            if line.startswith("e-[fault"):
                raise DeviceError(f"the board faulted during start-up: {line}")
            return line

    def _drain(self, quiet: float) -> None:
        try:
            while True:
                self._read_noisy(quiet)
        except LinkTimeout:
            pass

    @staticmethod
    def _expect(lines: list[str], prefix: str, cmd: str) -> str:
        for ln in lines:
            if ln.startswith(prefix):
                return ln
        raise ProtocolError(f"reply to '{cmd}' lacks a '{prefix}' line: {lines}")

    # ------------------------------------------------------------ EEMBC commands
    def name(self) -> str:
        return fields(self._expect(self.command("name"), "m-name-dut-", "name"))[0]

    def timestamp_us(self) -> int:
        return int(self._expect(self.command("timestamp"), "m-lap-us-", "timestamp")[len("m-lap-us-") :])

    def load_input(self, data: bytes | np.ndarray) -> None:
        """Put ``data`` (exactly the input tensor's packed bytes) into the model's input tensor.

        Hex over the UART (``db load N%`` then ``db HEX%`` chunks, decoded into the tensor as they arrive); or, on a
        board with a ``host_dir``, a file the firmware reads in one go (the UART of an emulator moves a few kB/s).
        """
        data = bytes(np.asarray(data).tobytes()) if isinstance(data, np.ndarray) else bytes(data)
        if self.host_dir is not None and len(data) >= self.host_min_bytes:
            path = self.host_dir / "input.bin"
            if len(str(path)) < 120 and " " not in str(path):
                path.write_bytes(data)
                self._expect(self.command(f"db host {path}"), "m-load-done", "db host")
                self._last_input = data
                self._input_fresh = True
                return
        self._expect(self.command(f"db load {len(data)}"), "m-[Expecting", "db load")
        done = False
        for off in range(0, len(data), self.chunk_bytes):
            chunk = data[off : off + self.chunk_bytes]
            for attempt in range(self.retries + 1):
                try:
                    lines = self.command("db " + chunk.hex())
                    break
                except DeviceError as exc:
                    if "checksum" not in str(exc) or attempt == self.retries:
                        raise
            done = any(ln == "m-load-done" for ln in lines)
        if not done:
            raise ProtocolError(f"the board did not confirm the {len(data)}-byte input load (no m-load-done)")
        self._last_input = data
        self._input_fresh = True

    def infer(
        self, n: int = 1, warmup: int = 0, crc: bool | None = None, timeout: float | None = None
    ) -> np.ndarray:
        """Run ``warmup`` untimed then ``n`` timed inferences; return the output tensor's bytes as int8.

        ``crc`` switches per-layer output CRCs on or off first (None: leave as is). A model whose arena reuses the
        input tensor's memory gets its input reloaded before every inference (the firmware refuses ``n + warmup >
        1`` for it).
        """
        if n < 1 or warmup < 0:
            raise ValueError("infer needs n >= 1 and warmup >= 0")
        if crc is not None:
            self.set_crc(crc)
        info = self.model_info()
        if not info.input_clobbered:
            return self._infer_once(n, warmup, timeout)
        out = None
        for _ in range(n + warmup):
            if not self._input_fresh:
                if self._last_input is None:
                    raise DeviceError("no input loaded: call load_input() before infer()")
                self.load_input(self._last_input)
            out = self._infer_once(1, 0, timeout)
            self._input_fresh = False
        assert out is not None
        return out

    def _infer_once(self, n: int, warmup: int, timeout: float | None) -> np.ndarray:
        lines = self.command(f"infer {n} {warmup}", timeout)
        laps = [int(ln[len("m-lap-us-") :]) for ln in lines if ln.startswith("m-lap-us-")]
        if len(laps) != 2 or "m-infer-done" not in lines:
            raise ProtocolError(f"incomplete infer reply: {lines}")
        self.last_timing = InferTiming(iterations=n, warmup=warmup, lap_us=laps[1] - laps[0])
        return self._parse_results(self._expect(lines, "m-results-", "infer"))

    @staticmethod
    def _parse_results(line: str) -> np.ndarray:
        body = fields(line)
        if not body:
            raise ProtocolError(f"malformed results line: {line[:200]}")
        if body[0] == "":
            return np.zeros(0, dtype=np.int8)
        try:
            return np.array([int(v) for v in body[0].split(",")], dtype=np.int8)
        except ValueError:
            raise ProtocolError(f"malformed results line: {line[:200]}") from None

    def results(self) -> np.ndarray:
        return self._parse_results(self._expect(self.command("results"), "m-results-", "results"))

    # ------------------------------------------------------------ tinyhil extensions
    def set_crc(self, on: bool) -> None:
        """Turn per-layer output CRC-32s on or off (computed outside the timed region)."""
        if self._crc_on is not on:
            self.command(f"crc {int(bool(on))}")
            self._crc_on = bool(on)

    def layers(self) -> list[LayerResult]:
        """Per-layer ticks (and CRC-32s when enabled) of the last inference."""
        out = []
        for ln in self.command("layers"):
            if not ln.startswith("m-layer-"):
                continue
            f = fields(ln)
            if len(f) != 6:
                raise ProtocolError(f"malformed layer line: {ln}")
            out.append(
                LayerResult(
                    index=int(f[0]),
                    ticks=int(f[1]),
                    crc32=int(f[2], 16) if f[2] else None,
                    name=f[3],
                    op=f[4],
                    macs=int(f[5]),
                )
            )
        return out

    def patches(self) -> list[PatchStepResult]:
        """Per-(patch, stage layer) ticks, copy ticks and CRC-32s of the last patch-based inference."""
        lines = self.command("patches")
        head = [ln for ln in lines if ln.startswith("m-patches-")]
        if not head:
            raise ProtocolError(f"reply to 'patches' lacks the m-patches line: {lines[:3]}")
        n_patches, n_stage = (int(v) for v in fields(head[0])[:2])
        out = []
        for ln in lines:
            if not ln.startswith("m-pstep-"):
                continue
            f = fields(ln)
            if len(f) != 8:
                raise ProtocolError(f"malformed patch step line: {ln}")
            out.append(
                PatchStepResult(int(f[0]), int(f[1]), int(f[2]), int(f[3]), int(f[4], 16) if f[4] else None,
                                int(f[5]), int(f[6]), int(f[7]))
            )
        if len(out) != n_patches * n_stage:
            raise ProtocolError(f"patches: announced {n_patches} x {n_stage} steps, got {len(out)} lines")
        return out

    def total_ticks(self) -> int:
        """Sum of the per-layer ticks of the last inference."""
        return int(fields(self._expect(self.command("layers"), "m-total-", "layers"))[0])

    def model_info(self, refresh: bool = False) -> ModelInfo:
        if self._info is not None and not refresh:
            return self._info
        lines = self.command("model")

        def f(prefix: str) -> list[str]:
            return fields(self._expect(lines, prefix, "model"))

        m, io, b, t, r = f("m-model-"), f("m-io-"), f("m-board-"), f("m-timer-"), f("m-runtime-")
        self._info = ModelInfo(
            name=m[0],
            hash=int(m[1], 16),
            n_layers=int(m[2]),
            n_tensors=int(m[3]),
            arena_size=int(m[4]),
            scratch_size=int(m[5]),
            input_index=int(io[0]),
            input_bytes=int(io[1]),
            output_index=int(io[2]),
            output_bytes=int(io[3]),
            input_clobbered=io[4] == "1",
            board=b[0],
            core_hz=int(b[1]),
            timer=t[0],
            timer_hz=int(t[1]),
            runtime_version=r[0],
            max_layers=int(r[1]),
        )
        return self._info

    def mem(self) -> MemInfo:
        f = fields(self._expect(self.command("mem"), "m-mem-", "mem"))
        return MemInfo(*(int(v) for v in f[:6]))

    def tensor(self, index: int) -> bytes:
        """The current bytes of tensor ``index`` in the arena (valid for tensors the last inference left intact)."""
        f = fields(self._expect(self.command(f"tensor {index}"), "m-tensor-", "tensor"))
        data = bytes.fromhex(f[2])
        if len(data) != int(f[1]):
            raise ProtocolError(f"tensor {index}: announced {f[1]} bytes, got {len(data)}")
        return data

    def exit(self, code: int = 0) -> None:
        """Ask the firmware to leave (QEMU then exits with ``code``)."""
        self.link.write(frame(f"exit {code}") + b"%")
        try:
            self.read_line(2.0)
        except (DeviceError, ProtocolError):
            pass


def _short(cmd: str) -> str:
    return cmd if len(cmd) <= 40 else cmd[:37] + "..."
