"""Code generation: arena planning, model_data.c, validation errors and the footprint estimate.

The end-to-end test compiles the generated model_data.c with the kernels and a tiny host driver (what the
firmware executor does: copy the input into the arena, call every layer's fn) and checks every layer's output
bytes against the numpy reference.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness.codegen.emit_c import emit_model_c, estimate_footprint, kernel_symbols, model_hash
from harness.errors import ConfigError, UnsupportedLayerError
from harness.ir.model import IntLayer, IntModel, TensorSpec
from harness.ir.packing import pack
from harness.memory.arena import layer_scratch_bytes, lifetimes, plan_arena, scratch_bytes
from harness.native.host_c import FIRMWARE, kernel_sources
from harness.ops import kernel_symbol
from harness.reference.run import run_model
from harness.synth.random_model import random_input, random_layer_model, random_network

# ---- arena planning ----


def chain(sizes: list[int]) -> IntModel:
    """A chain of pointwise layers whose tensors are sizes[i] bytes (1 x 1 x C int8)."""
    tensors = {f"t{i}": TensorSpec(f"t{i}", (1, 1, c), 8) for i, c in enumerate(sizes)}
    layers = [
        IntLayer(
            f"l{i}",
            "pointwise",
            [f"t{i}"],
            f"t{i + 1}",
            weight=np.zeros((sizes[i + 1], sizes[i]), np.int8),
            bias=np.zeros(sizes[i + 1], np.int32),
            multiplier=np.full(sizes[i + 1], 1 << 30, np.int32),
            shift=np.zeros(sizes[i + 1], np.int32),
        )
        for i in range(len(sizes) - 1)
    ]
    return IntModel(tensors, layers, "t0", f"t{len(sizes) - 1}")


def test_chain_reuses_buffers_and_reaches_the_peak():
    plan = plan_arena(chain([100, 40, 200, 8, 64]))
    # live pairs: (100,40), (40,200), (200,8), (8,64) -> peak 240
    assert plan.peak_bytes == 240
    assert plan.arena_bytes == 240
    assert plan.live_bytes == [140, 240, 208, 72]


def test_residual_branch_stays_live_until_the_add():
    model = random_network(0)
    life = lifetimes(model)
    assert life["t2"] == (2, 6)  # pw1 output, read by pw2 (step 3) and by the add (step 6)
    assert life["input"] == (0, 0)
    assert lifetimes(model, keep_input=True)["input"] == (0, len(model.layers) - 1)


@pytest.mark.parametrize("seed", range(8))
def test_tensors_live_at_the_same_time_never_share_bytes(seed):
    model = random_network(seed, input_shape=(12 + seed, 10 + seed, 3))
    plan = plan_arena(model, keep_input=seed % 2 == 1)
    names = list(plan.offsets)
    for i, a in enumerate(names):
        assert plan.offsets[a] % 4 == 0
        assert plan.offsets[a] + plan.sizes[a] <= plan.arena_bytes
        for b in names[i + 1 :]:
            (a0, a1), (b0, b1) = plan.lifetimes[a], plan.lifetimes[b]
            if a0 <= b1 and b0 <= a1:
                assert not plan.overlaps(a, b), (a, b)
    assert plan.peak_bytes <= plan.arena_bytes <= sum(plan.sizes.values()) + 4 * len(names)


def test_scratch_covers_the_largest_kernel_need():
    # Lower bounds from the data the kernels stage; the exact sizes follow th_kernels.h, and the host tests run
    # every kernel inside exactly this much scratch (HostKernels checks nothing is written past it).
    m8 = random_layer_model("conv2d", 8, 8, 8, cin=5, kernel=3, rng=0)  # K = 45 -> two int16 columns of 48
    assert scratch_bytes(m8) >= 4 * 48
    m42 = random_layer_model("conv2d", 4, 2, 8, cin=5, kernel=3, rng=0)  # 5 channels -> 8 per 2-bit row
    assert scratch_bytes(m42) >= 2 * 9 * 8
    for m in (m8, m42, random_layer_model("depthwise", 8, 8, 8, rng=0)):
        assert scratch_bytes(m) == max(4, *(layer_scratch_bytes(m, layer) for layer in m.layers))
        assert scratch_bytes(m) % 4 == 0


# ---- validation ----


def _bad(mutate) -> IntModel:
    model = random_layer_model("conv2d", 8, 4, 8, h=6, w=6, cin=3, cout=4, kernel=3, rng=1)
    mutate(model, model.layers[-1])
    return model


@pytest.mark.parametrize(
    "mutate,err,msg",
    [
        (lambda m, l: setattr(l, "op", "lstm"), UnsupportedLayerError, "unknown op 'lstm'"),
        (lambda m, l: setattr(l, "w_bits", 3), ConfigError, "w_bits=3"),
        (lambda m, l: setattr(m.tensors["y"], "bits", 16), ConfigError, "bits=16"),
        (lambda m, l: setattr(l, "stride", 2), ConfigError, "gives 3x3 pixels"),
        (lambda m, l: setattr(l, "kernel", (5, 5)), ConfigError, "weight shape"),
        (lambda m, l: l.weight.__setitem__((0, 0, 0, 0), 8), ConfigError, "outside the 4-bit narrow range"),
        (lambda m, l: setattr(l, "bias", l.bias[:2]), ConfigError, "bias has 2 entries"),
        (lambda m, l: setattr(l, "shift", l.shift + 40), ConfigError, "shift values"),
        (lambda m, l: setattr(l, "act_min", l.act_max + 1), ConfigError, "clamp"),
        (lambda m, l: setattr(l, "inputs", ["nope"]), ConfigError, "unknown tensor 'nope'"),
        (lambda m, l: setattr(m.tensors["x"], "zero_point", 200), ConfigError, "zero_point 200"),
        (
            lambda m, l: setattr(l, "bias", np.full(4, 2**31 - 10, np.int64)),
            ConfigError,
            "accumulator can overflow",
        ),
    ],
)
def test_bad_models_raise_specific_errors(tmp_path, mutate, err, msg):
    with pytest.raises(err, match=msg):
        emit_model_c(_bad(mutate), tmp_path)


def test_kernel_symbols_follow_the_naming_contract():
    assert kernel_symbol("conv2d", 4, 2) == "th_conv2d_a4w2"
    assert kernel_symbol("depthwise", 8, 8, "ref") == "th_depthwise_ref"
    assert kernel_symbol("pointwise", 2, 8, "ref") == "th_pointwise_a2w8"  # no int8 ref for sub-byte pairs
    assert kernel_symbol("add", 4, 8) == "th_add" and kernel_symbol("avgpool", 2, 8) == "th_avgpool"
    with pytest.raises(ConfigError):
        kernel_symbol("conv2d", 8, 8, "fast")


def test_model_hash_tracks_content():
    a, b = random_network(1), random_network(1)
    assert model_hash(a) == model_hash(b)
    b.layers[0].weight[0, 0, 0, 0] = -b.layers[0].weight[0, 0, 0, 0] or 1
    assert model_hash(a) != model_hash(b)


# ---- generated C, compiled and run on the host ----

DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "th_model.h"
/* Reads the packed input from argv[1], runs every layer like the executor, writes each output to argv[2]. */
int main(int argc, char **argv) {
    if (argc != 3) return 2;
    const th_tensor_t *in = &th_model.tensors[th_model.input];
    FILE *f = fopen(argv[1], "rb");
    size_t n = (size_t)in->h * in->w * ((in->c * in->bits + 7) / 8);
    if (fread(th_arena + in->offset, 1, n, f) != n) return 3;
    fclose(f);
    FILE *o = fopen(argv[2], "wb");
    for (unsigned i = 0; i < th_model.n_layers; ++i) {
        const th_layer_t *L = &th_model.layers[i];
        const th_tensor_t *t = &th_model.tensors[L->out];
        L->fn(L, &th_model.tensors[L->in], L->in2 >= 0 ? &th_model.tensors[L->in2] : 0, t, th_arena, th_scratch);
        fwrite(th_arena + t->offset, 1, (size_t)t->h * t->w * ((t->c * t->bits + 7) / 8), o);
    }
    fclose(o);
    printf("%08x %u %u\n", (unsigned)th_model.hash, (unsigned)th_model.arena_size, (unsigned)th_model.scratch_size);
    return 0;
}
"""


