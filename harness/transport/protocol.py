"""Client for the firmware's serial protocol (MLPerf Tiny / EEMBC runner style plus tinyhil's extensions).

Wire format (firmware/README.md has the full specification): the host sends ``command*XXXX%``; the board answers
with lines ``payload*XXXX\\r\\n`` and ends every command with ``m-ready``. ``XXXX`` is the CRC-16/CCITT-FALSE of the
payload (``binascii.crc_hqx(payload, 0xFFFF)``) in upper-case hex, so every corrupted, truncated or garbage line is
detected. Errors are ``e-[...]`` lines.

Nothing the board sends can hold the host: every command has one overall deadline and a cap on the lines and bytes
of its reply, and every reply is validated (:mod:`harness.transport.replies`) before anything is returned.
"""

from __future__ import annotations

import binascii
import re
import time
from pathlib import Path

import numpy as np

from harness.errors import DeviceError, ProtocolError
from harness.transport.link import LinkTimeout, Transport
from harness.transport.replies import (
    InferTiming,
    LayerResult,
    MemInfo,
    ModelInfo,
    PatchStepResult,
    fields,
    parse_crc,
    parse_infer,
    parse_layers,
    parse_load_chunk,
    parse_load_start,
    parse_mem,
    parse_model,
    parse_name,
    parse_patches,
    parse_results,
    parse_tensor,
    parse_timestamp,
)

__all__ = [
    "Dut", "InferTiming", "LayerResult", "MemInfo", "ModelInfo", "PatchStepResult", "fields", "frame", "line_crc",
    "parse_line",
]  # fmt: skip

_CRC_SUFFIX = re.compile(rb"[0-9A-Fa-f]{4}")
MAX_REPLY_LINES = (
    20_000  # > TH_MAX_LAYERS layers and any patch schedule (patches x stage layers) of a real model
)
#: The file an emulated board reads its input from (in the emulator's private working folder).
INPUT_FILE = "input.bin"
MAX_REPLY_BYTES = 4 << 20  # > the longest legal line (a tensor dump, link.MAX_LINE) plus the rest of a reply


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
    if not _CRC_SUFFIX.fullmatch(suffix):
        raise ProtocolError(f"line with a malformed checksum: {raw[:200]!r}")
    want = int(suffix, 16)
    got = line_crc(payload)
    if got != want:
        raise ProtocolError(f"line checksum mismatch (sent {want:04X}, computed {got:04X}): {raw[:200]!r}")
    try:
        return payload.decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError(f"non-ASCII line: {raw[:200]!r}") from None


