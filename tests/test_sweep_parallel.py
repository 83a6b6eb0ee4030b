"""Parallel sweeps on one machine: the joblib launcher, job folders named from their overrides, the sweep table,
resuming a sweep, and the cluster launchers' configs."""

from __future__ import annotations

import json
import shutil
import time

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from harness import CONFIG_DIR
from harness.config.schema import register
from tests.fixtures.cli import REPO, tinyhil

SEEDS = (11, 12, 13, 14)


@pytest.mark.qemu
def test_parallel_smoke_sweep_is_bit_exact_per_job_writes_the_table_and_resumes(tmp_path):
    sweep = REPO / "results" / f"test-sweep-{time.time_ns()}"
    try:
        # the command, with the sweep folder named so that it can be resumed and cleaned up
        p = tinyhil("run", "-m", "experiment=smoke", "seed=" + ",".join(map(str, SEEDS)), "hydra/launcher=joblib",
                    "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}", timeout=900)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        jobs = {s: sweep / f"experiment=smoke,seed={s}" for s in SEEDS}
        summaries = {s: json.loads((d / "summary.json").read_text()) for s, d in jobs.items()}
        assert all(v["bit_exact"] is True for v in summaries.values())
        assert len({v["model_hash"] for v in summaries.values()}) == 4  # 4 different networks, 4 firmware images
        configs = {s: (d / "config.yaml").read_text() for s, d in jobs.items()}
        workdirs = {next(ln for ln in c.splitlines() if ln.startswith("workdir:")) for c in configs.values()}
        assert len(workdirs) == 4  # every job built in its own work folder
        for name in ("sweep.csv", "sweep.parquet"):
            df = pd.read_csv(sweep / name) if name.endswith("csv") else pd.read_parquet(sweep / name)
            assert sorted(df["override.seed"].astype(int)) == list(SEEDS)
            assert (df["status"] == "done").all() and df["bit_exact"].all()
            by_seed = df.set_index(df["override.seed"].astype(int))
            for s in SEEDS:
                assert by_seed.loc[s, "model_hash"] == summaries[s]["model_hash"]
                assert by_seed.loc[s, "total_count"] == summaries[s]["total_count"]
        # resume: the same sweep again skips every finished job (nothing rebuilt, summaries untouched)
        stamps = {s: (d / "summary.json").stat().st_mtime_ns for s, d in jobs.items()}
        (jobs[12] / "summary.json").unlink(missing_ok=True)
        again = tinyhil("run", "-m", "experiment=smoke", "seed=" + ",".join(map(str, SEEDS)), "hydra/launcher=joblib",
                        "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}", timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
        assert again.stderr.count("skipped") == 3
        assert all((jobs[s] / "summary.json").stat().st_mtime_ns == stamps[s] for s in (11, 13, 14))
        assert json.loads((jobs[12] / "summary.json").read_text())["model_hash"] == summaries[12]["model_hash"]
        # and a plain run afterwards, on the shared build cache, is bit-exact
        run = tmp_path / "plain"
        plain = tinyhil("run", "experiment=smoke", f"hydra.run.dir={run}", timeout=600)
        assert plain.returncode == 0, plain.stderr[-2000:]
        s0 = json.loads((run / "summary.json").read_text())
        assert s0["bit_exact"] is True and s0["mismatched_layers"] == []
    finally:
        shutil.rmtree(sweep, ignore_errors=True)


def _hydra(overrides: list[str]):
    register()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("run", overrides=overrides, return_hydra_config=True)


def test_launcher_configs_compose_with_the_callbacks_and_named_job_folders():
    cfg = _hydra(["hydra/launcher=parallel"])
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == -1
    assert set(cfg.hydra.callbacks) == {"run_folders", "sweep_table"}
    raw = OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["subdir"]
    assert raw == "${tinyhil_job_dir:${hydra.job.override_dirname},${hydra.job.num}}"
    slurm = _hydra(["hydra/launcher=slurm", "hydra.launcher.partition=cpu"])
    assert slurm.hydra.launcher._target_.endswith("SlurmLauncher")
    assert (slurm.hydra.launcher.partition, slurm.hydra.launcher.cpus_per_task) == ("cpu", 2)
    for name in ("bench", "profile", "train", "sensitivity", "calibrate", "boards"):
        register()
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            c = compose(name, return_hydra_config=True)
        assert set(c.hydra.callbacks) >= {"run_folders"}, name
