"""``tinyhil bench experiment=kernels``: what its images hold and what its summary says.

The benchmark itself runs in QEMU (about 25 s for all shapes); here one tiny shape runs end to end, and the rest
is checked on the host: every image holds the layer at all nine (a, w) pairs plus the int8 ``_ref`` loop, the
named layers of the issue have the MAC counts the issue gives, and the summary keys are flat and named as asked.
"""

from __future__ import annotations

import pandas as pd
import pytest

from harness import ops
from harness.experiments import bench_kernels as bk
from harness.ops import floor

ISSUE_MACS = {
    "conv3x3_s1_16x16_16to16": 589_824,
    "conv3x3_s2_32x32_3to16": 110_592,
    "dw3x3_s1_16x16x48": 110_592,
    "dw3x3_s2_32x32x48": 110_592,
    "pw_16x16_16to48": 196_608,
    "pw_8x8_96to24": 147_456,
    "fc_256to10": 2_560,
    "fc_1024to64": 65_536,
    "add_24x24x8": 4_608,  # the default network's residual add: one element each
    "avgpool_3x3x1280": 11_520,  # its global pool: one per window tap
}
TINY = bk.LayerShape("tiny_pw", "pointwise", 4, 4, 8, 8)


def test_the_issues_layers_are_benchmarked_under_their_names_with_their_mac_counts():
    assert {s.name: s.macs for s in bk.LAYERS} == ISSUE_MACS
    for s in bk.LAYERS:
        img = bk.build_image(s)
        bench = [layer for layer in img.model.layers if layer.name in img.layers]
        assert all(ops.macs(img.model, layer) == s.macs for layer in bench)


def test_narrower_outputs_and_elementwise_shapes_get_their_own_layers():
    img = bk.build_image(TINY, o_bits=(8, 4, 2))
    bench = [layer for layer in img.model.layers if layer.name in img.layers]
    assert len(bench) == 9 * 3 + 1
    assert {(img.layers[layer.name], img.model.o_bits(layer)) for layer in bench} >= {
        ("a4w4", 8),
        ("a4w4_o4", 4),
        ("a4w4_o2", 2),
        ("ref", 8),
    }
    add = next(s for s in bk.LAYERS if s.op == "add")
    img = bk.build_image(add, o_bits=(8, 4, 2))
    bench = [layer for layer in img.model.layers if layer.name in img.layers]
    assert sorted(img.layers.values()) == ["a2", "a4", "a8"]
    assert all(layer.op == "add" and img.model.o_bits(layer) == img.model.a_bits(layer) for layer in bench)


def test_floor_columns_divide_the_count_by_the_floor_of_the_run_unit():
    shape = bk.LAYERS[5]  # pw_8x8_96to24
    c = bk.floor_columns(shape, 8, 8, shape.macs, 2.0 * shape.macs, "instructions", "cortex-m4")
    assert c["floor_per_mac"] == pytest.approx(floor.floor_per_mac(shape.geometry(), 8, 8))
    assert c["ratio_to_floor"] == pytest.approx(2.0 / c["floor_per_mac"])
    m7 = bk.floor_columns(shape, 8, 8, shape.macs, 1.0, "cycles", "cortex-m7")
    m4 = bk.floor_columns(shape, 8, 8, shape.macs, 1.0, "cycles", "cortex-m4")
    assert m7["floor_per_mac"] < m4["floor_per_mac"]
    assert (
        bk.floor_columns(shape, 8, 8, shape.macs, 1.0, "cycles", "cortex-m55")["floor"]
        != bk.floor_columns(shape, 8, 8, shape.macs, 1.0, "cycles", "cortex-m55")["floor"]
    )  # NaN: no model


def test_an_image_holds_every_pair_and_the_ref_loop_each_with_its_own_output():
    img = bk.build_image(bk.LAYERS[0])
    m = img.model
    assert sorted(img.layers.values()) == sorted([bk.pair_label(p) for p in bk.PAIRS] + ["ref"])
    bench = [layer for layer in m.layers if layer.name in img.layers]
    assert {(m.a_bits(layer), layer.w_bits) for layer in bench} == set(bk.PAIRS)
    assert all(m.o_bits(layer) == 8 for layer in bench)
    assert len({layer.output for layer in bench}) == len(bench)


