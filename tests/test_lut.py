"""The latency lookup table: keys, resume semantics, target guard, persistence, prediction."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.errors import ConfigError, TableError
from harness.graph.spec import INPUT, LayerSpec
from harness.precision.config import PrecisionConfig
from harness.table.lut import (
    KEY_COLUMNS,
    MEASURED,
    O_DELTA_ALL,
    O_DELTA_OP,
    O_INVARIANT,
    LatencyTable,
    Target,
    out_numel_from_key,
    profile_entries,
)
from tests.fixtures.tables import TARGET, row, table_of


def pw(name: str, src: str, c_in: int = 8, c_out: int = 8, hw: int = 4) -> LayerSpec:
    return LayerSpec(name, "pointwise", (hw, hw, c_in), (hw, hw, c_out), inputs=(src,))


# adding rows, resuming --------------------------------------------------------------------------------------


def test_add_reports_new_keys_and_refuses_to_overwrite_a_measurement():
    t = table_of([row("k1", 8, 8, 8, 100.0)])
    new = t.add([row("k1", 8, 8, 8, 999.0), row("k1", 4, 4, 8, 50.0)], **TARGET)
    assert [k[4:] for k in new] == [("k1", 4, 4, 8)]
    assert t.lookup("k1", 8, 8, 8) == 100.0  # the first measurement stands
    with pytest.raises(TableError, match="already has the key"):
        t.add([row("k1", 8, 8, 8, 1.0)], on_duplicate="error", **TARGET)


def test_a_batch_that_repeats_a_key_is_refused():
    with pytest.raises(TableError, match="repeat the key"):
        table_of([row("k", 8, 8, 8, 1.0), row("k", 8, 8, 8, 2.0)])


def test_missing_lists_what_a_resumed_profiling_run_still_has_to_measure():
    t = table_of([row("k1", 8, 8, 8, 1.0)])
    wanted = [("k1", 8, 8), ("k1", 8, 8, 8), ("k1", 4, 4, 8), ("k2", 8, 8, 4), ("k1", 4, 4, 8)]
    assert t.missing(wanted) == [("k1", 4, 4, 8), ("k2", 8, 8, 4)]
    # a target not profiled yet has everything missing; the other target's rows do not count
    other = {**TARGET, "board": "qemu-netduinoplus2"}
    assert t.missing(wanted, **other) == [("k1", 8, 8, 8), ("k1", 4, 4, 8), ("k2", 8, 8, 4)]
    t.add([row("k2", 8, 8, 4, 1.0)], **TARGET)
    assert t.missing(wanted) == [("k1", 4, 4, 8)]


def test_rows_are_validated():
    with pytest.raises(TableError, match="lack column"):
        LatencyTable().add([{"layer_key": "k", "a_bits": 8, "w_bits": 8, "o_bits": 8, "count": 1.0}])
    with pytest.raises(TableError, match="bits"):
        table_of([row("k", 3, 8, 8, 1.0)])
    with pytest.raises(TableError, match="outside"):
        table_of([row("k", 8, 8, 8, 10.0, count_min=11.0)])
    with pytest.raises(TableError, match="negative"):
        table_of([row("k", 8, 8, 8, -1.0)])


def test_defaults_fill_min_max_repeats_date_and_output_size():
    t = table_of([row("conv2d_k3x3_s1_p1-1-1-1_i8x8x3_o8x8x16", 8, 8, 8, 42.0)])
    r = t.df.iloc[0]
    assert (r["count_min"], r["count_max"], r["repeats"]) == (42.0, 42.0, 1)
    assert r["out_numel"] == 8 * 8 * 16 == out_numel_from_key(r["layer_key"])
    assert pd.Timestamp(r["date"]).tzinfo is not None


# lookup and the target guard --------------------------------------------------------------------------------


def test_lookup_of_a_missing_entry_names_the_key_the_bits_and_how_to_profile_it():
    t = table_of([row("pointwise_k", 8, 8, 8, 1.0)])
    with pytest.raises(TableError) as e:
        t.lookup("pointwise_k", 4, 2, 8)
    msg = str(e.value)
    assert "pointwise_k" in msg and "a4w2o8" in msg and "a8w8o8" in msg and "rofile" in msg
    with pytest.raises(TableError, match="no row at all for this layer shape"):
        t.lookup("never_seen", 8, 8, 8)


def test_a_table_from_one_board_or_timer_is_refused_for_another():
    t = table_of([row("k", 8, 8, 8, 1.0)])
    with pytest.raises(TableError) as e:
        t.for_target("qemu-netduinoplus2", "systick-icount")
    assert "qemu-mps2-an386" in str(e.value) and "qemu-netduinoplus2" in str(e.value)
    with pytest.raises(TableError) as e:
        t.for_target("qemu-mps2-an386", "dwt")
    assert "systick-icount" in str(e.value) and "dwt" in str(e.value)
    with pytest.raises(TableError, match="board 'qemu-mps2-an386'.*board 'stm32h7'"):
        t.require_target("stm32h7", "dwt")
    assert t.for_target(TARGET["board"], TARGET["timer"]).lookup("k", 8, 8, 8) == 1.0


def test_a_table_holding_several_targets_must_be_narrowed_before_lookup():
    t = table_of([row("k", 8, 8, 8, 1.0)])
    t.add([row("k", 8, 8, 8, 7.0)], **{**TARGET, "timer": "dwt"})
    assert t.targets() == sorted(
        [Target(**TARGET), Target(**{**TARGET, "timer": "dwt"})],
        key=lambda x: (x.board, x.timer, x.firmware_hash, x.cflags),
    )
    with pytest.raises(TableError, match="2 targets"):
        t.lookup("k", 8, 8, 8)
    assert t.for_target(TARGET["board"], "dwt").lookup("k", 8, 8, 8) == 7.0


# persistence ------------------------------------------------------------------------------------------------


def test_parquet_and_csv_round_trip_keep_every_value_and_type(tmp_path: Path):
    t = table_of(
        [row("k1", 8, 8, 8, 100.5, macs=1000, op="pointwise"), row("k1", 2, 4, 2, 80.0)],
        firmware_hash="0042",
        cflags="",
    )  # a hash that looks like a number, empty flags
    pq, csv = t.save(tmp_path / "lut")
    assert pq.exists() and csv.exists()
    from_pq = LatencyTable.load(tmp_path / "lut.parquet")
    pq.unlink()
    from_csv = LatencyTable.load(tmp_path / "lut")
    pd.testing.assert_frame_equal(from_pq.df, t.df)
    pd.testing.assert_frame_equal(from_csv.df, t.df)
    assert from_csv.df["firmware_hash"].iloc[0] == "0042"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left behind


def test_save_never_drops_rows_another_session_wrote(tmp_path: Path):
    path = tmp_path / "lut"
    LatencyTable.load(path, missing_ok=True)  # fresh start is an empty table
    a = LatencyTable.load(path, missing_ok=True)
    b = LatencyTable.load(path, missing_ok=True)
    a.add([row("k1", 8, 8, 8, 1.0)], **TARGET)
    b.add([row("k2", 8, 8, 8, 2.0)], **TARGET)
    a.save(path)
    b.save(path)
    keys = {k[4] for k in map(tuple, LatencyTable.load(path).df[list(KEY_COLUMNS)].itertuples(index=False))}
    assert keys == {"k1", "k2"}


def test_load_without_a_file_says_to_profile():
    with pytest.raises(TableError, match="profile"):
        LatencyTable.load("/nonexistent/lut")


# estimates for missing o_bits rows --------------------------------------------------------------------------


def test_missing_output_bits_are_modelled_from_layers_measured_at_both():
    # per output element, writing 4-bit instead of 8-bit output costs +0.5 on "other" (op pointwise)
    out4, out8 = "pointwise_x_o4x4x8", "pointwise_y_o2x2x8"
    t = table_of(
        [
            row(out8, 8, 8, 8, 100.0, op="pointwise"),
            row(out4, 8, 8, 8, 1000.0, op="pointwise"),
            row(out4, 8, 8, 4, 1064.0, op="pointwise"),
            row("add_z_o2x2x8", 8, 0, 8, 10.0, op="add"),
        ]
    )
    count, source = t.estimate(out8, 8, 8, 4)
    assert source == O_DELTA_OP
    assert count == pytest.approx(100.0 + 2 * 2 * 8 * (64.0 / (4 * 4 * 8)))
    # no add was measured at two output precisions: the pointwise evidence is used
    assert t.estimate("add_z_o2x2x8", 8, 0, 4)[1] == O_DELTA_ALL
    assert t.estimate(out8, 8, 8, 8) == (100.0, MEASURED)


def test_without_evidence_the_count_is_taken_as_independent_of_output_bits():
    t = table_of([row("pointwise_y_o2x2x8", 8, 8, 8, 100.0, op="pointwise")])
    assert t.estimate("pointwise_y_o2x2x8", 8, 8, 2) == (100.0, O_INVARIANT)
    with pytest.raises(TableError, match="a4w8o8"):
        t.estimate("pointwise_y_o2x2x8", 4, 8, 8)  # (a, w) never measured: no model


# end-to-end prediction --------------------------------------------------------------------------------------


def residual_net() -> list[LayerSpec]:
    """c0 -> c1 -> add(c0, c1) -> c2; c0, c1 and the add share one activation group."""
    return [
        pw("c0", INPUT),
        pw("c1", "c0"),
        LayerSpec("add", "add", (4, 4, 8), (4, 4, 8), inputs=("c0", "c1")),
        pw("c2", "add"),
    ]


def full_table(layers: list[LayerSpec], count) -> LatencyTable:
    rows = [row(k, a, w, o, count(s.name, a, w, o), op=s.op) for (k, a, w, o), s in profile_entries(layers)]
    return table_of(rows)


def test_predict_keys_each_layer_by_what_its_consumers_read():
    layers = residual_net()
    # every layer of this net has the same shape key, so the count encodes (a, w, o) only
    t = full_table(layers, lambda n, a, w, o: 100 * a + 10 * w + o)
    cfg = PrecisionConfig({"c0": (8, 8), "c1": (4, 2), "c2": (4, 8)})
    total, per = t.predict(layers, cfg)
    # group {c0, c1, add} is read at 4 bits (by c1 and c2); c2's output is the network output (8)
    assert per == {"c0": 800 + 80 + 4, "c1": 400 + 20 + 4, "add": 400 + 0 + 4, "c2": 400 + 80 + 8}
    assert total == sum(per.values())
    assert t.predict(layers, cfg, out_bits_rule=8)[1]["c0"] == 800 + 80 + 8


def test_predict_refuses_readers_of_one_tensor_that_disagree():
    layers = residual_net()
    t = full_table(layers, lambda n, a, w, o: 1.0)
    with pytest.raises(ConfigError, match="harmonize"):
        t.predict(layers, PrecisionConfig({"c0": (8, 8), "c1": (4, 8), "c2": (8, 8)}))


def test_profile_entries_cover_every_bit_combination_once():
    layers = residual_net()
    entries = [e for e, _ in profile_entries(layers)]
    assert len(entries) == len(set(entries))
    weighted_keys = {s.key() for s in layers if s.has_weights}
    assert {e for e in entries if e[0] in weighted_keys} == {
        (k, a, w, o) for k in weighted_keys for a in (2, 4, 8) for w in (2, 4, 8) for o in (2, 4, 8)
    }
    assert [e[1:] for e in entries if e[0] == layers[2].key()] == [(2, 0, 2), (4, 0, 4), (8, 0, 8)]
