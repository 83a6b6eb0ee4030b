"""The C kernels, compiled for the host, are bit-exact with the numpy reference.

Both builds run: the plain C path (what cores without DSP run) and the SIMD path through TH_EMULATE_DSP
(the SXTB16/SMLAD algorithm Cortex-M4/M7/M55 run, instruction-emulated). Shapes are random but reproducible:
odd sizes, stride 1/2, SAME/VALID padding, kernels 1/3/5/7, channel counts that are not multiples of 4, every
(a_bits, w_bits) pair, every output precision, ReLU/ReLU6 clamps and extreme multipliers/shifts.
"""

from __future__ import annotations

import subprocess
import zlib

import numpy as np
import pytest

from harness.ir.packing import pack
from harness.ir.requant import INT32_MAX, INT32_MIN, mbqm
from harness.native.host_c import FIRMWARE, HostKernels, compile_kernels, kernel_sources
from harness.ops import WEIGHTED_OPS
from harness.reference.run import run_model
from harness.synth.random_model import random_input, random_layer_model

PAIRS = [(a, w) for a in (2, 4, 8) for w in (2, 4, 8)]

pytestmark = pytest.mark.hostcc


@pytest.fixture(scope="module", params=["plain", "simd"])
def kernels(request, tmp_path_factory) -> HostKernels:
    out = tmp_path_factory.mktemp(f"kernels_{request.param}")
    return HostKernels(compile_kernels(out, emulate_dsp=request.param == "simd", extra_flags=("-Werror",)))


def _random_case(op, a, w, o, rng):
    k = int(rng.choice([1, 3, 5, 7])) if op in ("conv2d", "depthwise") else 1
    stride = int(rng.choice([1, 2]))
    pad = str(rng.choice(["same", "valid"]))
    h, wd = int(rng.integers(k, k + 6)), int(rng.integers(k, k + 6))
    cin = int(rng.choice([1, 3, 4, 5, 7, 8, 13, 16, 21]))
    cout = int(rng.choice([1, 2, 3, 5, 8, 11, 17]))
    act = [None, "relu", "relu6"][int(rng.integers(3))]
    return random_layer_model(
        op, a, w, o, h=h, w=wd, cin=cin, cout=cout, kernel=k, stride=stride, padding=pad, act=act, rng=rng
    )


def check(kernels: HostKernels, model, rng, **kw) -> np.ndarray:
    """Run the model's last layer in C and compare values and packed bytes with the reference."""
    vals = run_model(model, random_input(model.tensors[model.input], rng))
    layer = model.layers[-1]
    got = kernels.run_layer(model, layer, vals, rng=rng, **kw)
    want = vals[layer.output]
    assert np.array_equal(got.values, want), f"{layer.op} {model.name}: C differs from the reference"
    # byte-exact storage, padding bits included (so firmware CRCs are a function of the values)
    assert got.raw == pack(want, model.out_spec(layer).bits)
    return want


@pytest.mark.parametrize("o", [2, 4, 8])
@pytest.mark.parametrize("a,w", PAIRS)
@pytest.mark.parametrize("op", WEIGHTED_OPS)
def test_weighted_ops_all_pairs(kernels, op, a, w, o):
    rng = np.random.default_rng(zlib.crc32(f"{op}{a}{w}{o}".encode()))
    outs = [check(kernels, _random_case(op, a, w, o, rng), rng).reshape(-1) for _ in range(4)]
    assert len(np.unique(np.concatenate(outs))) >= 2, "the random layers should not saturate to one value"


@pytest.mark.parametrize("o", [2, 4, 8])
@pytest.mark.parametrize("op", WEIGHTED_OPS)
def test_ref_kernels_match(kernels, op, o):
    rng = np.random.default_rng(o + 10 * WEIGHTED_OPS.index(op))
    for _ in range(3):
        check(kernels, _random_case(op, 8, 8, o, rng), rng, variant="ref")


@pytest.mark.parametrize("op", ["conv2d", "pointwise", "fc"])
def test_a8w8_uses_both_blocking_tails(kernels, op):
    """Odd pixel and channel counts exercise the 1-pixel and 1-channel remainders of the 2x2 core."""
    rng = np.random.default_rng(5)
    for cin, cout, hw in [(3, 1, 1), (4, 3, 3), (9, 7, 5), (16, 2, 2), (1, 9, 7)]:
        model = random_layer_model(op, 8, 8, 8, h=hw, w=hw, cin=cin, cout=cout, kernel=3, rng=rng)
        check(kernels, model, rng)


