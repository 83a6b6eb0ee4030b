"""The patch plan: valid splits, windows, MAC accounting, SRAM accounting, search verdict and report."""

import math

import pytest

from harness.errors import ConfigError
from harness.graph.spec import INPUT, LayerSpec
from harness.memory.liveness import build_steps, tensor_bytes
from harness.patch import (
    LIVENESS,
    TINYENGINE,
    MemoryRule,
    bits_from_config,
    describe,
    layer_by_layer_peak,
    plan_patches,
    search_patch_plans,
    summarize_search,
    valid_splits,
)
from harness.patch.specs import SpecBuilder
from harness.patch.windows import receptive_field


def chain():
    """A plain chain (no branches): big early activations, small late ones."""
    b = SpecBuilder(40, 40, 3)
    b.conv(16, 3, 2)  # 20x20x16
    b.dw(3, 1)
    b.conv(24, 1)
    b.dw(3, 2)  # 10x10x24
    b.conv(8, 1)
    b.dw(3, 2)  # 5x5x8
    b.conv(10, 1)
    return b.layers


def residual():
    b = SpecBuilder(32, 32, 3)
    b.conv(8, 3, 2, name="stem")
    b.inverted_residual(8, expand=4, prefix="b1")  # has a residual add
    b.inverted_residual(12, expand=4, stride=2, prefix="b2")
    return b.layers


def nbytes(shape, bits=8):
    return tensor_bytes(*shape, bits)


def win_bytes(win, c, bits=8):
    return tensor_bytes(win[1] - win[0], win[3] - win[2], c, bits)


# --- which splits are allowed -------------------------------------------------------------------------------


def test_a_split_inside_a_residual_block_is_refused_with_the_reason():
    layers = residual()
    with pytest.raises(ConfigError, match="residual block") as e:
        plan_patches(layers, "b1.dw", 2)
    assert "stem" in str(e.value) and "b1.add" in str(e.value)
    assert [layers[i].name for i in valid_splits(layers)] == [
        "stem",
        "b1.add",
        "b2.expand",
        "b2.dw",
        "b2.project",
    ]


def test_split_by_name_and_by_index_are_the_same_plan():
    layers = chain()
    by_name = plan_patches(layers, layers[3].name, 2)
    assert plan_patches(layers, 3, 2).windows == by_name.windows
    assert plan_patches(layers, 3 - len(layers), 2).split == by_name.split


@pytest.mark.parametrize(
    "split,n,match",
    [
        ("nope", 2, "not found"),
        (99, 2, "out of range"),
        (6, 6, "cannot cut"),
        (0, 0, ">= 1"),
        (0, 2.5, "integer"),
    ],
)
def test_bad_split_or_patch_count_gives_a_clear_error(split, n, match):
    with pytest.raises(ConfigError, match=match):
        plan_patches(chain(), split, n)


def test_a_fully_connected_layer_cannot_be_inside_the_patch_stage():
    layers = chain() + [LayerSpec("fc", "fc", (5, 5, 10), (1, 1, 4), inputs=(chain()[-1].name,))]
    assert len(layers) - 1 not in valid_splits(layers)
    with pytest.raises(ConfigError, match="no spatial extent"):
        plan_patches(layers, "fc", 1)


def test_inconsistent_layer_shapes_are_reported():
    bad = [LayerSpec("c", "conv2d", (10, 10, 3), (4, 4, 8), (3, 3), 2, (1, 1, 1, 1))]
    with pytest.raises(ConfigError, match="expected 5x5"):
        plan_patches(bad, 0, 2)


@pytest.mark.parametrize("bits,match", [(3, "must be in"), ({"typo": 4}, "unknown tensors")])
def test_bad_bit_widths_are_reported(bits, match):
    with pytest.raises(ConfigError, match=match):
        plan_patches(chain(), 2, 2, bits=bits)


# --- windows ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 4])
def test_output_patches_tile_the_stage_output_exactly_once(n):
    plan = plan_patches(chain(), 4, n)
    h, w, _ = plan.stage_out_shape
    covered = [[0] * w for _ in range(h)]
    for steps in plan.schedule:
        h0, h1, w0, w1 = steps[-1].out_window
        for i in range(h0, h1):
            for j in range(w0, w1):
                covered[i][j] += 1
    assert all(v == 1 for row in covered for v in row)


def test_padding_appears_only_at_image_borders():
    plan = plan_patches(residual(), "b2.project", 4)
    for steps in plan.schedule:
        for st in steps:
            t, left, b, r = st.padding
            h0, h1, w0, w1 = st.in_windows[0]
            ih, iw = {x.name: x for x in residual()}[st.layer].in_shape[:2]
            assert t == 0 or h0 == 0
            assert left == 0 or w0 == 0
            assert b == 0 or h1 == ih
            assert r == 0 or w1 == iw


