"""Run folders never collide, a named one is never overwritten, and every run builds in its own work folder."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest

from harness.experiments.folders import (
    MARKER,
    OWNER,
    PRUNE_AFTER_S,
    RunFolderTaken,
    claim_run_dir,
    job_dir_name,
    private_workdir,
    prune_work_folders,
    run_id,
)
from tests.fixtures.cli import REPO, tinyhil


def _claim(args) -> str:
    folder, start = args
    while time.time() < start:  # all processes claim at the same moment
        time.sleep(0.001)
    return str(claim_run_dir(Path(folder), explicit=False))


def test_runs_started_at_once_with_one_default_name_get_different_folders(tmp_path):
    start = time.time() + 1.0
    with mp.get_context("spawn").Pool(6) as pool:
        got = pool.map(_claim, [(tmp_path / "smoke-20260101-120000", start)] * 6)
    assert len(set(got)) == 6
    assert sorted(Path(g).name for g in got) == sorted(
        ["smoke-20260101-120000"] + [f"smoke-20260101-120000-{n}" for n in range(2, 7)]
    )
    for g in got:  # each folder is claimed by exactly one process, with its marker
        assert json.loads((Path(g) / MARKER).read_text())["pid"] > 0


def test_a_named_folder_holding_another_run_is_refused_and_left_alone(tmp_path):
    run = tmp_path / "mine"
    assert claim_run_dir(run, explicit=True) == run
    (run / "summary.json").write_text('{"x": 1}')
    with pytest.raises(RunFolderTaken, match="already holds another run"):
        claim_run_dir(run, explicit=True)
    assert (run / "summary.json").read_text() == '{"x": 1}'
    empty = tmp_path / "empty"
    empty.mkdir()
    assert claim_run_dir(empty, explicit=True) == empty  # an empty folder (e.g. pytest's tmp_path) is free


def test_cli_refuses_a_reused_run_name_in_one_line_and_two_default_runs_never_share_a_folder(tmp_path):
    name = f"test-runfolders-{os.getpid()}-{time.time_ns()}"
    first = tinyhil("boards", "build=false", f"run_name={name}")
    try:
        assert first.returncode == 0, first.stderr
        before = (REPO / "results" / name / "summary.json").read_text()
        again = tinyhil("boards", "build=false", f"run_name={name}")
        assert again.returncode == 2
        err = [ln for ln in again.stderr.splitlines() if ln.strip()]
        assert len(err) == 1 and "already holds another run" in err[0] and "run_name=" in err[0]
        assert (REPO / "results" / name / "summary.json").read_text() == before
    finally:
        import shutil

        shutil.rmtree(REPO / "results" / name, ignore_errors=True)


def test_job_folder_names_are_one_safe_path_component():
    assert job_dir_name("experiment=smoke,seed=11", 0) == "experiment=smoke,seed=11"
    assert job_dir_name("model=user,model.path=/x/y.pt", 3) == "model=user,model.path=_x_y.pt"
    assert job_dir_name("", 7) == "job7"
    long = job_dir_name("a=" + "x" * 300, 1)
    assert len(long) <= 120 and "/" not in long
    assert long != job_dir_name("a=" + "x" * 299 + "y", 1)  # the hash tells long names apart


def test_work_folders_are_private_per_run_and_pruned_only_when_their_owner_is_gone(tmp_path):
    a, b = tmp_path / "results" / "x", tmp_path / "other" / "x"  # same name, different runs
    wa, wb = private_workdir(tmp_path / "cache", a), private_workdir(tmp_path / "cache", b)
    assert wa != wb and wa.is_absolute() and wa.parent == (tmp_path / "cache" / "runs").resolve()
    assert "," not in run_id(tmp_path / "experiment=smoke,seed=11") and "=" not in run_id(tmp_path / "a=b")
    # a folder of a process that has ended, older than the grace period, goes; a live or young one stays
    dead = wa.parent / "dead"
    dead.mkdir()
    (dead / OWNER).write_text(json.dumps({"host": os.uname().nodename, "pid": 2**22 + 12345}))
    old = time.time() - PRUNE_AFTER_S - 60
    os.utime(dead / OWNER, (old, old))
    os.utime(wa / OWNER, (old, old))  # old but ours (this pid is alive)
    removed = prune_work_folders(wa.parent)
    assert removed == [dead] and not dead.exists() and wa.is_dir() and wb.is_dir()
