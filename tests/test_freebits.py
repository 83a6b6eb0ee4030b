"""The Free Bits refiner on hand-built tables: what it raises, how it prices a raise, and when it must not."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from harness.errors import TableError
from harness.graph.spec import INPUT, LayerSpec
from harness.memory.budget import make_fits, param_bytes, peak_sram_bytes
from harness.precision.config import PrecisionConfig
from harness.precision.groups import harmonize
from harness.search.freebits import refine
from harness.table.lut import LatencyTable, profile_entries

TARGET = {"board": "qemu-mps2-an386", "timer": "systick-icount", "firmware_hash": "abc", "cflags": "-O2"}
Count = Callable[[str, int, int, int], "float | None"]


def pw(name: str, src: str, c_in: int, c_out: int) -> LayerSpec:
    return LayerSpec(name, "pointwise", (4, 4, c_in), (4, 4, c_out), inputs=(src,))


def chain() -> list[LayerSpec]:
    """c0 -> c1 -> c2 (network output); distinct shapes, so distinct table keys."""
    return [pw("c0", INPUT, 3, 8), pw("c1", "c0", 8, 16), pw("c2", "c1", 16, 2)]


def residual() -> list[LayerSpec]:
    """c0 -> c1 -> add(c0, c1) -> c2: c1 and c2 read one activation group (c0, c1, add)."""
    return [
        pw("c0", INPUT, 3, 8),
        pw("c1", "c0", 8, 8),
        LayerSpec("add", "add", (4, 4, 8), (4, 4, 8), inputs=("c0", "c1")),
        pw("c2", "add", 8, 16),
    ]


def table(layers: list[LayerSpec], count: Count) -> LatencyTable:
    """Every profiled entry; ``count(layer, a, w, o)`` gives its count, None leaves it out."""
    rows = []
    for (key, a, w, o), spec in profile_entries(layers):
        c = count(spec.name, a, w, o)
        if c is not None:
            rows.append(
                {"layer_key": key, "a_bits": a, "w_bits": w, "o_bits": o, "count": float(c), "op": spec.op}
            )
    t = LatencyTable()
    t.add(rows, **TARGET)
    return t


def flat(default: float = 100.0, **per_layer: Callable[[int, int, int], float | None]) -> Count:
    """Layers not named cost ``default`` at every bit-width."""
    return lambda n, a, w, o: per_layer[n](a, w, o) if n in per_layer else default


def cfg(**layers: tuple[int, int]) -> PrecisionConfig:
    return PrecisionConfig(dict(layers))


# the paper's move -------------------------------------------------------------------------------------------


def test_a_faster_higher_precision_pair_is_taken_and_its_saving_reported():
    c1 = {(4, 4): 100, (8, 4): 80, (8, 8): 90}
    t = table(chain(), flat(c1=lambda a, w, o: c1.get((a, w), 120)))
    start = cfg(c0=(8, 8), c1=(4, 4), c2=(8, 8))
    r = refine(chain(), start, t)
    assert r.config["c1"] == (8, 4)  # the fastest of the faster pairs
    assert [(m.layer, m.from_bits, m.to_bits, m.saving) for m in r.moves] == [
        ("c1", (4, 4), (8, 4), 100 - 80)
    ]
    assert r.predicted_before == t.predict(chain(), start)[0]
    assert r.predicted_after == t.predict(chain(), r.config)[0] == r.predicted_before - 20


def test_non_monotone_latency_lower_bits_slower_than_8_bit():
    c1 = {(2, 2): 300, (4, 4): 150, (8, 8): 100}
    t = table(chain(), flat(c1=lambda a, w, o: c1.get((a, w), 200)))
    for start in ((2, 2), (4, 4)):
        r = refine(chain(), cfg(c0=(8, 8), c1=start, c2=(8, 8)), t)
        assert r.config["c1"] == (8, 8)
        assert r.saving == c1[start] - 100


def test_bits_are_never_lowered_even_when_that_would_be_faster():
    c1 = {(2, 2): 10, (8, 8): 100}
    t = table(chain(), flat(c1=lambda a, w, o: c1.get((a, w), 200)))
    r = refine(chain(), cfg(c0=(8, 8), c1=(8, 8), c2=(8, 8)), t)
    assert r.moves == [] and r.config["c1"] == (8, 8)


@pytest.mark.parametrize("tie_break, expected", [("more_bits", (8, 8)), ("fewer_bits", (8, 4))])
def test_ties_between_equally_fast_pairs_follow_the_documented_rule(tie_break, expected):
    c1 = {(4, 4): 100, (8, 4): 70, (8, 8): 70}
    t = table(chain(), flat(c1=lambda a, w, o: c1.get((a, w), 120)))
    r = refine(chain(), cfg(c0=(8, 8), c1=(4, 4), c2=(8, 8)), t, tie_break=tie_break)
    assert r.config["c1"] == expected and r.saving == 30


def test_a_pair_as_fast_as_the_current_one_is_not_a_move():
    t = table(chain(), flat())
    r = refine(chain(), cfg(c0=(8, 2), c1=(2, 2), c2=(2, 2)), t)
    assert r.moves == [] and r.saving == 0


# errors -----------------------------------------------------------------------------------------------------


def test_a_missing_entry_for_the_current_configuration_names_the_key():
    t = table(chain(), flat(c1=lambda a, w, o: None if (a, w) == (4, 4) else 100))
    with pytest.raises(TableError) as e:
        refine(chain(), cfg(c0=(8, 8), c1=(4, 4), c2=(8, 8)), t)
    assert chain()[1].key() in str(e.value) and "a4w4o8" in str(e.value)


def test_a_table_from_another_board_or_timer_is_refused():
    t = table(chain(), flat())
    start = cfg(c0=(8, 8), c1=(8, 8), c2=(8, 8))
    with pytest.raises(TableError) as e:
        refine(chain(), start, t, board="qemu-netduinoplus2", timer="systick-icount")
    assert "qemu-mps2-an386" in str(e.value) and "qemu-netduinoplus2" in str(e.value)
    with pytest.raises(TableError, match="dwt"):
        refine(chain(), start, t, board=TARGET["board"], timer="dwt")


# pricing everything a raise changes -------------------------------------------------------------------------


def test_a_raise_of_a_shared_activation_is_priced_for_every_reader():
    # c2 alone would gain 30 from reading 8-bit, but c1 reads the same tensor and loses 50
    layers = residual()
    count = flat(
        c1=lambda a, w, o: 100 + (50 if a == 8 else 0) + (5 if w == 8 else 0),
        c2=lambda a, w, o: 100 - (30 if a == 8 else 0) + (5 if w == 8 else 0),
    )
    t = table(layers, count)
    start = cfg(c0=(8, 4), c1=(4, 4), c2=(4, 4))
    assert refine(layers, start, t).moves == []
    paper = refine(layers, start, t, pricing="paper")  # the per-layer view takes it, and it costs 20
    (m,) = paper.moves
    assert (m.layer, m.to_bits, m.also, m.saving) == ("c2", (8, 4), (("c1", (4, 4), (8, 4)),), -20)
    assert paper.config["c1"][0] == paper.config["c2"][0] == 8  # one tensor, one precision
    assert paper.predicted_after == paper.predicted_before + 20


def test_a_shared_raise_that_helps_both_readers_counts_both_savings():
    layers = residual()
    count = flat(
        c1=lambda a, w, o: 100 - (10 if a == 8 else 0) + (5 if w == 8 else 0),
        c2=lambda a, w, o: 100 - (30 if a == 8 else 0) + (5 if w == 8 else 0),
    )
    r = refine(layers, cfg(c0=(8, 4), c1=(4, 4), c2=(4, 4)), table(layers, count))
    (m,) = r.moves
    assert m.layer == "c1" and m.to_bits == (8, 4) and m.also == (("c2", (4, 4), (8, 4)),) and m.saving == 40


def test_the_producers_output_precision_is_priced_and_changes_the_decision():
    # c1 reading 8-bit saves 10, but c0 then writes 8-bit instead of 4-bit output, which costs 30 more
    count = flat(
        c0=lambda a, w, o: 100 + (30 if o == 8 else 0), c1=lambda a, w, o: 100 - (10 if a == 8 else 0)
    )
    t = table(chain(), count)
    start = cfg(c0=(8, 8), c1=(4, 8), c2=(8, 8))
    assert refine(chain(), start, t).moves == []
    paper = refine(chain(), start, t, pricing="paper")
    assert [(m.layer, m.to_bits, m.saving) for m in paper.moves] == [("c1", (8, 8), -20)]


def test_a_missing_output_precision_row_is_modelled_and_the_model_is_named():
    # c0 was only profiled at o=4; c1 and c2 show that 8-bit output costs 1 count more per output element
    numel = {s.name: int(np.prod(s.out_shape)) for s in chain()}

    def count(n, a, w, o):
        if n == "c0":
            return 100 if o == 4 else None
        return (200 - (150 if a == 8 and n == "c1" else 0)) + (numel[n] if o == 8 else 0)

    t = table(chain(), count)
    start = cfg(c0=(8, 8), c1=(4, 8), c2=(8, 8))
    r = refine(chain(), start, t)
    assert [(m.layer, m.to_bits, m.saving) for m in r.moves] == [("c1", (8, 8), 150 - numel["c0"])]
    assert any("c0" in n and "o-delta" in n for n in r.notes)
    strict = refine(chain(), start, t, estimate=False)
    assert strict.moves == [] and any("cannot be priced" in n for n in strict.notes)


# budgets, iteration -----------------------------------------------------------------------------------------


def test_a_raise_that_breaks_the_memory_budget_is_not_free():
    c1 = {(4, 4): 100, (4, 8): 70, (8, 4): 80}
    t = table(chain(), flat(c1=lambda a, w, o: c1.get((a, w), 120)))
    start = cfg(c0=(8, 8), c1=(4, 4), c2=(8, 8))
    assert refine(chain(), start, t).config["c1"] == (4, 8)
    flash = make_fits(chain(), flash_bytes=param_bytes(chain(), start))
    r = refine(chain(), start, t, fits=flash)
    assert r.config["c1"] == (8, 4)  # the next best move, which needs no more flash
    assert any("exceeds the memory budget" in n for n in r.notes)
    both = make_fits(
        chain(), flash_bytes=param_bytes(chain(), start), sram_bytes=peak_sram_bytes(chain(), start)
    )
    assert refine(chain(), start, t, fits=both).moves == []


def test_sweeps_repeat_until_no_move_improves():
    # c2 raising its input to 8 makes c1 write 8-bit output, and only then is c1's w=8 faster
    c1 = {4: {(4, 4): 50, (4, 8): 60}, 8: {(4, 4): 100, (4, 8): 50}}
    count = flat(
        c1=lambda a, w, o: c1.get(o, {}).get((a, w), 1000),
        c2=lambda a, w, o: {2: 300, 4: 200, 8: 100}[a] + (10 if w == 8 else 0),
    )
    t = table(chain(), count)
    start = cfg(c0=(8, 8), c1=(4, 4), c2=(4, 4))
    r = refine(chain(), start, t)
    assert [(m.layer, m.to_bits) for m in r.moves] == [("c2", (8, 4)), ("c1", (4, 8))]
    assert r.sweeps == 3 and r.saving == 50 + 50
    once = refine(chain(), start, t, iterate=False)
    assert [m.layer for m in once.moves] == ["c2"] and once.saving == 50


def test_on_random_tables_the_result_is_consistent_and_a_local_optimum():
    layers = residual()
    rng = np.random.default_rng(0)
    bits = (2, 4, 8)
    keys = {s.name: s.key() for s in layers}
    n_moves = 0
    for _ in range(10):
        vals = {e: float(rng.integers(50, 150)) for e, _ in profile_entries(layers)}
        t = table(layers, lambda n, a, w, o, _v=vals: _v[(keys[n], a, w, o)])
        g = int(rng.choice(bits))
        start = cfg(
            c0=(8, int(rng.choice(bits))), c1=(g, int(rng.choice(bits))), c2=(g, int(rng.choice(bits)))
        )
        r = refine(layers, start, t)
        n_moves += bool(r.moves)
        assert r == refine(layers, start, t)  # deterministic
        assert all(r.config[n][i] >= start[n][i] for n in start for i in (0, 1))
        assert r.predicted_after == t.predict(layers, r.config)[0]
        assert r.predicted_before - r.predicted_after == pytest.approx(sum(m.saving for m in r.moves))
        for n in start:  # no single raise (with its shared readers) is faster any more
            for a in bits:
                for w in bits:
                    if a >= r.config[n][0] and w >= r.config[n][1]:
                        other = harmonize(layers, r.config.with_layer(n, a, w))
                        assert t.predict(layers, other)[0] >= r.predicted_after - 1e-9
    assert n_moves >= 5  # most cases exercise the refiner, not only its fixed points


def test_a_move_unpacks_as_layer_from_to_saving():
    c1 = {(4, 4): 100, (8, 4): 80}
    r = refine(
        chain(),
        cfg(c0=(8, 8), c1=(4, 4), c2=(8, 8)),
        table(chain(), flat(c1=lambda a, w, o: c1.get((a, w), 120))),
    )
    layer, frm, to, saving = r.moves[0]
    assert (layer, frm, to, saving) == ("c1", (4, 4), (8, 4), 20)