# ---- the fast paths: shapes chosen to take them (and their blocking tails), at every pair ----

# (h, w, cin, cout, kernel, stride, padding): channel counts around the 16-channel chunks and 4-channel groups,
# odd and even widths (the 2-output steps and their tails), SAME/VALID/asymmetric padding
FAST_SHAPES = {
    "depthwise": [
        (5, 6, 16, None, 3, 1, "same"),
        (7, 5, 21, None, 3, 2, "same"),
        (6, 7, 35, None, 3, 1, "valid"),
        (8, 9, 48, None, 3, 2, (1, 1, 1, 1)),
        (4, 4, 3, None, 3, 2, (0, 2, 2, 0)),
    ],
    "conv2d": [
        (5, 6, 16, 16, 3, 1, "same"),
        (7, 5, 3, 9, 3, 2, (1, 1, 1, 1)),
        (4, 5, 7, 5, 3, 1, "valid"),
        (6, 6, 24, 3, 1, 1, "valid"),
    ],
    "pointwise": [(4, 5, 16, 48, 1, 1, "valid"), (3, 3, 96, 24, 1, 1, "valid"), (5, 5, 13, 7, 1, 2, "valid")],
    "fc": [(1, 1, 256, 10, 1, 1, "valid"), (1, 1, 67, 9, 1, 1, "valid"), (1, 1, 3, 1, 1, 1, "valid")],
}


@pytest.mark.parametrize("o", [2, 4, 8])
@pytest.mark.parametrize("a,w", PAIRS)
@pytest.mark.parametrize("op", WEIGHTED_OPS)
def test_fast_paths_all_pairs(kernels, op, a, w, o):
    rng = np.random.default_rng(zlib.crc32(f"fast{op}{a}{w}{o}".encode()))
    for h, wd, cin, cout, k, stride, pad in FAST_SHAPES[op]:
        act = [None, "relu", "relu6"][int(rng.integers(3))]
        model = random_layer_model(
            op, a, w, o, h=h, w=wd, cin=cin, cout=cout, kernel=k, stride=stride, padding=pad, act=act, rng=rng
        )
        check(kernels, model, rng)


@pytest.mark.parametrize("a,w", PAIRS)
@pytest.mark.parametrize("op", WEIGHTED_OPS)
def test_unsigned_inputs_post_relu_zero_point(kernels, op, a, w):
    """Inputs whose zero point is the bottom of their range (after a ReLU) skip the packed-field core's
    per-channel correction, and fc takes that core only then."""
    rng = np.random.default_rng(zlib.crc32(f"relu{op}{a}{w}".encode()))
    for h, wd, cin, cout, k, stride, pad in FAST_SHAPES[op][:3]:
        model = random_layer_model(
            op, a, w, 8, h=h, w=wd, cin=cin, cout=cout, kernel=k, stride=stride, padding=pad, rng=rng
        )
        model.tensors[model.input].zero_point = -(1 << (a - 1))
        check(kernels, model, rng)


@pytest.mark.parametrize("a,w", PAIRS)
@pytest.mark.parametrize("op", WEIGHTED_OPS)
def test_requant_parameters_at_the_fast_path_boundaries(kernels, op, a, w):
    """Shifts -1 and -22 take the fast requantization, and so do small left shifts (within the accumulator
    bound); -23 or a multiplier <= 0 make the whole layer fall back to the exact one. Same bytes either way."""
    rng = np.random.default_rng(zlib.crc32(f"edge{op}{a}{w}".encode()))
    h, wd, cin, cout, k, stride, pad = FAST_SHAPES[op][0]
    for shifts, mults in [
        ([-1, -22], [1, INT32_MAX]),
        ([-1, 0], [1 << 30]),
        ([-23, -5], [1 << 30]),
        ([-3], [1 << 30, 0]),
        ([0, 2, 5], [1 << 30]),
    ]:
        model = random_layer_model(
            op, a, w, 8, h=h, w=wd, cin=cin, cout=cout, kernel=k, stride=stride, padding=pad, rng=rng
        )
        layer = model.layers[-1]
        n = layer.multiplier.size
        layer.shift = rng.choice(shifts, size=n).astype(np.int32)
        layer.multiplier = rng.choice(mults, size=n).astype(np.int32)
        layer.bias = rng.integers(-1000, 1000, size=n).astype(np.int32)
        check(kernels, model, rng)


