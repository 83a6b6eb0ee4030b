"""Parsers of the firmware's replies, each checking everything it can: a reply that is inconsistent in any way
(a field that is not a number, a negative count, a stamp going backwards, a missing, repeated or extra index, a
total that is not the sum of its parts, a value out of its range, a line the reply should not hold) is a
:class:`~harness.errors.ProtocolError` naming the offending line.

Pure functions over the verified payloads of one reply (the lines before ``m-ready``); the client
(:class:`~harness.transport.protocol.Dut`) sends the commands. firmware/README.md specifies the replies.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.errors import ProtocolError

_FIELD = re.compile(r"\[([^\]]*)\]")
_UINT = re.compile(r"[0-9]{1,20}")
_SINT = re.compile(r"-?[0-9]{1,20}")
_HEX32 = re.compile(r"[0-9A-Fa-f]{8}")
U64_MAX = (1 << 64) - 1
OP_BITS = range(1, 9)  # activation/output widths a kernel may have


def fields(line: str) -> list[str]:
    """The ``[...]`` fields of a reply line, in order."""
    return _FIELD.findall(line)


def _clip(line: str) -> str:
    return line if len(line) <= 160 else line[:157] + "..."


def bad(line: str, why: str) -> ProtocolError:
    """A ProtocolError for one offending reply line."""
    return ProtocolError(f"{why}: {_clip(line)!r}")


def uint(text: str, line: str, what: str, hi: int = U64_MAX) -> int:
    """A decimal count in ``[0, hi]``; ProtocolError naming ``what`` and the line otherwise."""
    if not _UINT.fullmatch(text):
        raise bad(line, f"{what} is not a non-negative decimal integer ({text!r})")
    v = int(text)
    if v > hi:
        raise bad(line, f"{what} {v} is out of range (at most {hi})")
    return v


def hex32(text: str, line: str, what: str) -> int:
    if not _HEX32.fullmatch(text):
        raise bad(line, f"{what} is not 8 hex digits ({text!r})")
    return int(text, 16)


def fields_of(line: str, prefix: str, n: int | Sequence[int]) -> list[str]:
    """The fields of ``prefix[...]-[...]`` with exactly ``n`` of them (or one of the counts in ``n``), and
    nothing between or after them but the ``-`` separators."""
    counts = (n,) if isinstance(n, int) else tuple(n)
    f = fields(line)
    rebuilt = prefix + "-".join(f"[{v}]" for v in f)
    if len(f) not in counts or rebuilt != line:
        want = " or ".join(str(c) for c in counts)
        raise bad(line, f"malformed {prefix.rstrip('-')} line (want {want} [..] fields)")
    return f


def only(lines: Sequence[str], prefix: str, cmd: str) -> str:
    """The one line of the reply that starts with ``prefix``."""
    hits = [ln for ln in lines if ln.startswith(prefix)]
    if len(hits) != 1:
        what = "lacks" if not hits else f"has {len(hits)} of"
        raise ProtocolError(f"reply to '{cmd}' {what} the '{prefix}' line: {[_clip(x) for x in lines[:4]]}")
    return hits[0]


def no_strangers(lines: Sequence[str], prefixes: Sequence[str], cmd: str) -> None:
    """Every line of the reply starts with one of ``prefixes``."""
    for ln in lines:
        if not ln.startswith(tuple(prefixes)):
            raise bad(ln, f"unexpected line in the reply to '{cmd}'")


# --------------------------------------------------------------------------------------------- data classes
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


# --------------------------------------------------------------------------------------------- parsers
def parse_name(lines: Sequence[str]) -> str:
    no_strangers(lines, ["m-name-dut-"], "name")
    return fields_of(only(lines, "m-name-dut-", "name"), "m-name-dut-", 1)[0]


def parse_timestamp(lines: Sequence[str]) -> int:
    no_strangers(lines, ["m-lap-us-"], "timestamp")
    ln = only(lines, "m-lap-us-", "timestamp")
    return uint(ln[len("m-lap-us-") :], ln, "the time stamp")


def parse_results(line: str, n_bytes: int | None = None) -> np.ndarray:
    """``m-results-[v0,v1,...]``: int8 values, ``n_bytes`` of them when known."""
    f = fields_of(line, "m-results-", 1)
    values = f[0].split(",") if f[0] else []
    for v in values:
        if not _SINT.fullmatch(v) or not -128 <= int(v) <= 127:
            raise bad(line, f"result value {v[:20]!r} is not an int8 (-128..127)")
    if n_bytes is not None and len(values) != n_bytes:
        raise bad(line, f"{len(values)} result values, but the output tensor has {n_bytes} bytes")
    return np.array([int(v) for v in values], dtype=np.int8)


def parse_infer(
    lines: Sequence[str], n: int, warmup: int, n_bytes: int | None = None
) -> tuple[InferTiming, np.ndarray]:
    """The reply to ``infer n warmup``: its seven lines in order, stamps non-decreasing, then the results."""
    shape = ["m-warmup-start-", "m-warmup-done", "m-infer-start-", "m-lap-us-", "m-lap-us-", "m-infer-done",
             "m-results-"]  # fmt: skip
    if len(lines) != len(shape) or any(not ln.startswith(p) for ln, p in zip(lines, shape)):
        for ln, p in zip(lines, shape):
            if not ln.startswith(p):
                raise bad(ln, f"unexpected line in the reply to 'infer' (expected '{p}...')")
        raise ProtocolError(
            f"reply to 'infer {n} {warmup}' has {len(lines)} lines, expected {len(shape)}: "
            f"{[_clip(x) for x in lines[-3:]]}"
        )
    if lines[1] != "m-warmup-done" or lines[5] != "m-infer-done":
        raise bad(lines[1] if lines[1] != "m-warmup-done" else lines[5], "malformed infer progress line")
    if uint(lines[0][len(shape[0]) :], lines[0], "the warm-up count") != warmup:
        raise bad(lines[0], f"the board ran another warm-up count than the {warmup} asked for")
    if uint(lines[2][len(shape[2]) :], lines[2], "the inference count") != n:
        raise bad(lines[2], f"the board ran another inference count than the {n} asked for")
    a = uint(lines[3][len("m-lap-us-") :], lines[3], "the first time stamp")
    b = uint(lines[4][len("m-lap-us-") :], lines[4], "the second time stamp")
    if b < a:
        raise bad(lines[4], f"time stamp goes backwards ({a} then {b})")
    return InferTiming(iterations=n, warmup=warmup, lap_us=b - a), parse_results(lines[6], n_bytes)


def parse_layers(lines: Sequence[str], n_layers: int | None = None) -> tuple[list[LayerResult], int]:
    """The reply to ``layers``: one ``m-layer`` line per layer with indices exactly 0..n-1 in order (``n_layers``
    when known), CRCs on every layer or none, then ``m-total`` equal to the sum of the ticks."""
    no_strangers(lines, ["m-layer-", "m-total-"], "layers")
    total_line = only(lines, "m-total-", "layers")
    if lines[-1] != total_line:
        raise bad(total_line, "m-total is not the last line of the reply to 'layers'")
    rows = lines[:-1]
    out: list[LayerResult] = []
    for i, ln in enumerate(rows):
        f = fields_of(ln, "m-layer-", 6)
        index = uint(f[0], ln, "the layer index")
        if index != i:
            why = "repeats" if index < i else "skips to"
            raise bad(ln, f"layer index {index} {why} (expected {i}; indices must be 0..n-1 in order)")
        if n_layers is not None and index >= n_layers:
            raise bad(ln, f"layer index {index} beyond the model's {n_layers} layers")
        crc = hex32(f[2], ln, "the layer CRC") if f[2] else None
        if out and (crc is None) != (out[0].crc32 is None):
            raise bad(ln, "CRC present on some layers and absent on others")
        out.append(
            LayerResult(index, uint(f[1], ln, "the tick count"), crc, f[3], f[4], uint(f[5], ln, "macs"))
        )
    if n_layers is not None and len(out) != n_layers:
        raise bad(total_line, f"reply to 'layers' lists {len(out)} layers, the model has {n_layers}")
    total = uint(fields_of(total_line, "m-total-", 1)[0], total_line, "the total")
    if total != sum(r.ticks for r in out):
        raise bad(
            total_line, f"total {total} is not the sum of the per-layer ticks ({sum(r.ticks for r in out)})"
        )
    return out, total


def parse_patches(
    lines: Sequence[str], expected: tuple[int, int] | None = None, n_tensors: int | None = None
) -> list[PatchStepResult]:
    """The reply to ``patches``: ``m-patches-[P]-[S]-[out]`` (P x S = ``expected`` when known), then one
    ``m-pstep`` per (patch, stage layer), patch-major, each pair exactly once; CRCs on every step or none."""
    no_strangers(lines, ["m-patches-", "m-pstep-"], "patches")
    head = only(lines, "m-patches-", "patches")
    if lines[0] != head:
        raise bad(head, "m-patches is not the first line of the reply to 'patches'")
    f = fields_of(head, "m-patches-", 3)
    n_patches, n_stage = uint(f[0], head, "the patch count"), uint(f[1], head, "the stage length")
    stage_out = uint(f[2], head, "the stage output tensor")
    if n_patches < 1 or n_stage < 1:
        raise bad(head, "a patch-based model has at least one patch and one stage layer")
    if expected is not None and (n_patches, n_stage) != tuple(expected):
        raise bad(head, f"the board runs {n_patches} patches x {n_stage} stage layers, expected "
                        f"{expected[0]} x {expected[1]}")  # fmt: skip
    if n_tensors is not None and stage_out >= n_tensors:
        raise bad(head, f"stage output tensor {stage_out} beyond the model's {n_tensors} tensors")
    out: list[PatchStepResult] = []
    for k, ln in enumerate(lines[1:]):
        if k >= n_patches * n_stage:
            raise bad(ln, f"more than the announced {n_patches} x {n_stage} patch steps")
        g = fields_of(ln, "m-pstep-", 8)
        p, j = uint(g[0], ln, "the patch index"), uint(g[1], ln, "the step index")
        if (p, j) != divmod(k, n_stage):
            raise bad(ln, f"patch step ({p}, {j}) out of order (expected {divmod(k, n_stage)}; each (patch, step) "
                          "exactly once, patch-major)")  # fmt: skip
        crc = hex32(g[4], ln, "the step CRC") if g[4] else None
        if out and (crc is None) != (out[0].crc32 is None):
            raise bad(ln, "CRC present on some patch steps and absent on others")
        a_bits = uint(g[5], ln, "a_bits")
        o_bits = uint(g[6], ln, "o_bits")
        if a_bits not in OP_BITS or o_bits not in OP_BITS:
            raise bad(ln, f"bit widths a={a_bits} o={o_bits} outside 1..8")
        out.append(PatchStepResult(p, j, uint(g[2], ln, "the kernel ticks"), uint(g[3], ln, "the copy ticks"), crc,
                                   a_bits, o_bits, uint(g[7], ln, "macs")))  # fmt: skip
    if len(out) != n_patches * n_stage:
        raise ProtocolError(
            f"reply to 'patches': announced {n_patches} x {n_stage} steps, got {len(out)} m-pstep lines"
        )
    return out


def parse_model(lines: Sequence[str]) -> ModelInfo:
    """The reply to ``model``: one line each of m-model, m-io, m-board, m-timer, m-runtime, all in range."""
    prefixes = ["m-model-", "m-io-", "m-board-", "m-timer-", "m-runtime-"]
    no_strangers(lines, prefixes, "model")
    m, io, b, t, r = (only(lines, p, "model") for p in prefixes)
    fm, fio = fields_of(m, "m-model-", 6), fields_of(io, "m-io-", 5)
    fb, ft, fr = fields_of(b, "m-board-", 2), fields_of(t, "m-timer-", 2), fields_of(r, "m-runtime-", 2)
    n_layers, n_tensors = uint(fm[2], m, "n_layers"), uint(fm[3], m, "n_tensors")
    max_layers = uint(fr[1], r, "the layer limit")
    if n_layers > max_layers:
        raise bad(m, f"{n_layers} layers, more than the runtime's limit of {max_layers}")
    if n_tensors < 1:
        raise bad(m, "a model without tensors")
    in_idx, out_idx = uint(fio[0], io, "the input index"), uint(fio[2], io, "the output index")
    if in_idx >= n_tensors or out_idx >= n_tensors:
        raise bad(io, f"input/output tensor index beyond the model's {n_tensors} tensors")
    if fio[4] not in ("0", "1"):
        raise bad(io, f"input-clobbered flag {fio[4]!r} is not 0 or 1")
    core_hz, timer_hz = uint(fb[1], b, "core_hz"), uint(ft[1], t, "timer_hz")
    if core_hz == 0 or timer_hz == 0:
        raise bad(b if core_hz == 0 else t, "a clock of 0 Hz")
    return ModelInfo(
        name=fm[0], hash=hex32(fm[1], m, "the model hash"), n_layers=n_layers, n_tensors=n_tensors,
        arena_size=uint(fm[4], m, "the arena size"), scratch_size=uint(fm[5], m, "the scratch size"),
        input_index=in_idx, input_bytes=uint(fio[1], io, "the input size"), output_index=out_idx,
        output_bytes=uint(fio[3], io, "the output size"), input_clobbered=fio[4] == "1", board=fb[0],
        core_hz=core_hz, timer=ft[0], timer_hz=timer_hz, runtime_version=fr[0], max_layers=max_layers,
    )  # fmt: skip


def parse_mem(lines: Sequence[str]) -> MemInfo:
    """``m-mem-[static]-[stack size]-[stack used]-[arena]-[scratch]`` and, from newer firmware, ``-[arena used]``;
    stack use within the stack, arena use within the arena."""
    no_strangers(lines, ["m-mem-"], "mem")
    ln = only(lines, "m-mem-", "mem")
    f = fields_of(ln, "m-mem-", (5, 6))
    names = ("static_ram", "stack_size", "stack_used", "arena_size", "scratch_size", "arena_used")
    v = [uint(x, ln, name) for x, name in zip(f, names)]
    mem = MemInfo(*v)
    if mem.stack_used > mem.stack_size:
        raise bad(ln, f"stack use {mem.stack_used} exceeds the stack of {mem.stack_size} bytes")
    if mem.arena_used is not None and mem.arena_used > mem.arena_size:
        raise bad(ln, f"arena use {mem.arena_used} exceeds the arena of {mem.arena_size} bytes")
    return mem


def parse_tensor(lines: Sequence[str], index: int) -> bytes:
    """``m-tensor-[I]-[bytes]-[hex]`` for tensor ``index``, its hex exactly ``bytes`` long."""
    no_strangers(lines, ["m-tensor-"], "tensor")
    ln = only(lines, "m-tensor-", "tensor")
    f = fields_of(ln, "m-tensor-", 3)
    if uint(f[0], ln, "the tensor index") != index:
        raise bad(ln, f"reply names another tensor than {index}")
    n = uint(f[1], ln, "the byte count")
    try:
        data = bytes.fromhex(f[2]) if re.fullmatch(r"[0-9A-Fa-f]*", f[2]) else None
    except ValueError:
        data = None
    if data is None:
        raise bad(ln, "tensor data is not an even number of hex digits")
    if len(data) != n:
        raise bad(ln, f"tensor {index}: announced {n} bytes, got {len(data)}")
    return data


def parse_crc(lines: Sequence[str], on: bool) -> None:
    no_strangers(lines, ["m-crc-"], "crc")
    ln = only(lines, "m-crc-", "crc")
    if fields_of(ln, "m-crc-", 1)[0] != str(int(on)):
        raise bad(ln, f"the board did not switch CRCs {'on' if on else 'off'}")


def parse_load_start(lines: Sequence[str], n_bytes: int) -> None:
    """``m-[Expecting N bytes]`` for ``db load N``."""
    no_strangers(lines, ["m-[Expecting "], "db load")
    ln = only(lines, "m-[Expecting ", "db load")
    m = re.fullmatch(r"m-\[Expecting ([0-9]{1,20}) bytes\]", ln)
    if m is None or int(m.group(1)) != n_bytes:
        raise bad(ln, f"the board does not expect the {n_bytes} bytes announced")


def parse_load_chunk(lines: Sequence[str], last: bool) -> None:
    """A ``db HEX`` chunk: nothing, or ``m-load-done`` after the last one (and only then)."""
    no_strangers(lines, ["m-load-done"], "db")
    if any(ln != "m-load-done" for ln in lines) or len(lines) > 1:
        raise bad(lines[-1], "malformed reply to a 'db' data chunk")
    if last and not lines:
        raise ProtocolError("the board did not confirm the input load (no m-load-done after the last chunk)")
    if lines and not last:
        raise bad(lines[0], "the board reported the input complete before its last chunk")
