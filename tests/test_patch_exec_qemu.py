"""Patch-based execution on emulated Cortex-M boards: bit-exact per layer and per (patch, layer), and the
default model's memory story on the 128 KB Netduino Plus 2.

Every layer's output CRC (``layers%``) and every per-patch output CRC (``patches%``) must equal the integer
patch reference's; the stage-output CRC is the layer-by-layer reference's, so patch-based equals layer-by-layer
on the device itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.patch.intmodel import PatchedModel, patched_model, stage_tensors
from harness.patch.rebits import retarget, spec_at_bits
from harness.synth.random_model import random_input, random_int_model, random_network

pytestmark = [
    pytest.mark.qemu,
]


def _inputs(model, seed, n=2):
    rng = np.random.default_rng(seed)
    return [random_input(model.tensors[model.input], rng) for _ in range(n)]


def test_random_network_with_per_patch_precisions_is_bit_exact_on_the_board(tmp_path):
    from harness.boards import make_board
    from harness.measure.session import measure_model

    model = random_network(3, input_shape=(20, 20, 3), bits=(8,))
    plan = patched_model(model, "add4", 3).plan
    rng = np.random.default_rng(3)
    inside = stage_tensors(model, plan)
    models = [
        model
        if p == 4
        else retarget(model, {t: spec_at_bits(model.tensors[t], int(rng.choice((2, 4, 8)))) for t in inside})
        for p in range(plan.num_patches)
    ]
    pm = PatchedModel(model, plan, tuple(models))
    xs = _inputs(model, 3)
    m = measure_model(pm, make_board("qemu-mps2-an386"), xs, tmp_path)
    assert m.mismatches == []
    assert m.bit_exact
    assert len(m.steps) == 9 * pm.n_stage and all(s.ticks > 0 for s in m.steps)
    assert {(s.a_bits, s.o_bits) for s in m.steps if s.step == 3} != {
        (8, 8)
    }  # the patches ran their own bits
    assert sum(s.macs for s in m.steps) == sum(layer.macs for layer in m.layers[: pm.n_stage])


def test_uniform_patch_based_output_equals_layer_by_layer_output_on_the_board(tmp_path):
    from harness.boards import make_board
    from harness.measure.session import measure_model
    from harness.reference.run import run_model

    model = random_network(8, input_shape=(24, 24, 3))  # random per-tensor precisions
    pm = patched_model(model, "pw1", 4)
    xs = _inputs(model, 8)
    m = measure_model(pm, make_board("qemu-mps3-an547"), xs, tmp_path)
    assert m.bit_exact, m.mismatches
    for x, out in zip(xs, m.outputs):
        assert np.array_equal(out, run_model(model, x)[model.output].reshape(-1))


def test_small_zoo_model_runs_patch_based_bit_exact(tmp_path):
    from harness.boards import make_board
    from harness.graph.trace import extract_layers
    from harness.measure.session import measure_model
    from harness.models.registry import build_model

    model = random_int_model(extract_layers(build_model("tiny-cnn").eval()), 0, name="tiny-cnn")
    pm = patched_model(model, "dw.conv", 2)
    m = measure_model(pm, make_board("qemu-mps2-an386"), _inputs(model, 0), tmp_path)
    assert m.bit_exact, m.mismatches


def test_default_model_does_not_fit_the_netduino_layer_by_layer_but_runs_patch_based(tmp_path):
    from harness.boards import make_board
    from harness.build.fit import check_fit, runtime_footprint
    from harness.codegen.artifact import layer_artifact
    from harness.errors import DoesNotFitError
    from harness.graph.trace import extract_layers
    from harness.measure.session import measure_model
    from harness.models.registry import build_model

    board = make_board("qemu-netduinoplus2")
    model = random_int_model(extract_layers(build_model("mbv2-w0.35").eval()), 0, name="mbv2-w0.35")
    with pytest.raises(DoesNotFitError, match=r"SRAM needs about \d+ B \(arena \d+"):
        check_fit(board.cfg, layer_artifact(model).estimate)
    pm = patched_model(model, "features.4.project.conv", 3)
    m = measure_model(pm, board, _inputs(model, 1, n=1), tmp_path)
    assert m.bit_exact, m.mismatches
    a = m.memory
    assert m.mem["arena_size"] == a["arena_bytes"] <= a["planner_peak"] < a["layer_peak"]
    # the painted arena shows how far the run wrote: the planned buffers, nothing past them
    assert 0 < m.mem["arena_used"] <= a["arena_bytes"]
    assert m.mem["arena_used"] > a["arena_bytes"] - 64
    # measured peak = static RAM (arena, scratch, per-step result tables, runtime) + stack high-water mark;
    # the stated overhead over the planner's figure is scratch + result tables + runtime static RAM + stack
    overhead = a["scratch_bytes"] + a["result_bytes"] + runtime_footprint(board.cfg).sram + 1024
    assert a["planner_peak"] < m.peak_sram_device <= a["planner_peak"] + overhead
    assert m.peak_sram_device < board.cfg.sram.size
