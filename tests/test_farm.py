"""The board-farm path (``driver.type: labgrid``) against a real labgrid coordinator and exporter on 127.0.0.1, with
an emulated board standing behind the exported resources (tests/fixtures/farm.py)."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from harness.boards import make_board
from harness.boards.labgrid_board import LabgridBoard
from harness.codegen.artifact import layer_artifact
from harness.errors import DeviceError
from harness.measure.session import Session
from harness.synth.random_model import random_input, random_network
from tests.fixtures.cli import tinyhil
from tests.fixtures.farm import Farm


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    f = Farm(tmp_path_factory.mktemp("farm"))
    try:
        yield f.start()
    finally:
        f.close()


def _model():
    model = random_network(5, input_shape=(8, 8, 3), width=8, classes=10, bits=(8,), name="farmtest")
    rng = np.random.default_rng(5)
    return model, [random_input(model.tensors[model.input], rng) for _ in range(2)]


def _acquired(farm: Farm) -> str:
    return next(ln for ln in farm.client("-p", farm.place, "show").stdout.splitlines() if "acquired:" in ln)


@pytest.mark.qemu
def test_a_farm_board_measures_bit_exactly_the_counts_of_the_local_emulator_and_releases_the_place(farm, tmp_path):
    model, inputs = _model()
    board = make_board(farm.board())
    assert isinstance(board, LabgridBoard)
    remote = Session(board, tmp_path / "farm").run(layer_artifact(model), inputs)
    assert remote.bit_exact and remote.firmware_hash == layer_artifact(model).model_hash
    assert "None" in _acquired(farm)  # released after the measurement
    local = Session(make_board("qemu-mps2-an386"), tmp_path / "local").run(layer_artifact(model), inputs)
    # -icount makes the emulated count deterministic: the same image gives the same count behind the farm
    assert remote.counts_per_input == local.counts_per_input


@pytest.mark.qemu
def test_a_place_held_by_another_user_is_waited_for_then_used(farm, tmp_path):
    env = {**farm.env, "LG_USERNAME": "alice"}
    farm.env, saved = env, farm.env
    try:
        farm.client("-p", farm.place, "acquire")
    finally:
        farm.env = saved

    def alice_releases():
        time.sleep(3.0)
        farm.env = env
        farm.client("-p", farm.place, "release")
        farm.env = saved

    t = threading.Thread(target=alice_releases)
    t.start()
    t0 = time.monotonic()
    model, inputs = _model()
    m = Session(make_board(farm.board()), tmp_path / "w").run(layer_artifact(model), inputs[:1])
    t.join()
    assert m.bit_exact and time.monotonic() - t0 >= 3.0


def test_an_unknown_place_and_an_unreachable_coordinator_are_one_line_errors(farm, tmp_path):
    board = make_board(farm.board(place="no-such-place"))
    with pytest.raises(DeviceError, match="no-such-place.*matches nothing.*farm-an386"):
        board.flash(__file__)  # any existing file: the place is looked up first
    board = make_board(farm.board(coordinator="127.0.0.1:9"))  # nothing listens there
    with pytest.raises(DeviceError, match="cannot reach the labgrid coordinator at 127.0.0.1:9"):
        board.flash(__file__)


@pytest.mark.qemu
def test_tinyhil_run_on_the_farm_board_config(farm, tmp_path):
    p = tinyhil("run", "experiment=smoke", "board=farm-qemu-mps2-an386", f"board.driver.coordinator={farm.address}",
                f"hydra.run.dir={tmp_path}/run", timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["bit_exact"] is True and s["board"] == "farm-qemu-mps2-an386"
    assert "None" in _acquired(farm)