@pytest.mark.parametrize("b1", [2, 4, 8])
@pytest.mark.parametrize("b2", [2, 4, 8])
@pytest.mark.parametrize("bo", [2, 4, 8])
def test_add_all_precisions(kernels, b1, b2, bo):
    rng = np.random.default_rng(b1 * 100 + b2 * 10 + bo)
    for act in (None, "relu"):
        model = random_layer_model(
            "add",
            b1,
            8,
            bo,
            in2_bits=b2,
            h=int(rng.integers(1, 6)),
            w=int(rng.integers(1, 6)),
            cin=int(rng.integers(1, 12)),
            act=act,
            rng=rng,
        )
        check(kernels, model, rng)


@pytest.mark.parametrize("a", [2, 4, 8])
@pytest.mark.parametrize("o", [2, 4, 8])
def test_avgpool_all_precisions(kernels, a, o):
    rng = np.random.default_rng(a * 10 + o)
    for kernel, stride in [(None, None), (2, 2), (3, 1), (3, 2)]:
        model = random_layer_model(
            "avgpool", a, 8, o, h=7, w=6, cin=int(rng.integers(1, 10)), kernel=kernel, stride=stride, rng=rng
        )
        check(kernels, model, rng)


EXTREME_MULT = [0, 1, (1 << 30), INT32_MAX, INT32_MIN, -(1 << 30), 1518500250]


@pytest.mark.parametrize("op", WEIGHTED_OPS)
@pytest.mark.parametrize("a,w", [(8, 8), (4, 2), (2, 4)])
def test_extreme_multipliers_and_shifts(kernels, op, a, w):
    rng = np.random.default_rng(17)
    for shift_lo, shift_hi in [(-31, -20), (-5, 5), (10, 31)]:
        model = _random_case(op, a, w, 8, rng)
        layer = model.layers[-1]
        n = layer.multiplier.size
        layer.multiplier = rng.choice(EXTREME_MULT, size=n).astype(np.int32)
        layer.shift = rng.integers(shift_lo, shift_hi + 1, size=n).astype(np.int32)
        layer.bias = rng.choice([-(1 << 20), -1, 0, 1, 1 << 20], size=n).astype(np.int32)
        check(kernels, model, rng)


def test_extreme_add_params(kernels):
    rng = np.random.default_rng(3)
    for _ in range(6):
        model = random_layer_model("add", 8, 8, 8, h=3, w=3, cin=5, rng=rng)
        p = model.layers[-1].add
        p.left_shift = int(rng.choice([0, 20, 31]))
        p.in1_multiplier, p.in2_multiplier, p.out_multiplier = (
            int(rng.choice(EXTREME_MULT)) for _ in range(3)
        )
        p.in1_shift, p.in2_shift, p.out_shift = (int(rng.integers(-31, 32)) for _ in range(3))
        check(kernels, model, rng)


# ---- the requantization helpers themselves, on the host ----

_REQ = r"""
#include "th_requant.h"
void t_mbqm(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out, int n) {
    for (int i = 0; i < n; ++i) out[i] = th_mbqm(x[i], m[i], s[i]);
}
void t_rq2(const int32_t *x, const int32_t *m, const int32_t *s, const int32_t *zp, int32_t *out, int n) {
    for (int i = 0; i < n; ++i) out[i] = th_rq2(2 * x[i], m[i], th_rq_round(zp[i], -s[i]), -s[i]);
}
"""


@pytest.fixture(scope="module")
def requant_lib(tmp_path_factory):
    import ctypes

    d = tmp_path_factory.mktemp("requant")
    (d / "t.c").write_text(_REQ)
    subprocess.run(
        [
            "gcc",
            "-std=c99",
            "-O2",
            "-fPIC",
            "-shared",
            "-Wall",
            "-Wextra",
            "-Werror",
            f"-I{FIRMWARE / 'include'}",
            str(d / "t.c"),
            "-o",
            str(d / "t.so"),
        ],
        check=True,
    )
    return ctypes.CDLL(str(d / "t.so"))


