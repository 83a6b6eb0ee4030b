"""A profile sharded over Ray (a head started on localhost) gives the table a serial profile gives."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.config.board import load_board_config
from harness.experiments.bench_scaling import comparable
from harness.experiments.profile import model_layers
from harness.measure.profile import ProfileSettings, default_budget, profile_layers
from tests.fixtures.farm import free_port
from tests.fixtures.processes import wait_or_kill

TINY = {"_target_": "harness.models.tiny_cnn.TinyCNN", "name": "tiny-cnn", "resolution": 8, "in_channels": 1,
        "num_classes": 10, "channels": 16, "stem": 8}
BOARD = "qemu-mps2-an386"


def _settings(**kw) -> ProfileSettings:
    board = load_board_config(BOARD)
    return ProfileSettings(a_bits=(8,), w_bits=(4, 8), o_bits=(8,), repeats=1,
                           budget=default_budget(board, max_layers=4), **kw)


@contextlib.contextmanager
def ray_head(tmp: Path):
    """``ray start --head --block`` on 127.0.0.1 with 2 CPUs; stopped by its pid (it stops what it started)."""
    port = free_port()
    # Token authentication off on both sides: a loopback-only cluster of this test (Ray 2.5x turns it on by default
    # once ~/.ray/auth_token exists; a real cluster shares its token with RAY_AUTH_TOKEN instead).
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={port}", "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={tmp}", "--disable-usage-stats"],
        stdout=open(tmp.parent / "ray-head.log", "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
        start_new_session=True, env=env)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)  # ray start --block stops its processes on SIGTERM
        wait_or_kill(proc, 60)


@pytest.mark.qemu
@pytest.mark.slow
def test_a_profile_sharded_over_a_local_ray_head_equals_the_serial_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    layers = model_layers(TINY)
    serial = profile_layers(layers, BOARD, tmp_path / "serial" / "t", _settings(workers=1),
                            workdir=tmp_path / "w-serial")
    assert serial.n_images >= 3 and not serial.mismatched
    with ray_head(Path("/tmp") / f"ray-{os.getpid()}") as address:
        time.sleep(2)
        sharded = profile_layers(layers, BOARD, tmp_path / "ray" / "t", _settings(executor="ray", ray_address=address),
                                 workdir=tmp_path / "w-ray")
    assert sharded.executor_info == {"ray_nodes": 1, "ray_cpus": 2}
    assert sharded.n_images == serial.n_images and sharded.n_new == serial.n_new
    assert comparable(sharded.table).equals(comparable(serial.table))
    assert sharded.summary()["executor"] == "ray"