class Dut:
    """Device under test: one command at a time over a :class:`Transport`.

    ``timeout`` is the overall deadline of one command (its whole reply, up to ``m-ready``); a reply is capped at
    ``max_reply_lines`` lines and ``max_reply_bytes`` bytes. ``expect_layers`` / ``expect_patches`` (patches,
    stage layers) / ``expect_hash``: what the deployed model has, when the caller knows it; ``model%`` and the
    ``layers%`` / ``patches%`` replies are then checked against it (without it, ``layers%`` is checked against the
    layer count the board itself reported in ``model%``).
    """

    def __init__(
        self,
        link: Transport,
        timeout: float = 60.0,
        chunk_bytes: int = 2048,
        retries: int = 3,
        host_dir: str | Path | None = None,
        host_min_bytes: int = 512,
        *,
        max_reply_lines: int = MAX_REPLY_LINES,
        max_reply_bytes: int = MAX_REPLY_BYTES,
        expect_layers: int | None = None,
        expect_patches: tuple[int, int] | None = None,
        expect_hash: int | None = None,
    ):
        """``host_dir``: a folder the board can read directly (QEMU semihosting); inputs of at least
        ``host_min_bytes`` then travel as a file (``db host PATH%``) instead of hex over the UART."""
        self.link = link
        self.host_dir = Path(host_dir) if host_dir is not None else None
        self.host_min_bytes = host_min_bytes
        self.timeout = timeout
        self.chunk_bytes = chunk_bytes
        self.retries = retries
        self.max_reply_lines = max_reply_lines
        self.max_reply_bytes = max_reply_bytes
        self.expect_layers = expect_layers
        self.expect_patches = expect_patches
        self.expect_hash = expect_hash
        self._info: ModelInfo | None = None
        self._last_input: bytes | None = None
        self._input_fresh = False
        self._crc_on: bool | None = None
        self.last_timing: InferTiming | None = None

    def expect(
        self,
        n_layers: int | None = None,
        patches: tuple[int, int] | None = None,
        model_hash: int | None = None,
    ) -> None:
        """Tell the client what the deployed model has (from the deployment artifact); see the class doc."""
        self.expect_layers, self.expect_patches, self.expect_hash = n_layers, patches, model_hash
        if self._info is not None:
            self._check_model(self._info)

    @property
    def _url(self) -> str:
        return str(getattr(self.link, "url", "the board"))

    # ------------------------------------------------------------ plumbing
    def read_line(self, timeout: float | None = None) -> str:
        """The next verified line within ``timeout`` seconds: one deadline, which the empty lines skipped on the
        way (e.g. before a fault report) do not restart."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        blank = 0
        while True:
            try:
                raw = self.link.read_line(max(0.0, deadline - time.monotonic()))
            except LinkTimeout:
                if blank:
                    raise ProtocolError(
                        f"only empty lines ({blank}) from {self._url} for {limit:g} s, no reply"
                    ) from None
                raise
            if raw.strip():
                return parse_line(raw)
            blank += 1
            if time.monotonic() >= deadline:
                raise ProtocolError(f"only empty lines ({blank}) from {self._url} for {limit:g} s, no reply")

    def command(self, cmd: str, timeout: float | None = None, *, max_lines: int | None = None) -> list[str]:
        """Send ``cmd`` and return the reply lines before ``m-ready``; DeviceError on an ``e-[...]`` reply.

        The whole reply must arrive within ``timeout`` (default: the client's) and stay within ``max_lines``
        (default ``max_reply_lines``) lines and ``max_reply_bytes`` bytes, else ProtocolError naming the last line.
        """
        limit = self.timeout if timeout is None else timeout
        cap = self.max_reply_lines if max_lines is None else max_lines
        deadline = time.monotonic() + limit
        self.link.write(frame(cmd) + b"%")
        lines: list[str] = []
        n_lines = n_bytes = 0
        last_rx = time.monotonic()
        while True:
            now = time.monotonic()
            left = deadline - now
            last = f"; last line: {lines[-1][:120]!r}" if lines else ""
            try:
                if left <= 0:
                    raise LinkTimeout("deadline")
                raw = self.link.read_line(left)
            except LinkTimeout:
                # Silence: nothing for a while (or ever). Lines still coming at the deadline: a babbling board.
                if n_lines and time.monotonic() - last_rx < min(1.0, limit / 2):
                    raise ProtocolError(
                        f"reply to '{_short(cmd)}' not finished within {limit:g} s: {n_lines} lines and no "
                        f"m-ready{last or ' (only empty lines)'}"
                    ) from None
                after = f" (the board went silent after {n_lines} lines{last})" if n_lines else ""
                raise LinkTimeout(
                    f"no reply to '{_short(cmd)}' from {self._url} within {limit:g} s{after}"
                ) from None
            last_rx = time.monotonic()
            n_lines += 1
            n_bytes += len(raw) + 2
            if n_lines > cap + 1 or n_bytes > self.max_reply_bytes:  # + 1: m-ready itself
                raise ProtocolError(
                    f"reply to '{_short(cmd)}' exceeds {min(n_lines - 1, cap)} lines / {n_bytes} bytes without "
                    f"m-ready (at most {cap} lines and {self.max_reply_bytes} bytes); last line: {raw[:120]!r}"
                )
            if not raw.strip():
                continue
            line = parse_line(raw)
            if line == "m-ready":
                break
            if line.startswith("e-[fault"):
                raise DeviceError(f"the board faulted while running '{_short(cmd)}': {line}")
            lines.append(line)
        errors = [ln for ln in lines if ln.startswith("e-")]
        if errors:
            raise DeviceError(f"the board rejected '{_short(cmd)}': {'; '.join(errors)}")
        return lines

    def sync(self, timeout: float = 10.0, banner_wait: float = 2.0) -> str:
        """Get past the boot banner and any noise, and return the board's name, all within ``timeout`` seconds.

        The banner (``m-init-done``, ``m-ready``) is awaited first: a UART that is not enabled yet drops what it
        receives (QEMU's STM32 USART does). A board already running (real silicon) shows no banner, so after
        ``banner_wait`` seconds without a line (or half the timeout of noise) ``name%`` is sent, and re-sent every
        second until the deadline.
        """
        start = time.monotonic()
        deadline = start + timeout
        banner_end = min(deadline, start + max(banner_wait, timeout / 2))
        seen = _Seen()
        try:
            while True:
                line = self._read_noisy(min(banner_wait, banner_end - time.monotonic()), seen)
                if (
                    line == "m-init-done"
                    and self._read_noisy(banner_end - time.monotonic(), seen) == "m-ready"
                ):
                    break
        except LinkTimeout:
            pass
        sent = 0
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise DeviceError(f"the board did not answer 'name%' within {timeout:g} s{seen.describe()}")
            self.link.write(frame("name") + b"%")
            sent += 1
            resend = min(deadline, now + 1.0)
            name = None
            try:
                while True:
                    line = self._read_noisy(resend - time.monotonic(), seen)
                    if line.startswith("m-name-dut-"):
                        name = fields(line)[0] if fields(line) else line
                    elif line == "m-ready" and name is not None:
                        break
            except LinkTimeout:
                continue
            if sent > 1:  # replies to the earlier, late `name%` must not answer the next command
                self._drain(0.3, deadline, seen)
            return name

    def _read_noisy(self, timeout: float, seen: _Seen | None = None) -> str:
        """A verified line within ``timeout``, skipping garbled ones (used only while synchronising)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise LinkTimeout(f"only garbled lines for {timeout:g} s")
            try:
                line = self.read_line(left)
            except ProtocolError as e:
                if seen is not None:
                    seen.garbled += 1
                    seen.last = str(e)
                continue
            if seen is not None:
                seen.lines += 1
                seen.last = line
            if line.startswith("e-[fault"):
                raise DeviceError(f"the board faulted during start-up: {line}")
            return line

    def _drain(self, quiet: float, until: float, seen: _Seen | None = None) -> None:
        """Skip lines until ``quiet`` seconds pass without one, or the time ``until`` is reached."""
        try:
            while time.monotonic() < until:
                self._read_noisy(min(quiet, until - time.monotonic()), seen)
        except LinkTimeout:
            pass

    # ------------------------------------------------------------ EEMBC commands
    def name(self) -> str:
        return parse_name(self.command("name"))

    def timestamp_us(self) -> int:
        return parse_timestamp(self.command("timestamp"))

    def load_input(self, data: bytes | np.ndarray) -> None:
        """Put ``data`` (exactly the input tensor's packed bytes) into the model's input tensor.

        Hex over the UART (``db load N%`` then ``db HEX%`` chunks, decoded into the tensor as they arrive); or, on a
        board with a ``host_dir``, a file the firmware reads in one go (the UART of an emulator moves a few kB/s).
        """
        data = bytes(np.asarray(data).tobytes()) if isinstance(data, np.ndarray) else bytes(data)
        if self.host_dir is not None and len(data) >= self.host_min_bytes:
            # The emulator runs in host_dir and the firmware takes only a plain file name (semihosting reaches
            # nothing outside that private folder).
            (self.host_dir / INPUT_FILE).write_bytes(data)
            parse_load_chunk(self.command(f"db host {INPUT_FILE}"), last=True)
            self._last_input = data
            self._input_fresh = True
            return
        parse_load_start(self.command(f"db load {len(data)}"), len(data))
        for off in range(0, len(data), self.chunk_bytes):
            chunk = data[off : off + self.chunk_bytes]
            for attempt in range(self.retries + 1):
                try:
                    lines = self.command("db " + chunk.hex())
                    break
                except DeviceError as exc:
                    if "checksum" not in str(exc) or attempt == self.retries:
                        raise
            parse_load_chunk(lines, last=off + self.chunk_bytes >= len(data))
        if not data:
            raise ProtocolError("the board did not confirm the 0-byte input load (no m-load-done)")
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
        n_bytes = self._info.output_bytes if self._info is not None else None
        timing, out = parse_infer(self.command(f"infer {n} {warmup}", timeout), n, warmup, n_bytes)
        self.last_timing = timing
        return out

    def results(self) -> np.ndarray:
        lines = self.command("results")
        if len(lines) != 1:
            raise ProtocolError(f"reply to 'results' has {len(lines)} lines, expected one m-results line")
        return parse_results(lines[0], self._info.output_bytes if self._info is not None else None)

    # ------------------------------------------------------------ tinyhil extensions
    def set_crc(self, on: bool) -> None:
        """Turn per-layer output CRC-32s on or off (computed outside the timed region)."""
        if self._crc_on is not on:
            parse_crc(self.command(f"crc {int(bool(on))}"), bool(on))
            self._crc_on = bool(on)

    def _n_layers(self) -> int | None:
        if self.expect_layers is not None:
            return self.expect_layers
        return self._info.n_layers if self._info is not None else None

    def _layers_reply(self) -> tuple[list[LayerResult], int]:
        n = self._n_layers()
        # The cap leaves room past n + 1 lines, so that an extra layer is named by the parser, not cut off.
        return parse_layers(self.command("layers", max_lines=None if n is None else n + 16), n)

    def layers(self) -> list[LayerResult]:
        """Per-layer ticks (and CRC-32s when enabled) of the last inference: exactly the model's layers."""
        return self._layers_reply()[0]

    def total_ticks(self) -> int:
        """Sum of the per-layer ticks of the last inference (``m-total``, checked against the rows)."""
        return self._layers_reply()[1]

    def patches(self, expected: tuple[int, int] | None = None) -> list[PatchStepResult]:
        """Per (patch, stage layer) ticks and CRCs of the last inference of a patch-based model; ``expected``
        (patches, stage layers), default ``expect_patches``, is checked when given."""
        exp = expected if expected is not None else self.expect_patches
        cap = None if exp is None else exp[0] * exp[1] + 16
        n_tensors = self._info.n_tensors if self._info is not None else None
        return parse_patches(self.command("patches", max_lines=cap), exp, n_tensors)

    def model_info(self, refresh: bool = False) -> ModelInfo:
        """The ``model%`` reply (cached); DeviceError if it is not the model the caller said it deployed."""
        if self._info is not None and not refresh:
            return self._info
        info = parse_model(self.command("model"))
        self._check_model(info)
        self._info = info
        return info

    def _check_model(self, info: ModelInfo) -> None:
        diffs = []
        if self.expect_layers is not None and info.n_layers != self.expect_layers:
            diffs.append(f"{info.n_layers} layers (expected {self.expect_layers})")
        if self.expect_hash is not None and info.hash != self.expect_hash:
            diffs.append(f"hash {info.hash:08X} (expected {self.expect_hash:08X})")
        if diffs:
            diff = ", ".join(diffs)
            raise DeviceError(
                f"{self._url}: the firmware runs another model ({info.name!r}: {diff}); rebuild and flash the "
                "deployed model (stale image?)"
            )

    def mem(self) -> MemInfo:
        return parse_mem(self.command("mem"))

    def tensor(self, index: int) -> bytes:
        """The current bytes of tensor ``index`` in the arena (valid for tensors the last inference left intact)."""
        return parse_tensor(self.command(f"tensor {index}"), index)

    def exit(self, code: int = 0) -> None:
        """Ask the firmware to leave (QEMU then exits with ``code``)."""
        self.link.write(frame(f"exit {code}") + b"%")
        try:
            self.read_line(2.0)
        except (DeviceError, ProtocolError):
            pass


class _Seen:
    """What arrived while synchronising, for the error message when no name came."""

    def __init__(self) -> None:
        self.lines = 0
        self.garbled = 0
        self.last = ""

    def describe(self) -> str:
        if not self.lines and not self.garbled:
            return " (it sent nothing)"
        return (
            f" (it sent {self.lines} other lines and {self.garbled} garbled ones; last: {self.last[:120]!r})"
        )


def _short(cmd: str) -> str:
    return cmd if len(cmd) <= 40 else cmd[:37] + "..."
