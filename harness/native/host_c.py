"""Run the firmware's C kernels on the host through ctypes, for fast bit-exact checks against the reference.

``compile_kernels`` builds ``firmware/runtime/kernels/**/*.c`` with the host C compiler into a shared library;
``HostKernels.run_layer`` packs a layer's inputs into an arena exactly as the firmware would, calls the kernel
that the code generator would pick (or a named one), and unpacks the output. Guard bytes around the output and
after the scratch buffer catch out-of-bounds writes, and the output region starts as random garbage so a kernel
that fails to overwrite a byte (or a padding bit) is caught too.

``scratch_bytes`` asks the firmware's own ``th_<op>_scratch_bytes`` (defined beside each op's kernels) how much
scratch a layer needs; the arena planner (``harness.memory.arena``) sizes the firmware's scratch buffer with
it. ``kernel_library`` compiles the library once per content of the kernel sources and caches it on disk, so
planning costs one compile per firmware edit, not one per call.
"""

from __future__ import annotations

import ctypes as C
import functools
import hashlib
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness import ops
from harness.errors import BuildError, MissingDependencyError
from harness.ir.model import IntLayer, IntModel
from harness.ir.packing import pack, packed_weights, unpack
from harness.ops import OPS

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware" / "runtime"
GUARD = 64
#: Where kernel_library keeps compiled libraries, one folder per content hash.
CACHE_DIR = Path(__file__).resolve().parents[2] / ".cache" / "tinyhil" / "host-kernels"
CACHE_ENTRIES = 8
_I32P = C.POINTER(C.c_int32)


class ThTensor(C.Structure):
    _fields_ = [
        ("offset", C.c_uint32),
        ("h", C.c_uint16),
        ("w", C.c_uint16),
        ("c", C.c_uint16),
        ("bits", C.c_uint8),
        ("zero_point", C.c_int8),
    ]


class ThLayer(C.Structure):
    _fields_ = [
        ("fn", C.c_void_p),
        ("name", C.c_char_p),
        ("op", C.c_uint8),
        ("a_bits", C.c_uint8),
        ("w_bits", C.c_uint8),
        ("o_bits", C.c_uint8),
        ("kh", C.c_uint8),
        ("kw", C.c_uint8),
        ("stride", C.c_uint8),
        ("pad_t", C.c_uint8),
        ("pad_l", C.c_uint8),
        ("pad_b", C.c_uint8),
        ("pad_r", C.c_uint8),
        ("in_", C.c_int16),
        ("in2", C.c_int16),
        ("out", C.c_int16),
        ("act_min", C.c_int32),
        ("act_max", C.c_int32),
        ("weights", C.c_void_p),
        ("bias", _I32P),
        ("mult", _I32P),
        ("shift", _I32P),
        ("left_shift", C.c_int32),
        ("in1_mult", C.c_int32),
        ("in1_shift", C.c_int32),
        ("in2_mult", C.c_int32),
        ("in2_shift", C.c_int32),
        ("out_mult", C.c_int32),
        ("out_shift", C.c_int32),
        ("macs", C.c_uint32),
    ]


_KERNEL = C.CFUNCTYPE(
    None,
    C.POINTER(ThLayer),
    C.POINTER(ThTensor),
    C.POINTER(ThTensor),
    C.POINTER(ThTensor),
    C.POINTER(C.c_uint8),
    C.c_void_p,
)

# A probe compiled into the library reports the C layout, so a drift between th_model.h and the ctypes mirror
# fails loudly instead of passing garbage to the kernels.
_PROBE = r"""
#include <stddef.h>
#include "th_model.h"
unsigned th_probe_layout(unsigned i) {
    const unsigned v[] = {sizeof(th_layer_t), offsetof(th_layer_t, in), offsetof(th_layer_t, act_min),
                          offsetof(th_layer_t, weights), offsetof(th_layer_t, left_shift),
                          offsetof(th_layer_t, macs), sizeof(th_tensor_t)};
    return i < sizeof(v) / sizeof(v[0]) ? v[i] : 0u;
}
"""


