"""Hydra callbacks of every tinyhil command (``configs/hydra/callbacks/tinyhil.yaml``).

:class:`RunFolders` claims the run folder (``on_run_start``) or the sweep folder (``on_multirun_start``) before
Hydra writes into it (:mod:`harness.experiments.folders`); :class:`SweepTable` writes the sweep table at the end
of every multirun (:mod:`harness.experiments.sweep`), whatever the launcher (basic, joblib, Submitit, Ray).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write

from harness.errors import ResultError, TinyHilError
from harness.experiments.folders import claim_run_dir, claim_sweep_dir
from harness.experiments.runner import console
from harness.experiments.sweep import sweep_rows, write_sweep_table


def _named(overrides: list[str], keys: tuple[str, ...]) -> bool:
    return any(o.split("=", 1)[0].lstrip("+~") in keys for o in overrides)


def _fail(config: DictConfig, e: TinyHilError) -> None:
    """One line and the error's exit status (an exception here would reach Hydra's traceback printer)."""
    command = config.hydra.job.config_name or "run"
    console().print(f"[bold red]tinyhil {command}: error:[/bold red] {e}")
    sys.exit(e.exit_code)


class RunFolders(Callback):
    """Claim the run or sweep folder so that two runs never share one (see :mod:`harness.experiments.folders`)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        task, hydra_ov = list(config.hydra.overrides.task), list(config.hydra.overrides.hydra)
        explicit = _named(task, ("run_name",)) or _named(hydra_ov, ("hydra.run.dir",))
        want = Path(str(config.hydra.run.dir))
        try:
            got = claim_run_dir(want, explicit=explicit)
        except TinyHilError as e:
            _fail(config, e)
        if got != want:
            with read_write(config.hydra.run):
                config.hydra.run.dir = str(got)
            if "run_name" in config:
                with read_write(config), open_dict(config):
                    config.run_name = got.name

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        hydra_ov = list(config.hydra.overrides.hydra)
        want = Path(str(config.hydra.sweep.dir))
        try:
            got = claim_sweep_dir(want, explicit=_named(hydra_ov, ("hydra.sweep.dir",)))
        except TinyHilError as e:
            _fail(config, e)
        if got != want:
            # Launchers compose each job's config again from the overrides: the new folder must be one of them.
            with read_write(config.hydra):
                config.hydra.sweep.dir = str(got)
                config.hydra.overrides.hydra.append(f"hydra.sweep.dir={got}")


class SweepTable(Callback):
    """``sweep.csv`` / ``sweep.parquet``: one row per job with its overrides and summary keys."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            return
        path = write_sweep_table(sweep_dir)
        if path is None:
            return
        console().print(f"[green]sweep table:[/green] {path} (and .parquet)")
        rows = sweep_rows(sweep_dir)
        bad = [r for r in rows if r["status"] != "done"]
        if bad:
            names = ", ".join(f"{r['job']} ({r['status']})" for r in bad[:5])
            console().print(f"[bold red]tinyhil {config.hydra.job.config_name}: error:[/bold red] {len(bad)} of "
                            f"{len(rows)} sweep jobs did not finish with correct results: {names}; run the same "
                            f"sweep again with hydra.sweep.dir={sweep_dir} to redo only those")
            sys.exit(ResultError.exit_code if any(r["status"] == "failed" for r in bad) else TinyHilError.exit_code)
