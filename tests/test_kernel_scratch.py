"""The firmware's scratch-size functions (``th_<op>_scratch_bytes``, defined in C beside each op's kernels) are
what the planner sizes the scratch buffer with; here they are checked three ways, on the host library:

1. They equal the layout each kernel uses, re-derived in Python (``_planner_formula`` below, the independent
   expectation), for every op x (A, W) pair x a spread of shapes: weight rows with a sub-word tail, channel
   counts below and above a 64-channel job, the depthwise 3x3 s1/s2 row buffers and the depthwise shapes
   without them.
2. No kernel writes past them: each layer runs in C (plain and emulated-DSP builds) with exactly that much
   scratch and a guard behind it, and is bit-exact with the reference.
3. They are not padded: for every op and pair, some shape makes the kernel write into the last word.
"""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest

from harness.ir.packing import row_bytes
from harness.memory.arena import layer_scratch_bytes, scratch_bytes
from harness.native import host_c
from harness.reference.run import run_model
from harness.synth.random_model import random_input, random_layer_model

pytestmark = pytest.mark.hostcc

PAIRS = [(a, w) for a in (2, 4, 8) for w in (2, 4, 8)]

# (h, w, cin, cout, kernel, stride, padding); depthwise takes cout = cin
SHAPES = {
    "conv2d": [
        (8, 8, 3, 8, 3, 1, "same"),  # 27-element rows: a weight-row tail at every W
        (9, 7, 16, 70, 3, 2, "same"),  # two jobs of output channels (64 + 6)
        (6, 6, 5, 3, 5, 1, "valid"),
        (5, 5, 8, 4, 1, 1, "valid"),
        (7, 5, 1, 2, 7, 2, "same"),
    ],
    "depthwise": [
        (9, 9, 5, 5, 3, 1, "same"),  # row buffers, stride 1, one partial chunk
        (10, 11, 21, 21, 3, 2, "same"),  # row buffers, stride 2, two chunks
        (6, 17, 16, 16, 3, 1, "valid"),
        (7, 7, 16, 16, 5, 1, "same"),  # no row buffers: 5x5
        (8, 8, 4, 4, 3, 3, "valid"),  # no row buffers: stride 3
        (4, 4, 6, 6, 1, 1, "valid"),
    ],
    "pointwise": [
        (4, 5, 16, 48, 1, 1, "valid"),
        (3, 3, 13, 100, 1, 1, "valid"),
        (5, 5, 3, 7, 1, 2, "valid"),
        (2, 2, 64, 64, 1, 1, "valid"),
    ],
    "fc": [
        (1, 1, 256, 10, 1, 1, "valid"),
        (1, 1, 67, 65, 1, 1, "valid"),
        (1, 1, 3, 1, 1, 1, "valid"),
        (1, 1, 1024, 64, 1, 1, "valid"),
    ],
}


def _align(n: int) -> int:
    return (n + 3) // 4 * 4