def test_th_mbqm_matches_numpy_on_extremes(requant_lib):
    import ctypes

    rng = np.random.default_rng(0)
    edge = [INT32_MIN, INT32_MIN + 1, -(1 << 30), -65537, -3, -1, 0, 1, 3, 65535, 1 << 30, INT32_MAX]
    xs = np.array(edge * 63 * 7 + rng.integers(INT32_MIN, INT32_MAX, 20000, endpoint=True).tolist(), np.int32)
    ms = np.array(
        [m for m in EXTREME_MULT for _ in range(len(edge) * 63)]
        + rng.integers(INT32_MIN, INT32_MAX, 20000, endpoint=True).tolist(),
        np.int32,
    )
    ss = np.array(
        np.tile(np.repeat(np.arange(-31, 32), len(edge)), 7).tolist() + rng.integers(-31, 32, 20000).tolist(),
        np.int32,
    )
    out = np.zeros_like(xs)
    p = lambda a: a.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
    requant_lib.t_mbqm(p(xs), p(ms), p(ss), p(out), ctypes.c_int(xs.size))
    assert np.array_equal(out.astype(np.int64), mbqm(xs, ms, ss))


def test_fast_requant_equals_the_exact_one_within_its_conditions(requant_lib):
    """th_rq2 (one SMMLAR) == zp + th_mbqm for m > 0, shift in [-22, -1], |2 acc| < 2^30, any 8-bit zp."""
    import ctypes

    rng = np.random.default_rng(1)
    n = 200_000
    lim = (1 << 29) - 1
    edge = np.array([-lim, -lim + 1, -(1 << 20), -3, -2, -1, 0, 1, 2, 3, 1 << 20, lim], np.int64)
    xs = np.concatenate([np.tile(edge, 100), rng.integers(-lim, lim, n, endpoint=True)]).astype(np.int32)
    xs[-n // 2 :] = (xs[-n // 2 :] >> rng.integers(0, 29, n // 2)).astype(np.int32)  # small values too
    size = xs.size
    ms = rng.choice([1, 2, (1 << 30), INT32_MAX, 1518500250], size).astype(np.int32)
    ms[size // 2 :] = rng.integers(1, INT32_MAX, size - size // 2, endpoint=True)
    ss = rng.integers(-22, 0, size).astype(np.int32)
    zps = rng.integers(-128, 128, size).astype(np.int32)
    out = np.zeros_like(xs)
    p = lambda a: a.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
    requant_lib.t_rq2(p(xs), p(ms), p(ss), p(zps), p(out), ctypes.c_int(size))
    assert np.array_equal(out.astype(np.int64), zps + mbqm(xs, ms, ss))


# ---- the same sources build for Cortex-M ----

ARM_FLAGS = {
    "cortex-m4": ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
    "cortex-m7": ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"],
    "cortex-m55": ["-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"],
    "cortex-m3": ["-mcpu=cortex-m3", "-mthumb"],
    "cortex-m0plus": ["-mcpu=cortex-m0plus", "-mthumb"],
}


@pytest.mark.toolchain
@pytest.mark.parametrize("cpu", list(ARM_FLAGS))
def test_kernels_cross_compile_for_cortex_m(cpu, tmp_path):
    srcs = [str(p) for p in kernel_sources()]
    res = subprocess.run(
        [
            "arm-none-eabi-gcc",
            "-std=c99",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-ffunction-sections",
            *ARM_FLAGS[cpu],
            f"-I{FIRMWARE / 'include'}",
            "-c",
            *srcs,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    objs = sorted(str(p) for p in tmp_path.glob("*.o"))
    assert len(objs) == len(srcs)
    dis = subprocess.run(
        ["arm-none-eabi-objdump", "-d", *objs], capture_output=True, text=True, check=True
    ).stdout
    has_dsp = cpu in ("cortex-m4", "cortex-m7", "cortex-m55")
    assert ("smlad" in dis) == has_dsp, "the DSP path must be used exactly on cores with the DSP extension"