def compile_kernels(
    out_dir: Path | str,
    *,
    emulate_dsp: bool = False,
    cc: str | None = None,
    extra_flags: tuple[str, ...] = (),
) -> Path:
    """Compile every kernel into ``out_dir/libthkernels[_dsp].so`` (``-O2 -fPIC``); returns its path.

    ``emulate_dsp`` defines TH_EMULATE_DSP: the SIMD code paths run through portable instruction emulations.
    """
    cc = cc or os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise MissingDependencyError(f"host C compiler {cc!r} not found: apt-get install gcc")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    probe = out_dir / "probe.c"
    probe.write_text(_PROBE)
    lib = out_dir / _lib_name(emulate_dsp)
    srcs = [str(p) for p in kernel_sources()]
    cmd = [
        cc,
        "-std=c99",
        "-O2",
        "-fPIC",
        "-shared",
        "-Wall",
        "-Wextra",
        *extra_flags,
        f"-I{FIRMWARE / 'include'}",
        *(["-DTH_EMULATE_DSP"] if emulate_dsp else []),
        *srcs,
        str(probe),
        "-o",
        str(lib),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if res.returncode != 0:
        raise BuildError(f"host kernel build failed:\n{' '.join(cmd)}\n{res.stderr}")
    return lib


def _lib_name(emulate_dsp: bool) -> str:
    return "libthkernels_dsp.so" if emulate_dsp else "libthkernels.so"


def kernel_sources() -> list[Path]:
    """The kernels' C files: kernels/ and its core folders (kernels/mm/)."""
    return sorted((FIRMWARE / "kernels").rglob("*.c"))


def _library_key(cc: str, emulate_dsp: bool) -> str:
    """Hash of what the library is built from: compiler, flags, probe, kernel sources and headers."""
    h = hashlib.sha256()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False).stdout
    h.update(f"{version}\0{emulate_dsp}\0{_PROBE}\0".encode())
    files = sorted((FIRMWARE / "kernels").rglob("*")) + sorted((FIRMWARE / "include").glob("*.h"))
    for f in files:
        if f.is_file():
            h.update(str(f.relative_to(FIRMWARE)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:24]


_LIBRARY_LOCK = threading.Lock()  # threads of one process (bench jobs) build the library once


def kernel_library(emulate_dsp: bool = False) -> HostKernels:
    """The kernel library for the current kernel sources, compiled at most once per content (cached under
    ``CACHE_DIR``; concurrent processes may both compile, the first to finish is kept)."""
    with _LIBRARY_LOCK:
        return _kernel_library(emulate_dsp)


@functools.cache
def _kernel_library(emulate_dsp: bool) -> HostKernels:
    cc = os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise MissingDependencyError(f"host C compiler {cc!r} not found: apt-get install gcc")
    entry = CACHE_DIR / _library_key(cc, emulate_dsp)
    lib = entry / _lib_name(emulate_dsp)
    if not lib.is_file():
        tmp = entry.with_name(f"{entry.name}.tmp{os.getpid()}")
        compile_kernels(tmp, emulate_dsp=emulate_dsp, cc=cc)
        try:
            tmp.rename(entry)
        except OSError:  # another process stored it first
            shutil.rmtree(tmp, ignore_errors=True)
        _prune(CACHE_DIR, CACHE_ENTRIES)
    return HostKernels(lib)


def _prune(root: Path, keep: int) -> None:
    entries = sorted(
        (d for d in root.iterdir() if d.is_dir() and ".tmp" not in d.name),
        key=lambda d: d.stat().st_mtime,
        reverse=True,
    )
    for old in entries[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def scratch_bytes(model: IntModel, layer: IntLayer) -> int:
    """Scratch bytes the firmware's kernels for ``layer`` need: its op's ``th_<op>_scratch_bytes``."""
    return kernel_library().scratch_bytes(model, layer)


def _c_layer(model: IntModel, layer: IntLayer) -> ThLayer:
    """``layer`` as th_layer_t without its arrays (weights, bias, multipliers, shifts: NULL)."""
    L = ThLayer(
        fn=None,
        name=layer.name.encode(),
        op=0,
        a_bits=model.a_bits(layer),
        w_bits=layer.w_bits,
        o_bits=model.o_bits(layer),
        kh=layer.kernel[0],
        kw=layer.kernel[1],
        stride=layer.stride,
        pad_t=layer.padding[0],
        pad_l=layer.padding[1],
        pad_b=layer.padding[2],
        pad_r=layer.padding[3],
        in_=0,
        in2=1 if len(layer.inputs) > 1 else -1,
        out=len(layer.inputs),
        act_min=layer.act_min,
        act_max=layer.act_max,
        macs=min(ops.macs(model, layer), 0xFFFFFFFF),
    )
    p = layer.add
    if p is not None:
        L.left_shift, L.in1_mult, L.in1_shift = p.left_shift, p.in1_multiplier, p.in1_shift
        L.in2_mult, L.in2_shift, L.out_mult, L.out_shift = (
            p.in2_multiplier,
            p.in2_shift,
            p.out_multiplier,
            p.out_shift,
        )
    return L


@dataclass
class LayerRun:
    """Output of one kernel call: unpacked values, the raw packed bytes, and how far into its scratch buffer the
    kernel wrote (one past the highest byte that changed; a byte rewritten with the fill pattern is not seen)."""

    values: np.ndarray
    raw: bytes
    scratch_used: int = 0


def _i32(arr) -> C.Array | None:
    if arr is None:
        return None
    a = np.ascontiguousarray(np.asarray(arr, dtype=np.int32).reshape(-1))
    return (C.c_int32 * a.size)(*a.tolist())


class HostKernels:
    """The kernel library loaded through ctypes."""

    def __init__(self, lib_path: Path | str):
        self.lib = C.CDLL(str(lib_path))
        self.lib.th_probe_layout.restype = C.c_uint
        self.lib.th_probe_layout.argtypes = [C.c_uint]
        want = [
            C.sizeof(ThLayer),
            ThLayer.in_.offset,
            ThLayer.act_min.offset,
            ThLayer.weights.offset,
            ThLayer.left_shift.offset,
            ThLayer.macs.offset,
            C.sizeof(ThTensor),
        ]
        got = [self.lib.th_probe_layout(i) for i in range(len(want))]
        if got != want:
            raise BuildError(f"ctypes mirror of th_model.h is out of date: C layout {got}, ctypes {want}")

    def symbol(self, name: str):
        """The kernel function ``name`` as a ctypes callable."""
        return _KERNEL((name, self.lib))

    def scratch_bytes(self, model: IntModel, layer: IntLayer) -> int:
        """``th_<op>_scratch_bytes`` of ``layer`` (its geometry, bits and tensors; no weights needed)."""
        if layer.op not in OPS:
            raise ValueError(f"no th_<op>_scratch_bytes for op {layer.op!r}")
        fn = getattr(self.lib, f"th_{layer.op}_scratch_bytes")
        fn.restype = C.c_uint32
        fn.argtypes = [C.POINTER(ThLayer), C.POINTER(ThTensor), C.POINTER(ThTensor)]
        ins, outs = model.in_spec(layer), model.out_spec(layer)
        t_in = ThTensor(0, *ins.shape, ins.bits, ins.zero_point)
        t_out = ThTensor(0, *outs.shape, outs.bits, outs.zero_point)
        return int(fn(C.byref(_c_layer(model, layer)), C.byref(t_in), C.byref(t_out)))

    def run_layer(
        self,
        model: IntModel,
        layer: IntLayer,
        values: dict[str, np.ndarray],
        *,
        kernel: str | None = None,
        variant: str = "opt",
        scratch_bytes: int | None = None,
        rng: np.random.Generator | None = None,
    ) -> LayerRun:
        """Run ``layer``'s kernel on ``values`` of its inputs; raises AssertionError on a guard violation."""
        rng = rng or np.random.default_rng(0)
        name = kernel or ops.kernel_symbol(layer.op, model.a_bits(layer), layer.w_bits, variant)
        fn = self.symbol(name)
        specs = [model.tensors[t] for t in layer.inputs] + [model.out_spec(layer)]
        # layout: [guard][in][guard][in2][guard][out][guard], every region 4-aligned as the planner does
        offsets, pos = [], GUARD
        for s in specs:
            offsets.append(pos)
            pos += (s.nbytes + 3) // 4 * 4 + GUARD
        arena_np = rng.integers(0, 256, size=pos, dtype=np.uint8)
        for s, off in zip(specs[:-1], offsets[:-1]):
            arena_np[off : off + s.nbytes] = np.frombuffer(pack(values[s.name], s.bits), dtype=np.uint8)
        before = arena_np.copy()
        arena = (C.c_uint8 * pos).from_buffer(arena_np)
        tensors = [ThTensor(off, *s.shape, s.bits, s.zero_point) for s, off in zip(specs, offsets)]
        sbytes = self.scratch_bytes(model, layer) if scratch_bytes is None else scratch_bytes
        scratch_np = np.full(sbytes + GUARD, 0x5A, dtype=np.uint8)
        scratch = (C.c_uint8 * scratch_np.size).from_buffer(scratch_np)
        w = packed_weights(layer)
        wbuf = C.create_string_buffer(w, max(len(w), 1))
        keep = [_i32(layer.bias), _i32(layer.multiplier), _i32(layer.shift)]
        L = _c_layer(model, layer)
        L.weights = C.cast(wbuf, C.c_void_p)
        L.bias, L.mult, L.shift = (C.cast(k, _I32P) if k is not None else None for k in keep)
        t_in = tensors[0]
        t_in2 = tensors[1] if len(layer.inputs) > 1 else None
        t_out = tensors[-1]
        fn(
            C.byref(L),
            C.byref(t_in),
            C.byref(t_in2) if t_in2 is not None else None,
            C.byref(t_out),
            arena,
            C.cast(scratch, C.c_void_p),
        )
        out_spec, off = specs[-1], offsets[-1]
        # everything but the output bytes must be untouched; the scratch guard too
        mask = np.ones(pos, dtype=bool)
        mask[off : off + out_spec.nbytes] = False
        if not np.array_equal(arena_np[mask], before[mask]):
            bad = np.flatnonzero(mask & (arena_np != before))
            raise AssertionError(
                f"{name} wrote outside its output tensor (arena bytes {bad[:8].tolist()} ...)"
            )
        if not (scratch_np[sbytes:] == 0x5A).all():
            raise AssertionError(f"{name} wrote past its {sbytes} scratch bytes")
        raw = bytes(arena_np[off : off + out_spec.nbytes])
        written = np.flatnonzero(scratch_np != 0x5A)
        used = int(written[-1]) + 1 if written.size else 0
        return LayerRun(unpack(raw, out_spec.shape, out_spec.bits), raw, used)
