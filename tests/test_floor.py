"""The instruction-set floor (harness/ops/floor.py): the derivation's arithmetic, its constructions' limits and the
properties a lower bound must have. The measured side (every kernel at or above its floor) is checked in QEMU by
tests/test_bench_kernels.py."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.ops import floor as fl

PAIRS = [(a, w) for a in (8, 4, 2) for w in (8, 4, 2)]


def test_a_mix_costs_its_instructions_and_the_cycles_of_each_core():
    m = fl.Mix(mul=8, simd=2, alu=1, ldr=2, ldrd=2, st=1)
    assert m.instructions == 16
    # Cortex-M4: one cycle each, LDR pipelined at one, LDRD three
    assert m.cycles("cortex-m4") == 8 + 2 + 1 + 1 + 2 + 3 * 2
    # Cortex-M7: the multiply pipe (8) binds before the issue width ((16 - 2) / 2 + 2 = 9)
    assert m.cycles("cortex-m7") == 9
    assert fl.Mix(mul=10, alu=2).cycles("cortex-m7") == 10
    # an LDM of four registers: one instruction, 1 + 4 cycles on the M4, two single-issue cycles on the M7
    assert fl.Mix(ldm=1).instructions == 1
    assert fl.Mix(ldm=1).cycles("cortex-m4") == 5 and fl.Mix(ldm=1).cycles("cortex-m7") == 2
    with pytest.raises(ConfigError):
        m.cycles("cortex-m0")
    with pytest.raises(ConfigError):
        m.count("cycles")


def test_the_a8w8_inner_loop_floor_is_the_hand_derivation():
    """Lane scheme, m x n blocking, LDRD activations: per group of two entries m n SMLAD, n / 2 LDRD, and per
    channel half an LDR and one SXTB16: (m n + n / 2 + m (1/2 + 1)) / (2 m n) per MAC."""
    s = fl.schemes(8, 8)[0]
    for m, n in [(1, 4), (2, 2), (2, 3), (1, 7)]:
        got = fl._inner(s, 8, m, n, 2).instructions
        assert got == pytest.approx((m * n + n / 2 + m * 1.5) / (2 * m * n))


def test_blockings_respect_the_register_file():
    s = fl.schemes(8, 8)[0]
    assert fl._fits(s, 2, 2, 2) and fl._fits(s, 1, 4, 2) and fl._fits(s, 2, 3, 2)
    assert not fl._fits(s, 3, 3, 2) and not fl._fits(s, 2, 4, 2)  # 9 or 8 accumulators and their operands
    f = fl.schemes(2, 2)[1]
    assert f.name == "field8" and fl._fits(f, 1, 4, 2) and not fl._fits(f, 2, 4, 2)


def test_field_schemes_exist_only_below_8_bits_and_their_fill_follows_the_value_ranges():
    for a, w in PAIRS:
        names = [s.name for s in fl.schemes(a, w)]
        assert names[0] == "lane"
        assert (len(names) == 2) == (a <= 4 and w <= 4)
    fill = {(a, w): fl.schemes(a, w)[1].fill for a, w in PAIRS if a <= 4 and w <= 4}
    # 8-bit fields hold 255 // (4 products x u_max x v_max) SMLADs; a4w4 needs 11-bit fields (2 SMLADs)
    assert fill == {
        (2, 2): 255 // (4 * 3 * 3),
        (4, 2): 255 // (4 * 15 * 3),
        (2, 4): 255 // (4 * 3 * 15),
        (4, 4): 2047 // (4 * 15 * 15),
    }


@pytest.mark.parametrize(
    "unit,core", [("instructions", None), ("cycles", "cortex-m4"), ("cycles", "cortex-m7")]
)
def test_matmul_floors_order_as_the_constructions_say(unit, core):
    for k, m, px in [(96, 24, 64), (144, 16, 256), (16, 48, 256), (27, 16, 256), (256, 10, 1)]:
        f = {(a, w): fl.matmul_floor(a, w, k, m, px, unit, core)[0] for a, w in PAIRS}
        assert all(v > 0 for v in f.values())
        # four MACs per SMLAD: a2w2 below a8w8; deeper K lowers the per-output share
        assert f[(2, 2)] < f[(8, 8)]
    deep = fl.matmul_floor(8, 8, 96, 24, 64, unit, core)[0]
    shallow = fl.matmul_floor(8, 8, 16, 24, 64, unit, core)[0]
    assert shallow > deep


def test_m7_floor_is_below_m4_floor_dual_issue():
    for a, w in PAIRS:
        assert (
            fl.matmul_floor(a, w, 96, 24, 64, "cycles", "cortex-m7")[0]
            < fl.matmul_floor(a, w, 96, 24, 64, "cycles", "cortex-m4")[0]
        )


def test_layer_floor_dispatches_by_op_and_rejects_what_it_does_not_cover():
    g = fl.LayerGeometry("depthwise", 9, 48, 256, 1, 9)
    assert fl.floor_per_mac(g, 8, 8) == fl.depthwise_floor(8, 8, 1)
    assert fl.floor_per_mac(fl.LayerGeometry("add", 1, 8, 576), 8, 8) == fl.add_floor(8)
    assert fl.floor_per_mac(fl.LayerGeometry("avgpool", 9, 64, 1, 1, 9), 8, 8) == fl.avgpool_floor(8, 9)
    # stride 2 brings in four input elements per output: a higher floor
    assert fl.depthwise_floor(8, 8, 2) > fl.depthwise_floor(8, 8, 1)
    with pytest.raises(ConfigError):
        fl.floor_per_mac(fl.LayerGeometry("depthwise", 25, 8, 16, 1, 25), 8, 8)
    with pytest.raises(ConfigError):
        fl.schemes(3, 8)
