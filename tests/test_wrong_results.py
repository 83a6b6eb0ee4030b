"""A wrong result never exits 0 and never passes silently: not bit-exact, another firmware, inconsistent replies."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from harness.codegen.artifact import layer_artifact
from harness.errors import DeviceError, ResultError
from harness.measure.session import Session
from harness.synth.random_model import random_input, random_network
from tests.fixtures.cli import REPO, tinyhil
from tests.fixtures.wrong_result import WRONG_LAYER

pytestmark = pytest.mark.qemu


def test_a_command_whose_layers_are_not_bit_exact_writes_its_summary_then_exits_3_naming_the_layer(tmp_path):
    p = tinyhil("run", "experiment=smoke", "experiment.entry=tests.fixtures.wrong_result:run",
                f"hydra.run.dir={tmp_path}/run", f"workdir={tmp_path}/w", cwd=REPO)
    assert p.returncode == 3, p.stderr[-2000:]
    assert f"layer {WRONG_LAYER} " in p.stderr and "not bit-exact" in p.stderr and "Traceback" not in p.stderr
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["bit_exact"] is False and len(s["mismatches"]) == 1 and s["total_count"] > 0


def _model_and_input(seed: int):
    model = random_network(seed, input_shape=(10, 10, 3), width=4, bits=(8,), name=f"m{seed}")
    return model, random_input(model.tensors[model.input], seed)


def test_the_session_raises_naming_the_first_wrong_layer(tmp_path, test_board):
    model, x = _model_and_input(7)
    art = layer_artifact(model)
    right = art.reference

    def wrong_output(xx: np.ndarray):
        want = right(xx)
        return replace(want, output=want.output + 1)

    art.reference = wrong_output
    with pytest.raises(ResultError, match="output of input 0 differs"):
        Session(test_board, tmp_path).run(art, [x])


def test_a_measurement_of_another_firmware_is_refused_naming_both_hashes(tmp_path, test_board):
    a, x = _model_and_input(8)
    b, _ = _model_and_input(9)
    art_a, art_b = layer_artifact(a), layer_artifact(b)
    session = Session(test_board, tmp_path)
    session.deploy(art_a)  # the board now runs model a
    with pytest.raises(DeviceError, match=f"{art_a.model_hash:08X}.*expected {art_b.model_hash:08X}"):
        session.collect(art_b, [x])
