"""Run the firmware's C kernels on the host through ctypes, for fast bit-exact checks against the reference.

``compile_kernels`` builds ``firmware/runtime/kernels/*.c`` with the host C compiler into a shared library;
``HostKernels.run_layer`` packs a layer's inputs into an arena exactly as the firmware would, calls the kernel
that the code generator would pick (or a named one), and unpacks the output. Guard bytes around the output and
after the scratch buffer catch out-of-bounds writes, and the output region starts as random garbage so a kernel
that fails to overwrite a byte (or a padding bit) is caught too.
"""

from __future__ import annotations

import ctypes as C
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness import ops
from harness.errors import BuildError, MissingDependencyError
from harness.ir.model import IntLayer, IntModel
from harness.ir.packing import pack, packed_weights, unpack
from harness.memory.arena import layer_scratch_bytes

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware" / "runtime"
GUARD = 64
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
    lib = out_dir / ("libthkernels_dsp.so" if emulate_dsp else "libthkernels.so")
    srcs = sorted(str(p) for p in (FIRMWARE / "kernels").glob("*.c"))
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


@dataclass
class LayerRun:
    """Output of one kernel call: unpacked values and the raw packed bytes."""

    values: np.ndarray
    raw: bytes


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
        sbytes = layer_scratch_bytes(model, layer) if scratch_bytes is None else scratch_bytes
        scratch_np = np.full(sbytes + GUARD, 0x5A, dtype=np.uint8)
        scratch = (C.c_uint8 * scratch_np.size).from_buffer(scratch_np)
        w = packed_weights(layer)
        wbuf = C.create_string_buffer(w, max(len(w), 1))
        keep = [_i32(layer.bias), _i32(layer.multiplier), _i32(layer.shift)]
        p = layer.add
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
            weights=C.cast(wbuf, C.c_void_p),
            bias=C.cast(keep[0], _I32P) if keep[0] is not None else None,
            mult=C.cast(keep[1], _I32P) if keep[1] is not None else None,
            shift=C.cast(keep[2], _I32P) if keep[2] is not None else None,
            macs=min(ops.macs(model, layer), 0xFFFFFFFF),
        )
        if p is not None:
            L.left_shift, L.in1_mult, L.in1_shift = p.left_shift, p.in1_multiplier, p.in1_shift
            L.in2_mult, L.in2_shift, L.out_mult, L.out_shift = (
                p.in2_multiplier,
                p.in2_shift,
                p.out_multiplier,
                p.out_shift,
            )
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
        return LayerRun(unpack(raw, out_spec.shape, out_spec.bits), raw)