def test_interior_patch_input_is_the_receptive_field_of_its_grain():
    layers = chain()
    plan = plan_patches(layers, len(layers) - 1, 5)  # 5x5 output, grain 1; patch 12 is the centre
    centre = plan.schedule[12]
    assert centre[0].padding == (0, 0, 0, 0)
    h0, h1, w0, w1 = centre[0].in_windows[0]
    rf = receptive_field(1, [(x.kernel[0], x.stride) for x in layers])
    assert (h1 - h0, w1 - w0) == (rf, rf)


def test_a_consumer_reads_inside_its_producers_per_patch_buffer():
    plan = plan_patches(residual(), "b2.project", 3)
    for p, steps in enumerate(plan.schedule):
        for st in steps:
            for src, (a0, a1, b0, b1) in zip(st.inputs, st.in_windows):
                o = plan.windows[src][p]
                assert o[0] <= a0 < a1 <= o[1] and o[2] <= b0 < b1 <= o[3]


# --- MACs ---------------------------------------------------------------------------------------------------


def test_patched_macs_are_the_sum_over_patches_and_only_overlap_is_redundant():
    layers = chain()
    plan = plan_patches(layers, 5, 3)
    assert plan.stage_macs_once == sum(x.macs for x in layers[:6])
    assert plan.stage_macs_patched == sum(st.macs for steps in plan.schedule for st in steps)
    assert plan.redundant_macs > 0
    assert plan.mac_overhead == pytest.approx(plan.redundant_macs / sum(x.macs for x in layers))
    # the split layer's own outputs are computed exactly once
    once, patched = plan.per_layer_macs[plan.split]
    assert once == patched


def test_one_by_one_kernels_and_a_single_patch_recompute_nothing():
    b = SpecBuilder(9, 9, 3)
    b.conv(4, 1)
    b.conv(5, 1)
    assert plan_patches(b.layers, 1, 3).redundant_macs == 0
    assert plan_patches(chain(), 5, 1).redundant_macs == 0


def test_more_patches_recompute_more():
    layers = chain()
    assert plan_patches(layers, 5, 4).redundant_macs > plan_patches(layers, 5, 2).redundant_macs


# --- SRAM ---------------------------------------------------------------------------------------------------


def test_layer_by_layer_peak_of_a_chain_is_the_largest_input_plus_output():
    layers = chain()
    expected = max(nbytes(x.in_shape) + nbytes(x.out_shape) for x in layers)
    assert layer_by_layer_peak(layers).peak == expected


def test_a_residual_skip_stays_live_across_its_block():
    layers = residual()
    rep = layer_by_layer_peak(layers)
    shapes = {x.name: x.out_shape for x in layers}
    at_dw = rep.per_step[[x.name for x in layers].index("b1.dw")]
    assert at_dw == nbytes(shapes["stem"]) + nbytes(shapes["b1.expand"]) + nbytes(shapes["b1.dw"])


def test_tinyengine_rule_shares_depthwise_and_residual_buffers():
    layers = residual()
    shapes = {x.name: x.out_shape for x in layers}
    rep = layer_by_layer_peak(layers, rule=TINYENGINE)
    steps = [s.name for s in build_steps(layers, TINYENGINE)]
    # depthwise writes over its dying input; the skip (stem) stays live
    assert rep.per_step[steps.index("b1.dw")] == nbytes(shapes["stem"]) + nbytes(shapes["b1.expand"])
    # project + add fused: the sum is written over the skip buffer, the projection is never materialised
    assert rep.per_step[steps.index("b1.project+b1.add")] == nbytes(shapes["b1.dw"]) + nbytes(shapes["stem"])
    assert rep.peak <= layer_by_layer_peak(layers, rule=LIVENESS).peak


def test_patch_stage_peak_is_the_stage_buffer_plus_the_per_patch_working_set_on_a_chain():
    layers = chain()
    split, n = 4, 3
    plan = plan_patches(layers, split, n)
    chans = {INPUT: 3} | {x.name: x.out_shape[2] for x in layers}
    # one per-patch buffer per tensor, sized for its largest patch; the split writes into the stage buffer
    slot = {t: max(win_bytes(w, chans[t]) for w in wins) for t, wins in plan.windows.items()}
    slot[plan.split] = 0
    assert dict(plan.patch_buffer_bytes) == slot
    worst = max(slot[x.inputs[0]] + slot[x.name] for x in layers[: split + 1])
    stage_out = nbytes(layers[split].out_shape)
    assert plan.stage_out_bytes == stage_out
    assert plan.patch_working_set == worst
    assert plan.stage_peak == stage_out + worst
    # the rest runs layer by layer from the full stage-output buffer
    assert plan.rest_peak == max(nbytes(x.in_shape) + nbytes(x.out_shape) for x in layers[split + 1 :])
    assert plan.patch_peak == max(plan.stage_peak, plan.rest_peak)


