"""Patch-based execution of integer models, on the host: the reference, the per-patch models, the arena plan.

What the device must reproduce is pinned here first: patch by patch, the integer stage fills the stage-output
tensor with exactly the values layer-by-layer inference computes, for every valid split and patch count; with
per-patch precisions, each patch runs its own layer copies and the rest of the network is untouched.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.codegen.emit_patch import plan_patch_arena, render_patch_c
from harness.errors import ConfigError
from harness.graph.spec import INPUT
from harness.ops.validate import validate_model
from harness.patch.int_reference import layer_crcs, patch_crcs, run_patched
from harness.patch.intmodel import PatchedModel, layer_specs, patched_model, stage_tensors
from harness.patch.plan import valid_splits
from harness.patch.rebits import dequantize, mse_clip, retarget, spec_at_bits
from harness.patch.specs import SpecBuilder
from harness.reference.run import run_model
from harness.synth.random_model import random_input, random_int_model, random_network


def _mixed(model, plan, rng, choices=(2, 4, 8)) -> PatchedModel:
    inside = stage_tensors(model, plan)
    models = [
        retarget(model, {t: spec_at_bits(model.tensors[t], int(rng.choice(choices))) for t in inside})
        for _ in range(plan.num_patches)
    ]
    return PatchedModel(model, plan, tuple(models))


@pytest.mark.parametrize("seed", range(4))
def test_patch_based_integer_inference_equals_layer_by_layer_for_every_split_and_patch_count(seed):
    model = random_network(seed, input_shape=(19, 17, 3))
    specs = layer_specs(model)
    x = random_input(model.tensors[model.input], seed)
    ref = run_model(model, x)
    tried = 0
    for s in valid_splits(specs):
        h, w, _ = specs[s].out_shape
        for n in range(1, min(h, w, 4) + 1):
            run = run_patched(patched_model(model, s, n), x)
            for t, v in run.values.items():
                assert np.array_equal(v, ref[t]), (s, n, t)
            tried += 1
    assert tried >= 6


def test_residual_and_strided_stage_of_a_zoo_shaped_model_is_exact():
    b = SpecBuilder(23, 23, 3)
    b.conv(8, 3, stride=2)
    b.inverted_residual(8, expand=3)
    b.inverted_residual(12, expand=3, stride=2)
    b.inverted_residual(12, expand=3)
    b.pool(6)
    model = random_int_model(b.layers, 1)
    x = random_input(model.tensors[model.input], 2)
    ref = run_model(model, x)
    split = [layer.name for layer in model.layers].index(b.layers[-2].name)
    run = run_patched(patched_model(model, split, 3), x)
    assert np.array_equal(run.output(patched_model(model, split, 3)), ref[model.output])


def test_layer_crcs_of_the_stage_output_and_later_layers_match_layer_by_layer():
    import zlib

    from harness.patch.int_reference import packed

    model = random_network(5, input_shape=(16, 16, 3))
    pm = patched_model(model, "add4", 2)
    x = random_input(model.tensors[model.input], 5)
    ref = run_model(model, x)
    run = run_patched(pm, x)
    crcs = layer_crcs(pm, run)
    for i, layer in enumerate(model.layers):
        bits = model.tensors[layer.output].bits
        if i >= pm.n_stage - 1:
            assert crcs[i] == zlib.crc32(packed(ref[layer.output], bits)), layer.name
        else:  # a stage layer: its per-patch outputs, concatenated in patch order
            joined = b"".join(packed(bufs[layer.name], bits) for bufs in run.patches)
            assert crcs[i] == zlib.crc32(joined), layer.name


def test_per_patch_precisions_change_only_the_stage_and_stay_close_to_8_bit():
    model = random_network(3, input_shape=(20, 20, 3), bits=(8,))
    plan = patched_model(model, "add4", 3).plan
    pm = _mixed(model, plan, np.random.default_rng(0), choices=(4, 8))
    x = random_input(model.tensors[model.input], 3)
    run = run_patched(pm, x)
    crcs = patch_crcs(pm, run)
    assert len(crcs) == 9 and all(len(c) == pm.n_stage for c in crcs)
    for p, bufs in enumerate(run.patches):
        for layer in pm.patch_models[p].layers[: pm.n_stage]:
            spec = pm.patch_models[p].tensors[layer.output]
            lo, hi = -(1 << (spec.bits - 1)), (1 << (spec.bits - 1)) - 1
            assert bufs[layer.name].min() >= lo and bufs[layer.name].max() <= hi
    ref = run_model(model, x)
    out = model.tensors[model.output]
    a, b = dequantize(ref[model.output], out).ravel(), dequantize(run.values[model.output], out).ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.9


def test_retarget_keeps_the_real_function_and_rejects_changing_the_input():
    model = random_network(7, input_shape=(12, 12, 3), bits=(8,))
    inside = ["t0", "t1", "t2"]
    m4 = retarget(model, {t: spec_at_bits(model.tensors[t], 4) for t in inside})
    validate_model(m4)
    assert [m4.tensors[t].bits for t in inside] == [4, 4, 4]
    assert m4.layers[-1] is model.layers[-1]  # untouched layers are shared, weights never copied
    x = random_input(model.tensors[model.input], 7)
    a, b = run_model(model, x), run_model(m4, x)
    for t in inside:
        r8, r4 = dequantize(a[t], model.tensors[t]), dequantize(b[t], m4.tensors[t])
        assert np.corrcoef(r8.ravel(), r4.ravel())[0, 1] > 0.95, t
    with pytest.raises(ConfigError, match="input"):
        retarget(model, {"input": spec_at_bits(model.tensors["input"], 4)})


def test_mse_clip_narrows_the_range_of_a_peaked_distribution_at_low_bits():
    model = random_network(1, input_shape=(8, 8, 3), bits=(8,))
    spec = model.tensors["t0"]
    rng = np.random.default_rng(0)
    q = np.clip(np.round(rng.laplace(spec.zero_point + 10, 3, size=4000)), -128, 127).astype(int)
    q[:4] = 127  # a few extremes
    assert mse_clip(q, spec, 2) < mse_clip(q, spec, 8) == 1.0


def test_patch_models_may_differ_only_inside_the_stage():
    model = random_network(2, input_shape=(16, 16, 3), bits=(8,))
    plan = patched_model(model, "pw1", 2).plan
    outside = retarget(model, {"t4": spec_at_bits(model.tensors["t4"], 4)})
    with pytest.raises(ConfigError, match="outside the patch stage"):
        PatchedModel(model, plan, (model, outside, model, model))


def test_arena_plan_never_overlaps_live_buffers_and_stays_near_the_planner_figure():
    model = random_network(4, input_shape=(24, 24, 3), bits=(8,))
    plan = patched_model(model, "add4", 3).plan
    pm = _mixed(model, plan, np.random.default_rng(4))
    arena = plan_patch_arena(pm)
    life, off, size = arena.buffer_life, arena.buffers, arena.buffer_bytes
    for a in off:
        for b in off:
            if a < b and life[a][0] <= life[b][1] and life[b][0] <= life[a][1]:
                assert off[a] + size[a] <= off[b] or off[b] + size[b] <= off[a], (a, b)
    region = (arena.region_offset, arena.region_offset + arena.region_bytes)
    for row in arena.steps:
        for io in row:
            for d in (*io.inputs, io.out):
                assert region[0] <= d.offset and d.offset + d.nbytes <= region[1]
    for t in (model.input, pm.stage_output):  # both full tensors live during the whole patch stage
        lo, hi = arena.offsets[t], arena.offsets[t] + model.tensors[t].nbytes
        assert hi <= region[0] or region[1] <= lo
    # the planner counts neither the input-window copy nor the split layer's per-patch buffer
    assert arena.arena_bytes <= arena.planner_peak + size[INPUT] + size[plan.split] + 4 * len(size)


def test_default_model_patch_arena_equals_the_planner_figure_and_halves_layer_by_layer():
    from harness.graph.trace import extract_layers
    from harness.models.registry import build_model

    specs = extract_layers(build_model("mbv2-w0.35").eval())
    model = random_int_model(specs[:14], 0)  # the stage and one block after it: the geometry that matters
    pm = patched_model(model, "features.4.project.conv", 3)
    arena = plan_patch_arena(pm)
    assert arena.arena_bytes == arena.planner_peak
    assert arena.layer_peak > 2 * arena.arena_bytes


def test_generated_schedule_names_one_step_per_patch_and_layer():
    model = random_network(6, input_shape=(16, 16, 3))
    pm = patched_model(model, "add4", 2)
    text = render_patch_c(pm, plan_patch_arena(pm))
    assert "const th_patch_schedule_t th_patch_schedule" in text
    assert text.count("/* patch ") == pm.plan.num_patches * pm.n_stage
    assert f".n_stage = {pm.n_stage}" in text