def build_and_run(model: IntModel, x: np.ndarray, tmp: Path, variant: str = "opt", emulate_dsp: bool = False):
    """Compile model_data.c + kernels + DRIVER with host gcc, run it; returns (per-layer output bytes, stdout)."""
    paths = emit_model_c(model, tmp, variant=variant)
    (tmp / "driver.c").write_text(DRIVER)
    kernels = [str(p) for p in kernel_sources()]
    cmd = [
        "gcc",
        "-std=c99",
        "-O1",
        "-Wall",
        "-Wextra",
        "-Werror",
        f"-I{FIRMWARE / 'include'}",
        *(["-DTH_EMULATE_DSP"] if emulate_dsp else []),
        str(paths[0]),
        str(tmp / "driver.c"),
        *kernels,
        "-o",
        str(tmp / "run"),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    (tmp / "in.bin").write_bytes(pack(x, model.tensors[model.input].bits))
    out = subprocess.run(
        [str(tmp / "run"), str(tmp / "in.bin"), str(tmp / "out.bin")],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    blob, chunks, pos = (tmp / "out.bin").read_bytes(), [], 0
    for layer in model.layers:
        n = model.tensors[layer.output].nbytes
        chunks.append(blob[pos : pos + n])
        pos += n
    assert pos == len(blob)
    return chunks, out.stdout


@pytest.mark.hostcc
@pytest.mark.parametrize(
    "seed,variant,simd",
    [(0, "opt", False), (1, "opt", True), (2, "ref", False), (3, "opt", True), (4, "ref", True)],
)
def test_generated_model_runs_bit_exact_on_the_host(tmp_path, seed, variant, simd):
    model = random_network(seed, input_shape=(15, 13, 3), width=12)
    x = random_input(model.tensors["input"], seed)
    ref = run_model(model, x)
    chunks, stdout = build_and_run(model, x, tmp_path, variant, simd)
    for layer, raw in zip(model.layers, chunks):
        assert raw == pack(ref[layer.output], model.tensors[layer.output].bits), layer.name
    plan = plan_arena(model)
    assert stdout.split() == [f"{model_hash(model):08x}", str(plan.arena_bytes), str(plan.scratch_bytes)]


@pytest.mark.hostcc
def test_all_int8_network_and_single_layer_models(tmp_path):
    model = random_network(9, bits=(8,))
    x = random_input(model.tensors["input"], 0)
    ref = run_model(model, x)
    chunks, _ = build_and_run(model, x, tmp_path / "net")
    assert chunks[-1] == pack(ref[model.output], 8)
    add = random_layer_model("add", 4, 8, 2, in2_bits=8, rng=3)
    x = random_input(add.tensors["x"], 1)
    chunks, _ = build_and_run(add, x, tmp_path / "add")
    assert chunks[-1] == pack(run_model(add, x)["y"], 2)


def test_emit_writes_c_and_header(tmp_path):
    model = random_network(2)
    paths = emit_model_c(model, tmp_path)
    assert [p.name for p in paths] == ["model_data.c", "model_data.h"]
    c = paths[0].read_text()
    for sym in kernel_symbols(model):
        assert f".fn = {sym}," in c
    assert "__attribute__((aligned(4)))" in c and "const th_model_t th_model" in c
    assert f"0x{model_hash(model):08X}" in paths[1].read_text()


# ---- footprint ----


def test_footprint_counts_weights_and_arena():
    model = random_network(4)
    plan = plan_arena(model)
    est = estimate_footprint(model, plan)
    weights = sum(len(pack(layer.weight, layer.w_bits)) for layer in model.layers if layer.weight is not None)
    assert est.weights > weights  # the weights and the bias, requantization, names and tables beside them
    assert (est.arena, est.scratch) == (plan.arena_bytes, plan.scratch_bytes)
    assert est.kernels == tuple(kernel_symbols(model))  # the code the fit check links (harness.build.fit)


@pytest.mark.toolchain
def test_cortex_m_link_keeps_only_used_kernels_and_matches_the_estimate(tmp_path):
    model = random_network(5, input_shape=(20, 20, 3), width=16)
    emit_model_c(model, tmp_path)
    (tmp_path / "main.c").write_text(
        '#include "th_model.h"\n'
        "void _start(void) {\n"
        "    for (unsigned i = 0; i < th_model.n_layers; ++i) {\n"
        "        const th_layer_t *L = &th_model.layers[i];\n"
        "        L->fn(L, &th_model.tensors[L->in], 0, &th_model.tensors[L->out], th_arena, th_scratch);\n"
        "    }\n    for (;;) {}\n}\n"
    )
    kernels = [str(p) for p in kernel_sources()]
    elf = tmp_path / "m.elf"
    subprocess.run(
        [
            "arm-none-eabi-gcc",
            "-std=c99",
            "-O2",
            "-mcpu=cortex-m4",
            "-mthumb",
            "-mfloat-abi=hard",
            "-mfpu=fpv4-sp-d16",
            "-ffunction-sections",
            "-fdata-sections",
            "--specs=nano.specs",
            "-nostartfiles",
            "-Wl,--gc-sections",
            "-Wl,-e,_start",
            f"-I{FIRMWARE / 'include'}",
            str(tmp_path / "model_data.c"),
            str(tmp_path / "main.c"),
            *kernels,
            "-lc",
            "-lgcc",
            "-o",
            str(elf),
        ],
        check=True,
        capture_output=True,
    )
    syms = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    linked = {line.split()[-1] for line in syms.splitlines() if line.split()[-1].startswith("th_")}
    kernel_name = re.compile(r"^th_(conv2d|depthwise|pointwise|fc)_(a[248]w[248]|ref)$|^th_(add|avgpool)$")
    kernels_in_elf = {s for s in linked if kernel_name.match(s)}  # not shared helpers such as th_fc_run
    assert kernels_in_elf == set(kernel_symbols(model))
    size = subprocess.run(
        ["arm-none-eabi-size", "-A", "-d", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    sec = {
        p[0]: int(p[1])
        for p in (line.split() for line in size.splitlines())
        if len(p) >= 2 and p[1].isdigit()
    }
    flash_real = sec.get(".text", 0) + sec.get(".rodata", 0) + sec.get(".data", 0)
    sram_real = sec.get(".bss", 0) + sec.get(".data", 0)
    est = estimate_footprint(model)
    assert set(est.kernels) == kernels_in_elf
    assert 0 < est.weights < flash_real  # the model's data; the rest of the image is the kernels' code
    # arena + scratch exactly; the kernels themselves may keep a few bytes of static tables in .data/.bss
    assert 0 <= sram_real - (est.arena + est.scratch) <= 64, (est, sram_real)


@pytest.mark.parametrize("hostile", ["*/ #error injected /*", "a*//b", "**//x\n#error y", "name\x00\x7f*/"])
def test_names_cannot_leave_their_c_comment(tmp_path, hostile):
    from harness.codegen.artifact import layer_artifact
    from harness.codegen.emit_c import c_comment

    assert "*/" not in c_comment(hostile) and "/*" not in c_comment(hostile)
    model = random_network(3, input_shape=(8, 8, 3), width=4)
    model.name = hostile
    model.layers[0].name = hostile
    text = layer_artifact(model).sources["model_data.c"]
    # every comment closes where the generator closed it and every string literal is escaped: what is left
    # outside comments and strings is the generator's own code only
    code = re.sub(r'"(?:\\.|[^"\\\n])*"', '""', re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL))
    assert "#error" not in code and "injected" not in code