def test_a_resident_input_image_is_counted_whole_during_the_patch_stage():
    layers = chain()
    streamed = plan_patches(layers, 4, 3)
    resident = plan_patches(layers, 4, 3, rule=MemoryRule(resident_input=True))
    assert resident.stage_peak >= streamed.stage_peak
    assert resident.stage_peak - resident.patch_working_set - resident.stage_out_bytes == nbytes(
        layers[0].in_shape
    )


def test_sub_byte_tensors_are_packed_per_pixel_row():
    layers = chain()  # stage output 10x10x8 at split 4
    plan = plan_patches(layers, 4, 2, bits={layers[4].name: 2})
    assert plan.stage_out_bytes == 10 * 10 * math.ceil(8 * 2 / 8)
    b = SpecBuilder(6, 6, 3)
    b.conv(5, 1)
    four = plan_patches(b.layers, 0, 2, bits=4)
    assert four.stage_out_bytes == 6 * 6 * 3  # ceil(5 * 4 / 8) = 3 bytes per pixel
    assert layer_by_layer_peak(b.layers, 4).peak == 6 * 6 * (2 + 3)


def test_a_tensor_read_by_several_layers_takes_the_widest_requested_precision():
    layers = residual()
    bits = bits_from_config(layers, {"b1.expand": (4, 8), "stem": (8, 8), "b2.expand": (2, 8)})
    assert bits["stem"] == 4  # read by b1.expand (4 bits) and by b1.add (not configured)
    assert bits[INPUT] == 8
    assert bits["b1.add"] == 2


# --- search and verdict -------------------------------------------------------------------------------------


def test_search_returns_valid_plans_within_the_overhead_sorted_by_peak():
    layers = residual()
    plans = search_patch_plans(layers, max_mac_overhead=0.5, n_choices=(2, 3, 4))
    assert plans
    assert all(p.mac_overhead <= 0.5 for p in plans)
    assert all(p.split_index in valid_splits(layers) for p in plans)
    peaks = [p.patch_peak for p in plans]
    assert peaks == sorted(peaks)
    tight = search_patch_plans(layers, max_mac_overhead=0.01, n_choices=(2, 3, 4))
    assert len(tight) < len(plans)


def test_summary_says_plainly_when_patch_based_is_not_better():
    # the peak is the classifier's wide output, which runs layer by layer in every plan
    b = SpecBuilder(12, 12, 3)
    b.conv(8, 3)
    b.pool(12)
    b.layers.append(LayerSpec("fc", "fc", (1, 1, 8), (1, 1, 4000), inputs=(b.last,)))
    plans = search_patch_plans(b.layers, max_mac_overhead=1.0)
    s = summarize_search(b.layers, plans)
    assert not s.patch_wins
    assert s.best is not None and s.best.patch_peak >= s.layer_peak
    assert "NOT better" in s.message


def test_summary_reports_a_win_and_when_nothing_qualifies():
    layers = chain()
    s = summarize_search(layers, search_patch_plans(layers))
    assert s.patch_wins == (s.best.patch_peak < s.layer_peak)
    none = summarize_search(layers, [])
    assert none.best is None and not none.patch_wins and "no patch plan" in none.message


# --- report -------------------------------------------------------------------------------------------------


def test_describe_lists_every_stage_layer_and_the_peaks():
    layers = residual()
    plan = plan_patches(layers, "b1.add", 2)
    text = describe(plan)
    for name in plan.stage:
        assert name in text
    assert f"{plan.patch_peak / 1024:.1f} KiB" in text
    assert f"{plan.layer_peak / 1024:.1f} KiB" in text
    detailed = describe(plan, per_patch=True)
    assert all(f"patch {p} " in detailed for p in range(plan.num_patches))


def test_a_plan_serialises_to_json_with_its_full_schedule():
    import json

    plan = plan_patches(residual(), "b2.project", 3, bits=4)
    d = json.loads(json.dumps(plan.to_dict()))
    assert len(d["schedule"]) == 9 and len(d["schedule"][0]) == len(plan.stage)
    assert d["schedule"][4][0]["padding"] == list(plan.schedule[4][0].padding)
    assert d["sram_bytes"]["patch_based"] == plan.patch_peak
    assert d["windows"][INPUT][8] == list(plan.windows[INPUT][8])
