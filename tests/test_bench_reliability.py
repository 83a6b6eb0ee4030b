"""``tinyhil bench experiment=reliability``: hostile peers and real QEMU failures, each a clear error in time; the
table, the CSV and the summary keys; and a scenario that does not end as it must fails the command."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from harness.config.compose import compose_config
from harness.errors import ConfigError, DeviceError, ProtocolError, TinyHilError
from harness.experiments import bench_reliability as br
from harness.transport.hostile import GOOD, Scenario, board
from tests.fixtures.cli import REPO, tinyhil


@pytest.mark.qemu
@pytest.mark.qemu
@pytest.mark.toolchain
def test_the_benchmark_ends_every_scenario_in_a_clear_error_in_time_and_prints_the_table(tmp_path):
    p = tinyhil(
        "bench", "experiment=reliability", "experiment.scenarios=[silence,negative-ticks,sync-valid-flood]",
        f"hydra.run.dir={tmp_path}/run", f"workdir={tmp_path}/work", cwd=REPO,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["scenarios"], summary["passed"]) == (5, 5)  # three peers + two real-QEMU failures
    assert 0 <= summary["max_overshoot_s"] <= 0.5
    assert summary["link_throughput_kB_per_s"] > 1000
    rows = pd.read_csv(tmp_path / "run" / "reliability.csv").set_index("name")
    killed = rows.loc["qemu-killed-mid-reply"]
    assert killed.error == "DeviceError" and "QEMU exited" in killed.message
    assert rows.loc["qemu-stopped", "error"] == "LinkTimeout" and rows.loc["qemu-stopped", "elapsed_s"] < 2.5
    assert "clear error in time" in p.stdout and "qemu-killed-mid-reply" in p.stdout


def test_a_scenario_that_does_not_end_as_it_must_fails_the_benchmark(tmp_path, monkeypatch):
    # A consistent board, but the scenario demands a ProtocolError: the benchmark must not pass it.
    wrong = Scenario(
        "consistent-board", "nothing wrong", board(), lambda d: d.layers(), 1.0, ProtocolError, "x"
    )
    bites = Scenario("lying-board", "a negative count", board({"layers": ["m-layer-[0]-[-1]-[]-[a]-[add]-[4]",
                     "m-total-[0]"]}), lambda d: d.layers(), 1.0, ProtocolError, "-1")  # fmt: skip
    monkeypatch.setattr(br, "scenarios", lambda: [wrong, bites])
    cfg = compose_config("bench", ["experiment=reliability", "experiment.qemu=false",
                                   "experiment.throughput_lines=1000"])
    with pytest.raises(TinyHilError, match="1 of 2 scenarios.*consistent-board"):
        br.run(cfg, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["scenarios"], summary["passed"], summary["failed"]) == (2, 1, ["consistent-board"])
    assert GOOD["layers"][-1] == "m-total-[300]"  # the consistent board is the catalogue's own


def test_unknown_scenarios_and_a_non_qemu_board_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match="unknown reliability scenarios"):
        br.select(["no-such-scenario"])
    cfg = compose_config("bench", ["experiment=reliability", "board=nucleo-h743zi"])
    with pytest.raises(ConfigError, match="experiment.qemu=false"):
        br.run(cfg, tmp_path)
    assert not list(tmp_path.iterdir())
    assert [s.name for s in br.select(["silence"])] == ["silence"]
    assert issubclass(br.select(["closed-mid-line"])[0].expect, DeviceError)
