"""The closed loop with a scripted board: stops, the kept best round, memory refusals, like-with-like pricing and
the per-layer predictions (no QEMU: the measurement is scripted, the table, refiner and loop are the real ones)."""

from __future__ import annotations

import pytest

from harness.errors import DoesNotFitError
from harness.graph.spec import LayerSpec
from harness.loop.closed_loop import STOP_CONVERGED, STOP_NO_GAIN, LoopSettings, closed_loop
from harness.measure.session import LayerMeasurement, Measurement
from harness.precision.config import PrecisionConfig
from harness.precision.groups import activation_groups, layer_bits
from harness.table.lut import LatencyTable

BOARD, TIMER = "qemu-mps2-an386", "qemu-icount"
BITS = (2, 4, 8)

# a chain of three pointwise layers: the input, then l1 -> l2 -> l3 (l3's output is the network's)
LAYERS = [
    LayerSpec("l1", "pointwise", (4, 4, 8), (4, 4, 16), inputs=("input",)),
    LayerSpec("l2", "pointwise", (4, 4, 16), (4, 4, 16), inputs=("l1",)),
    LayerSpec("l3", "pointwise", (4, 4, 16), (4, 4, 8), inputs=("l2",)),
]


def _count(name: str, a: int, w: int, o: int) -> float:
    """The table's count: l2 runs a4w4 faster than anything else (a free raise from a2w2); output bits cost."""
    base = {"l1": 1000.0, "l2": 2000.0, "l3": 1500.0}[name]
    pair = {(4, 4): 0.7, (8, 8): 1.0, (2, 2): 1.2}.get((a, w), 1.1 + 0.01 * (a + w))
    return base * pair + 10.0 * o


def _table() -> LatencyTable:
    rows = []
    for s in LAYERS:
        for a in BITS:
            for w in BITS:
                for o in BITS:
                    rows.append({"layer_key": s.key(), "a_bits": a, "w_bits": w, "o_bits": o,
                                 "count": _count(s.name, a, w, o), "op": s.op})  # fmt: skip
    t = LatencyTable()
    t.add(rows, board=BOARD, timer=TIMER, firmware_hash="f" * 12, cflags="-O2")
    return t


def _measurement(config: PrecisionConfig, per_layer: dict[str, float]) -> Measurement:
    bits = layer_bits(activation_groups(LAYERS), config)
    layers = [
        LayerMeasurement(i, s.name, s.op, *bits[s.name], s.in_shape, s.out_shape, s.macs, 0, per_layer[s.name],
                         True)  # fmt: skip
        for i, s in enumerate(LAYERS)
    ]
    return Measurement(
        board=BOARD, timer=TIMER, unit="instructions", artifact="net", layers=layers, steps=[], outputs=[],
        reference_outputs=[], checked=True, mismatches=[], build={}, mem={}, emulator_seconds=0.0, firmware_hash=0,
        counts_per_input=[[per_layer[s.name] for s in LAYERS]],
    )  # fmt: skip


class ScriptedBoard:
    """Measures a configuration as the table prices it, times ``scale`` (in context a layer may differ), plus a
    scripted total per round; records what it was asked to measure."""

    def __init__(self, scale: dict[str, float] | None = None, extra: dict[int, float] | None = None) -> None:
        self.scale, self.extra, self.seen = scale or {}, extra or {}, []

    def __call__(self, config: PrecisionConfig, r: int) -> Measurement:
        self.seen.append(config)
        bits = layer_bits(activation_groups(LAYERS), config)
        per = {s.name: _count(s.name, *bits[s.name]) * self.scale.get(s.name, 1.0) for s in LAYERS}
        per["l1"] += self.extra.get(r, 0.0)
        return _measurement(config, per)


START = PrecisionConfig({"l1": (8, 8), "l2": (2, 2), "l3": (8, 8)}, meta={"method": "test"})


