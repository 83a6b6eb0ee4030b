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

ISSUE_MACS = {
    "conv3x3_s1_16x16_16to16": 589_824,
    "conv3x3_s2_32x32_3to16": 110_592,
    "dw3x3_s1_16x16x48": 110_592,
    "dw3x3_s2_32x32x48": 110_592,
    "pw_16x16_16to48": 196_608,
    "pw_8x8_96to24": 147_456,
    "fc_256to10": 2_560,
    "fc_1024to64": 65_536,
}
TINY = bk.LayerShape("tiny_pw", "pointwise", 4, 4, 8, 8)


def test_the_issues_layers_are_benchmarked_under_their_names_with_their_mac_counts():
    assert {s.name: s.macs for s in bk.LAYERS} == ISSUE_MACS
    for s in bk.LAYERS:
        img = bk.build_image(s)
        bench = [layer for layer in img.model.layers if layer.name in img.layers]
        assert all(ops.macs(img.model, layer) == s.macs for layer in bench)


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


@pytest.mark.qemu
@pytest.mark.qemu
def test_one_image_measures_every_kernel_bit_exactly_on_the_emulated_board(tmp_path):
    from harness.config.board import load_board_config

    rows = bk.measure_image(bk.build_image(TINY), load_board_config("qemu-mps2-an386"), tmp_path)
    assert len(rows) == 10
    assert all(r["bit_exact"] for r in rows)
    assert all(r["count"] > r["macs"] for r in rows)  # at least one instruction per MAC