def test_ref_layers_are_pointed_at_the_plain_int8_loops_in_the_generated_c():
    from harness.codegen.artifact import layer_artifact

    img = bk.build_image(TINY)
    c = layer_artifact(img.model).sources["model_data.c"]
    line = next(ln for ln in c.splitlines() if '"tiny_pw_ref"' in ln)
    assert ".fn = th_pointwise_ref," in line
    a8w8 = next(ln for ln in c.splitlines() if '"tiny_pw_a8w8"' in ln)
    assert ".fn = th_pointwise_a8w8," in a8w8
    assert c.count("th_pointwise_ref,") == 1


def test_summary_keys_are_flat_and_name_layer_pair_and_speedup():
    rows = [
        {
            "layer": "pw_8x8_96to24",
            "op": "pointwise",
            "pair": p,
            "count": c * 147_456,
            "macs": 147_456,
            "count_per_mac": c,
        }
        for p, c in [("a8w8", 2.0), ("a4w4", 1.5), ("a8w4", 3.0), ("ref", 6.0)]
    ]
    s = bk.summarize(pd.DataFrame(rows))
    assert s["pw_8x8_96to24_a8w8_per_mac"] == 2.0
    assert s["int8_vs_ref_speedup_pw_8x8_96to24"] == 3.0
    assert s["pw_8x8_96to24_beats_int8"] == ["a4w4"]
    assert s["pointwise_beats_int8"] == ["a4w4"]
    assert s["pw_8x8_96to24_a8w8_meets_target"] is False
    assert s["pw_8x8_96to24_a4w4_vs_a8w8"] == 0.75
    assert s["pointwise_best_subbyte_pair"] == "a4w4"
    assert s["pointwise_best_subbyte_vs_a8w8"] == 0.75
    assert all(not isinstance(v, (dict, list)) or k.endswith("beats_int8") for k, v in s.items())


def test_summary_states_floors_and_output_narrowing():
    rows = [
        {
            "layer": "pw_8x8_96to24",
            "op": "pointwise",
            "pair": p.split("_o")[0],
            "variant": p,
            "o_bits": o,
            "count": c * 147_456,
            "macs": 147_456,
            "count_per_mac": c,
            "ratio_to_floor": c / 0.5,
        }
        for p, o, c in [("a8w8", 8, 2.0), ("a8w8_o4", 4, 2.04), ("a2w2", 8, 1.0), ("a2w2_o2", 2, 1.1)]
    ]
    s = bk.summarize(pd.DataFrame(rows))
    assert s["pw_8x8_96to24_a8w8_ratio_to_floor"] == 4.0
    assert s["pw_8x8_96to24_a8w8_o4_growth_pct"] == 2.0
    assert s["pw_8x8_96to24_a2w2_o2_growth_pct"] == 10.0
    assert s["narrow_output_growth_max_pct"] == 10.0
    assert s["pointwise_best_subbyte_pair"] == "a2w2" and s["pointwise_best_subbyte_vs_a8w8"] == 0.5


@pytest.mark.qemu
@pytest.mark.qemu
def test_one_image_measures_every_kernel_bit_exactly_on_the_emulated_board(tmp_path):
    from harness.config.board import load_board_config

    rows = bk.measure_image(bk.build_image(TINY), load_board_config("qemu-mps2-an386"), tmp_path)
    assert len(rows) == 10
    assert all(r["bit_exact"] for r in rows)
    assert all(r["count"] > r["macs"] for r in rows)  # at least one instruction per MAC
    # the floor is a lower bound: no kernel below it
    assert all(r["ratio_to_floor"] >= 1.0 for r in rows if r["pair"] != "ref"), [
        (r["pair"], r["ratio_to_floor"]) for r in rows
    ]
