"""The closed measure-and-refine loop: in-context table rows, and (in QEMU) `tinyhil run experiment=freebits`
end to end on the tiny CNN."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_cli_smoke import tinyhil

from harness import ops
from harness.graph.spec import LayerSpec
from harness.loop.context import (
    IN_CONTEXT,
    PROFILE,
    context_rows,
    measured_entries,
    total_count,
    with_in_context,
)
from harness.measure.session import LayerMeasurement, Measurement
from harness.precision.config import PrecisionConfig
from harness.synth.random_model import random_network
from harness.table.lut import KEY_COLUMNS, LatencyTable

REPO = Path(__file__).resolve().parent.parent


def _specs_and_measurement(counts_per_input: list[list[int]]):
    """Layer specs of a small integer network and a measurement of it with the given per-input ticks."""
    model = random_network(0, input_shape=(8, 8, 3), width=8, bits=(8,))
    specs = []
    for layer in model.layers:
        ins = [
            ("input" if t == model.input else next(x.name for x in model.layers if x.output == t))
            for t in layer.inputs
        ]
        specs.append(
            LayerSpec(
                layer.name,
                layer.op,
                tuple(model.in_spec(layer).shape),
                tuple(model.out_spec(layer).shape),
                tuple(layer.kernel),
                layer.stride,
                tuple(layer.padding),
                tuple(ins),
            )
        )
    last = counts_per_input[-1]
    layers = [
        LayerMeasurement(
            i,
            layer.name,
            layer.op,
            model.a_bits(layer),
            layer.w_bits,
            model.o_bits(layer),
            tuple(model.in_spec(layer).shape),
            tuple(model.out_spec(layer).shape),
            ops.macs(model, layer),
            last[i],
            float(last[i]) * 40,
            True,
        )
        for i, layer in enumerate(model.layers)
    ]
    m = Measurement(
        board="qemu-mps2-an386", timer="qemu-icount", unit="instructions", artifact=model.name, layers=layers,
        steps=[], outputs=[], reference_outputs=[], checked=True, mismatches=[], build={}, mem={},
        emulator_seconds=0.0, firmware_hash=0, ticks_per_input=counts_per_input,
        counts_per_input=[[float(t) * 40 for t in row] for row in counts_per_input],
    )  # fmt: skip
    return specs, m


def test_in_context_rows_are_keyed_as_the_table_wants_and_average_the_inputs():
    rng = np.random.default_rng(1)
    n = 9
    ticks = [list(map(int, rng.integers(100, 1000, n))) for _ in range(3)]
    specs, m = _specs_and_measurement(ticks)
    rows = context_rows(m, specs, round_=2)
    entries = measured_entries(m, specs)
    assert {(r["layer_key"], r["a_bits"], r["w_bits"], r["o_bits"]) for r in rows} == set(entries)
    for r in rows:
        assert r["source"] == IN_CONTEXT and r["round"] == 2 and r["repeats"] == 3
        assert r["count_min"] <= r["count"] <= r["count_max"]
    weightless = [e for e, s in zip(entries, specs, strict=True) if not s.has_weights]
    assert weightless and all(e[2] == 0 and e[1] == e[3] for e in weightless), (
        "add/avgpool rows are (g, 0, g)"
    )
    assert sum(r["count"] for r in rows) == pytest.approx(total_count(m))
    assert total_count(m) == pytest.approx(np.mean([sum(t) for t in ticks]) * 40)


def test_in_context_counts_replace_profiled_rows_and_keep_the_others():
    specs, m = _specs_and_measurement([[500 + i for i in range(9)]])
    rows = context_rows(m, specs)
    fields = {"board": "qemu-mps2-an386", "timer": "qemu-icount", "firmware_hash": "f" * 12, "cflags": "-O2"}
    profiled = LatencyTable()
    other = {**rows[0], "a_bits": 4, "source": None, "round": None}
    profiled.add(
        [
            {k: v for k, v in r.items() if k not in ("source", "round")}
            | {"count": 1.0, "count_min": 1.0, "count_max": 1.0}
            for r in rows
        ]
        + [{k: v for k, v in other.items() if k not in ("source", "round")}],
        **fields,
    )
    merged = with_in_context(profiled, rows)
    assert len(merged) == len(profiled), "no row is duplicated"
    df = merged.df.set_index(list(KEY_COLUMNS))
    assert not df.index.duplicated().any()
    assert set(merged.df["source"]) == {IN_CONTEXT, PROFILE}
    for r in rows:
        key = (
            fields["board"],
            fields["timer"],
            fields["firmware_hash"],
            fields["cflags"],
            r["layer_key"],
            r["a_bits"],
            r["w_bits"],
            r["o_bits"],
        )
        assert df.loc[key, "count"] == pytest.approx(r["count"])
    config = PrecisionConfig({s.name: (8, 8) for s in specs if s.has_weights})
    assert merged.predict(specs, config)[0] == pytest.approx(total_count(m)), (
        "the table prices the measured network at exactly its measured count"
    )


def test_the_loop_refuses_a_table_measured_on_another_board():
    from harness.errors import TableError
    from harness.loop.closed_loop import closed_loop

    specs, m = _specs_and_measurement([[500 + i for i in range(9)]])  # measured on qemu-mps2-an386
    rows = context_rows(m, specs)
    table = LatencyTable()
    table.add(
        [{k: v for k, v in r.items() if k not in ("source", "round")} for r in rows],
        board="qemu-mps3-an547",
        timer="qemu-icount",
        firmware_hash="0" * 12,
        cflags="-O2",
    )
    config = PrecisionConfig({s.name: (8, 8) for s in specs if s.has_weights})
    with pytest.raises(TableError, match="qemu-mps3-an547") as exc:
        closed_loop(specs, config, table, lambda c, r: m)
    assert "qemu-mps2-an386" in str(exc.value)


def test_a_deployment_of_another_kernel_build_is_refused():
    from harness.boards import make_board
    from harness.errors import TableError
    from harness.loop.deploy import check_target
    from harness.measure.target import measurement_target

    board = make_board("qemu-mps2-an386")
    profiled = measurement_target("qemu-mps2-an386")
    check_target(profiled, board, "now")  # same sources, same flags: fine
    with pytest.raises(TableError, match=profiled.firmware_hash):
        check_target(profiled, board, "now", ("-DTH_SOMETHING_ELSE=1",))


# ------------------------------------------------------------------------------------------ QEMU


@pytest.mark.qemu
@pytest.mark.parametrize(
    "board,unit,max_error_pct",
    # Instructions: the isolated rows add up to the network. Cycles under stm32h743: a layer profiled in a batch
    # image finds other cache and branch-predictor state than inside the network (measured -4 to -6 % here).
    [("qemu-mps2-an386", "instructions", 2.0), ("qemu-mps2-an500", "cycles", 8.0)],
)
def test_freebits_loop_end_to_end_on_the_tiny_cnn(tmp_path, board, unit, max_error_pct):
    run = tmp_path / "run"
    lut = tmp_path / "lut"
    args = [
        "run",
        "experiment=freebits",
        f"board={board}",
        "model=tiny-cnn",
        "data=digits",
        "experiment.n_eval=8",
        "experiment.n_eval_host=120",
        "experiment.n_calib=64",
        "experiment.qat.n_train=300",
        "experiment.qat.n_test=60",
        "experiment.max_rounds=3",
        f"experiment.profile.table_dir={lut}",
        "experiment.profile.repeats=1",
        f"workdir={tmp_path}/work",
        f"hydra.run.dir={run}",
    ]
    p = tinyhil(*args, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    s = json.loads((run / "summary.json").read_text())
    rounds = pd.read_csv(run / "rounds.csv")

    # the rounds: the start first, each measured on the board and predicted by the table
    assert 1 <= len(rounds) == s["rounds"] <= 3
    assert list(rounds["round"]) == list(range(len(rounds)))
    start = PrecisionConfig.load(run / "start_config.json")
    final = PrecisionConfig.load(run / "final_config.json")
    assert rounds["config_hash"].iloc[0] == start.digest()
    assert final.digest() in set(rounds["config_hash"])
    assert rounds["bit_exact"].all()
    assert s["start_count"] == rounds["measured_count"].iloc[0]
    assert s["final_count_loop"] == rounds["measured_count"].min(), "the loop keeps its best measured round"
    assert s["final_count_loop"] <= s["start_count"]
    assert (rounds["prediction_error_pct"].abs() <= max_error_pct).all(), "the profiled table predicts the network"
    # Free Bits only raises bits
    for name, (a, w) in final.layers.items():
        assert a >= start[name][0] and w >= start[name][1]
    # the loop's table prices the final configuration at what the board measured for it
    from harness.graph.trace import extract_layers
    from harness.models.registry import build_model

    layers = extract_layers(build_model("tiny-cnn"))
    table = LatencyTable.load(run / "lut_in_context")
    assert table.predict(layers, final)[0] == pytest.approx(s["final_count_loop"])

    # the summary's figures, each checked against what it is derived from
    assert s["rounds"] == len(rounds)
    best = rounds.loc[rounds["measured_count"].idxmin()]
    assert s["predicted_final_count"] == pytest.approx(best["predicted_count"])
    assert s["prediction_error_pct"] == pytest.approx(best["prediction_error_pct"])
    assert s["prediction_error_pct"] == pytest.approx(
        100.0 * (best["predicted_count"] - best["measured_count"]) / best["measured_count"], abs=1e-6
    )
    assert s["baseline_int8_count"] > 0 and s["final_count"] > 0
    assert s["reduction_vs_int8_pct"] == pytest.approx(100.0 * (1 - s["final_count"] / s["baseline_int8_count"]))
    assert s["device_equals_reference_int8"] and s["device_equals_reference_final"]
    assert 0.0 <= s["top1_final"] <= 1.0 and 0.0 <= s["top1_int8"] <= 1.0
    assert s["final_count"] == pytest.approx(s["final_count_loop"], rel=0.02), (
        "QAT does not change the kernels"
    )
    assert s["reduction_vs_int8_pct"] == pytest.approx(
        100 * (1 - s["final_count"] / s["baseline_int8_count"])
    )
    images = pd.read_csv(run / "image_predictions.csv")
    assert len(images) and (images["final_device"] == images["final_reference"]).all()
    per_layer = pd.read_csv(run / "predictions.csv")  # per round and layer: table, in-context model, measured
    assert set(per_layer["round"]) == set(pd.read_csv(run / "rounds.csv")["round"])
    assert per_layer["measured"].gt(0).all()
    # what bounds the saving is stated, and the int8 count is broken down by op
    assert s["limit"] and isinstance(s["int8_dominates"], bool)
    shares = {k: v for k, v in s.items() if k.startswith("int8_count_share_")}
    assert shares and sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
    for png in ("rounds.png", "pair_heatmap.png", "latency_accuracy.png"):
        assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the board's table covers the network (profiled on the way)
    assert (s["board"], s["unit"]) == (board, unit)
    # the summary says what the counts are: the timer, and for cycles the timing profile and model version
    assert s["timer"] == ("qemu-cycles" if unit == "cycles" else "qemu-icount")
    assert (s.get("timing_profile"), bool(s.get("timing_model_version"))) == (
        ("stm32h743", True) if unit == "cycles" else (None, False)
    )
    board_table = LatencyTable.load(lut / board)
    keys = set(board_table.df["layer_key"])
    assert {s_.key() for s_ in layers} <= keys