def test_a_free_raise_is_measured_and_the_loop_converges():
    board = ScriptedBoard()
    res = closed_loop(LAYERS, START, _table(), board, settings=LoopSettings(max_rounds=4))
    assert [r.index for r in res.rounds] == [0, 1]
    assert res.rounds[1].config["l2"] == (4, 4), "a2w2 -> a4w4 is faster: raised"
    assert res.stop_reason == STOP_CONVERGED and res.best.index == 1
    assert res.rounds[1].measured < res.rounds[0].measured
    # a consistent table predicts every round exactly, and the per-layer frame says so
    assert [r.error_pct for r in res.rounds] == [0.0, 0.0]
    assert set(res.predictions["round"]) == {0, 1} and (res.predictions["error_pct"] == 0).all()


def test_no_gain_stops_and_the_best_round_is_kept_not_the_last():
    # round 1 is measured slower than round 0 (something the table does not know)
    board = ScriptedBoard(extra={1: 10_000.0})
    res = closed_loop(LAYERS, START, _table(), board, settings=LoopSettings(max_rounds=4))
    assert len(res.rounds) == 2 and res.stop_reason == STOP_NO_GAIN
    assert res.best.index == 0 and res.best.config.digest() == START.digest()
    # the move: l2 a2w2 -> a4w4, so l1 writes its output at 4 bits instead of 2
    move = _count("l2", 4, 4, 8) - _count("l2", 2, 2, 8) + _count("l1", 8, 8, 4) - _count("l1", 8, 8, 2)
    assert res.rounds[1].measured == pytest.approx(res.rounds[0].measured + move + 10_000.0)
    assert res.rounds[1].predicted == pytest.approx(res.rounds[0].predicted + move)


def test_min_gain_stops_a_round_that_improves_too_little():
    res = closed_loop(LAYERS, START, _table(), ScriptedBoard(), settings=LoopSettings(max_rounds=4, min_gain=0.5))
    assert res.stop_reason == STOP_NO_GAIN and res.best.index == 0


def test_a_raise_the_memory_budget_refuses_is_not_made_and_nothing_measured_breaks_it():
    def fits(c: PrecisionConfig) -> bool:
        return c["l2"][0] < 4  # l2's input tensor may not grow beyond 2 bits

    board = ScriptedBoard()
    res = closed_loop(LAYERS, START, _table(), board, settings=LoopSettings(max_rounds=4), fits=fits)
    assert all(fits(c) for c in board.seen)
    assert any("l2: a2w2 -> a4w4" in n and "exceeds the memory budget" in n for n in res.notes)
    # the next best raise that fits is taken instead (weights only: a2w2 -> a2w4 is faster than a2w2)
    assert res.best.config["l2"] == (2, 4) and res.stop_reason == STOP_CONVERGED


def test_a_start_that_does_not_fit_is_refused_before_anything_is_measured():
    board = ScriptedBoard()
    with pytest.raises(DoesNotFitError, match="does not fit"):
        closed_loop(LAYERS, START, _table(), board, fits=lambda c: False)
    assert board.seen == []


def test_counts_measured_in_context_do_not_change_the_decisions():
    # in context l2 runs 5 % slower than profiled, whatever its bits: priced like with like, the refiner makes the
    # same move; the in-context model then predicts the next round from the measured offset
    exact = closed_loop(LAYERS, START, _table(), ScriptedBoard(), settings=LoopSettings(max_rounds=3))
    slow = closed_loop(LAYERS, START, _table(), ScriptedBoard({"l2": 1.05}), settings=LoopSettings(max_rounds=3))
    assert [r.config.digest() for r in slow.rounds] == [r.config.digest() for r in exact.rounds]
    r0, r1 = slow.rounds
    offset_l2 = 0.05 * _count("l2", 2, 2, 8)
    assert r1.predicted_in_context == pytest.approx(r1.predicted + offset_l2)
    assert r1.error_pct == pytest.approx(100 * (r1.predicted - r1.measured) / r1.measured)
    # the record of in-context rows prices the measured configuration at its measured count
    assert slow.context.predict(LAYERS, r1.config)[0] == pytest.approx(r1.measured)
    assert slow.table.predict(LAYERS, r1.config)[0] == pytest.approx(r1.predicted), "the profiled table is kept"