def _takes_field_core(a: int, w: int, wrow: int) -> bool:
    """conv2d / pointwise at (a, w) take a packed-field core (mm/ulp.c, mm/u44.c) rather than the lane core."""
    nflush = (wrow // 4 + 1) // 2 if (a, w) == (2, 2) else 2 * (wrow // 4)
    fmax = (192 if w == 2 else 168) if a == 2 else 240
    return wrow >= 4 and ((a + w <= 6 and w < 8 and nflush * fmax < 65536) or (a, w) == (4, 4))


def _planner_formula(model, layer) -> int:
    """The scratch layout of each kernel, re-derived here as the independent expectation: requantization table
    of a 64-channel job; the lane core's four-pixel column of lane words (weight rows padded to whole words),
    its window bytes (8-bit inputs) or natural column (4/2-bit) unless the column comes straight from the input,
    the widened weights of sub-byte rows with padded taps; the packed-field cores' column, tails and natural
    column; fc's single column; the fallbacks' columns; the depthwise channel table, row buffers and staging row."""
    ins = model.in_spec(layer)
    a, w = ins.bits, layer.w_bits
    kh, kw = layer.kernel
    cin = ins.shape[2]
    if layer.op in ("conv2d", "pointwise", "fc"):
        taps = kh * kw if layer.op == "conv2d" else 1
        if (a, w) == (8, 8):
            need = 4 * _align(taps * cin)
        else:
            need = 2 * taps * row_bytes(cin, w) * (8 // w)
        cout = model.out_spec(layer).shape[2]
        cb = min(cout, 64)
        wrow = taps * row_bytes(cin, w)
        kp, tail = wrow * (8 // w), (wrow % 4) * (8 // w)
        if layer.op == "fc":
            core = 24 * cb + 2 * (wrow // 4) * (32 // w) + _align(2 * tail) + _align(2 * kp)
        elif _takes_field_core(a, w, wrow):
            core = 24 * cb + 4 * (wrow // 4) * (32 // w) + 4 * _align(2 * tail) + _align(2 * kp)
        else:
            widen = a == 8 and w < 8 and (cin * w) % 32 != 0 and taps * cin * cb <= 2048
            wc = 8 if widen else w
            g = 32 // wc
            nwc = (taps * row_bytes(cin, wc) + 3) // 4
            direct = (a == wc or a == 8) and cin % g == 0
            buf = 0 if direct else (_align(nwc * g) if a == 8 else 2 * nwc * g)
            core = 24 * cb + 8 * nwc * g + buf + (_align(cb * taps * cin) if widen else 0)
        return _align(max(need, core))
    if layer.op == "depthwise" and (kh, kw) == (3, 3) and layer.stride in (1, 2):
        ow = model.out_spec(layer).shape[1]
        n_pairs = ((ow - 1) * layer.stride + 4) // 2 + 1
        channel = 5 * 4 + 4 + 5 * 4  # five weight pair words, the bias, th_rq_t's five words
        stage = 0 if model.out_spec(layer).bits == 8 else 16 * ow  # 4/2-bit outputs: a staging row
        return _align(channel * 16 + 4 * ow + 16 * 16 * n_pairs + stage)
    return 0


def _models(op: str, a: int, w: int):
    rng = np.random.default_rng(zlib.crc32(f"scratch{op}{a}{w}".encode()))
    for h, wd, cin, cout, k, stride, pad in SHAPES[op]:
        yield random_layer_model(
            op,
            a,
            w,
            8,
            h=h,
            w=wd,
            cin=cin,
            cout=cin if op == "depthwise" else cout,
            kernel=k,
            stride=stride,
            padding=pad,
            rng=rng,
        )


@pytest.mark.parametrize("a,w", PAIRS)
@pytest.mark.parametrize("op", list(SHAPES))
def test_c_scratch_functions_equal_the_planner_formulas(op, a, w):
    for model in _models(op, a, w):
        layer = model.layers[-1]
        want = _planner_formula(model, layer)
        assert host_c.scratch_bytes(model, layer) == want, f"{op} a{a}w{w} {model.in_spec(layer).shape}"
        assert layer_scratch_bytes(model, layer) == want  # the planner asks the C function


@pytest.mark.parametrize("build", ["plain", "simd"])
@pytest.mark.parametrize("a,w", PAIRS)
@pytest.mark.parametrize("op", list(SHAPES))
def test_kernels_stay_inside_and_reach_the_end_of_their_scratch(op, a, w, build):
    kernels = host_c.kernel_library(emulate_dsp=build == "simd")
    rng = np.random.default_rng(zlib.crc32(f"touch{op}{a}{w}".encode()))
    slack = []
    for model in _models(op, a, w):
        layer = model.layers[-1]
        need = kernels.scratch_bytes(model, layer)
        vals = run_model(model, random_input(model.tensors[model.input], rng))
        # exactly `need` bytes of scratch, then a guard that run_layer checks
        got = kernels.run_layer(model, layer, vals, scratch_bytes=need, rng=rng)
        assert np.array_equal(got.values, vals[layer.output])
        assert got.scratch_used <= need
        if need:
            slack.append(need - got.scratch_used)
    if build == "simd":  # the fast paths: where the big buffers are
        assert min(slack) < 4, f"{op} a{a}w{w}: no shape writes the last word of its scratch (slack {slack})"


@pytest.mark.parametrize("op", ["add", "avgpool"])
def test_add_and_avgpool_need_no_scratch(op):
    model = random_layer_model(op, 8, 8, 8, h=4, w=4, cin=6, kernel=2, stride=2, rng=1)
    assert host_c.scratch_bytes(model, model.layers[-1]) == 0


def test_model_scratch_is_the_largest_layer_need():
    rng = np.random.default_rng(5)
    model = random_layer_model("add", 4, 4, 8, h=6, w=6, cin=7, rng=rng)  # a 3x3 conv, then the add
    needs = [host_c.scratch_bytes(model, layer) for layer in model.layers]
    assert needs[0] > 0 and needs[1] == 0
    assert scratch_bytes(model) == max(needs)


def test_the_library_is_compiled_once_per_source_content():
    """kernel_library reuses the compiled library across processes: the cache entry is keyed by the kernel
    sources, and a second call in the same process returns the same object."""
    assert host_c.kernel_library() is host_c.kernel_library()
    cc = os.environ.get("CC", "gcc")
    key = host_c._library_key(cc, False)
    assert (host_c.CACHE_DIR / key / "libthkernels.so").is_file()
    assert host_c._library_key(cc, False) == key
    assert host_c._library_key(cc, True) != key
