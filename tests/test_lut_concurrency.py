"""Concurrent writers of one latency table lose no row and duplicate none (the table's file lock)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from harness.table.lut import KEY_COLUMNS, LatencyTable
from tests.fixtures.cli import REPO
from tests.fixtures.tables import TARGET, row

N_PROCS, N_SAVES = 4, 12


def _writer(args) -> None:
    path, k, start = args
    while time.time() < start:
        time.sleep(0.001)
    for i in range(N_SAVES):
        t = LatencyTable.load(path, missing_ok=True)  # an old view: other writers save meanwhile
        # rows of its own, plus one every writer measures (the same key from all four)
        t.add([row(f"conv_w{k}_{i}", 8, 8, 8, 1000.0 + 10 * k + i), row(f"shared_{i}", 8, 8, 8, 5.0)], **TARGET)
        t.save(path)


def test_four_processes_saving_at_once_keep_every_row_exactly_once(tmp_path):
    path = tmp_path / "lut" / "board"
    start = time.time() + 1.5
    with mp.get_context("spawn").Pool(N_PROCS) as pool:
        pool.map(_writer, [(path, k, start) for k in range(N_PROCS)])
    for f in (path.with_suffix(".parquet"), path.with_suffix(".csv")):
        df = pd.read_parquet(f) if f.suffix == ".parquet" else pd.read_csv(f)
        assert len(df) == N_PROCS * N_SAVES + N_SAVES
        assert not df.duplicated(list(KEY_COLUMNS)).any()
        own = df[df["layer_key"].str.startswith("conv_w")].set_index("layer_key")["count"]
        assert own.to_dict() == {f"conv_w{k}_{i}": 1000.0 + 10 * k + i for k in range(N_PROCS) for i in range(N_SAVES)}


def _profile(table_dir, run_dir) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "profile", "model=tiny-cnn", f"profile.table_dir={table_dir}",
            "profile.a_bits=[8]", "profile.w_bits=[4,8]", "profile.o_bits=[4,8]", "profile.max_layers=8",
            "profile.repeats=1", "profile.workers=1", f"hydra.run.dir={run_dir}"]


@pytest.mark.qemu
def test_two_profiles_at_once_on_one_board_and_table_end_with_every_row_once(tmp_path):
    from harness.experiments.profile import model_layers, settings_from
    from harness.measure.profile import needed_entries

    table_dir = tmp_path / "lut"
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO))
    procs = [subprocess.Popen(_profile(table_dir, tmp_path / f"run{k}"), cwd=REPO, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for k in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    layers = model_layers({"_target_": "harness.models.tiny_cnn.TinyCNN", "name": "tiny-cnn", "resolution": 8,
                           "in_channels": 1, "num_classes": 10, "channels": 16, "stem": 8})
    s = settings_from({"a_bits": [8], "w_bits": [4, 8], "o_bits": [4, 8]}, "qemu-mps2-an386")
    want = {e for e, _ in needed_entries(layers, s.a_bits, s.w_bits, s.o_bits)}
    for f in ("qemu-mps2-an386.parquet", "qemu-mps2-an386.csv"):
        df = pd.read_parquet(table_dir / f) if f.endswith("parquet") else pd.read_csv(table_dir / f)
        assert not df.duplicated(list(KEY_COLUMNS)).any()
        got = {(r.layer_key, r.a_bits, r.w_bits, r.o_bits) for r in df.itertuples()}
        assert got == want and len(df) == len(want)
        assert df["bit_exact"].all() and (df["count"] > 0).all()
    # both runs planned every entry (the table was empty when they started) and measured them bit-exactly
    for k in range(2):
        s = json.loads((tmp_path / f"run{k}" / "summary.json").read_text())
        assert s["n_entries"] == len(want) and s["n_mismatched"] == 0 and s["n_images"] >= 2
