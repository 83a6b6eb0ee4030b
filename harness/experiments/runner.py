"""Running one tinyhil command: the configured entry, its run folder and summary, and the checks around it.

``execute(cfg, run_dir)`` checks the board before any long work (buildable, a real board's probe and port
attached), runs the entry (``entry: "module:function"``, or ``experiment.entry``) as ``function(cfg, run_dir) ->
dict``, writes the dict as ``run_dir/summary.json`` and then fails the command when a measured result is wrong.
``check_config`` composes a command's config up front so a bad key or value is one line naming it.
"""

from __future__ import annotations

import importlib
import logging
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException
from rich.console import Console

from harness.boards import build_only as build_only_mode
from harness.boards.discovery import preflight
from harness.boards.factory import chosen_timer
from harness.build.project import require_buildable
from harness.config.board import load_board_config
from harness.config.compose import compose_config
from harness.config.schema import experiment_schema
from harness.errors import ConfigError, ResultError, TinyHilError
from harness.experiments.folders import private_workdir
from harness.experiments.sweep import finished_summary
from harness.measure.units import add_milliseconds
from harness.results.io import atomic_write_text, repo_relative, write_summary
from harness.results.tracking import log_run
from harness.search import check_method

log = logging.getLogger("tinyhil")


def console() -> Console:
    """The console errors and results go to (stderr; an error stays one line whatever the terminal width)."""
    return Console(stderr=True, soft_wrap=True)


def resolve_entry(spec: str) -> Callable:
    """Import ``"package.module:function"``."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(f"entry must look like 'package.module:function', got {spec!r}")
    mod_name, fn_name = spec.split(":", 1)
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise ConfigError(f"entry {spec!r}: cannot import {mod_name!r} ({e})") from None
    try:
        return getattr(mod, fn_name)
    except AttributeError:
        raise ConfigError(f"entry {spec!r}: module {mod_name!r} has no {fn_name!r}") from None


def _board_config(cfg):
    """The run's BoardConfig, or None for commands without a board."""
    node = OmegaConf.select(cfg, "board")
    if not isinstance(node, DictConfig) or "driver" not in node:
        return None

    return load_board_config(OmegaConf.to_container(node, resolve=True))


def check_board(cfg, build_only: bool):
    """Before any long work: the board's firmware can be built, and (unless build_only) a real board's probe and
    port are attached. Resolved devices are written back into ``cfg.board.driver``. Returns the BoardConfig."""
    board = _board_config(cfg)
    if board is None:
        return None
    if not board.buildable:
        require_buildable(board)  # raises the ConfigError naming the missing board support
    if not build_only and board.driver.type == "serial":  # a labgrid farm board is checked when acquired
        for key, value in preflight(board).items():
            cfg.board.driver[key] = value
        board = _board_config(cfg)
    return board


def in_sweep() -> bool:
    """Whether this run is one job of a Hydra multirun."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def use_private_workdir(cfg, run_dir: Path) -> Path:
    """Point ``cfg.workdir`` at this run's own work folder (``<workdir>/runs/<run id>``, see
    :mod:`harness.experiments.folders`): every build folder of the run goes there, none is shared."""
    base = OmegaConf.select(cfg, "workdir") or ".cache/tinyhil"
    work = private_workdir(base, run_dir)
    with open_dict(cfg):
        cfg.workdir = str(work)
    return work


def execute(cfg, run_dir: Path) -> dict:
    """Run the configured entry and write its summary (see :func:`run_entry`); errors are logged to cli.log."""
    try:
        return run_entry(cfg, run_dir)
    except TinyHilError as e:
        log.info("failed: %s", e)  # INFO: the terminal already shows the error once
        raise


def run_entry(cfg, run_dir: Path) -> dict:
    """Run the configured entry and write its summary. Shared by every command.

    The run builds in its own work folder (:func:`use_private_workdir`). In a sweep, a job whose folder already
    holds a finished summary (a re-run of the sweep into the same ``hydra.sweep.dir``) is skipped.

    ``build_only=true``: the entry runs until the firmware is built and checked for fit, then stops before flashing
    (harness.boards.build_only); the summary says ``built``, ``flash_used``, ``sram_used``, ``elf_sha256``. Cycle
    counts get ``clock_hz`` and millisecond values beside them (harness.measure.units)."""

    entry = OmegaConf.select(cfg, "experiment.entry") or OmegaConf.select(cfg, "entry")
    prog = sys.argv[0] if sys.argv and sys.argv[0].startswith("tinyhil") else "tinyhil"
    log.info("command: %s", " ".join([prog, *(shlex.quote(a) for a in sys.argv[1:])]))
    log.info("overrides: %s", " ".join(shlex.quote(a) for a in sys.argv[1:]) or "(none)")
    log.info("run folder: %s; entry: %s", repo_relative(run_dir), entry)
    fn = resolve_entry(entry)
    if in_sweep():
        done = finished_summary(run_dir)
        if done is not None:
            console().print(f"[green]skipped[/green] {run_dir.name}: finished before ({run_dir / 'summary.json'})")
            return done
    use_private_workdir(cfg, run_dir)
    build_only = bool(OmegaConf.select(cfg, "build_only", default=False))
    board = check_board(cfg, build_only)
    if board is not None:
        given = OmegaConf.select(cfg, "timer"), OmegaConf.select(cfg, "timing.name")
        timer, timing = chosen_timer(board, *given)
        timer = timer or board.timer.source
        log.info("board: %s (%s, timer %s%s)", board.name, "emulated" if board.emulated else "real", timer,
                 f", timing {timing}" if timing else "")
    run_dir.mkdir(parents=True, exist_ok=True)
    shown = OmegaConf.to_container(cfg, resolve=True)
    if isinstance(shown.get("workdir"), str):  # the private work folder, named without the machine's path
        shown["workdir"] = repo_relative(shown["workdir"])
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(shown))
    t0 = time.perf_counter()
    with build_only_mode.mode(build_only):
        try:
            summary = fn(cfg, run_dir) or {}
            if build_only:
                summary.setdefault("built", False)  # the command never reached a firmware build
        except build_only_mode.BuiltOnly as done:
            summary = done.summary()
            name = OmegaConf.select(cfg, "experiment.name")
            if name:
                summary["experiment"] = name
            console().print(
                f"[green]built[/green] {done.board}: flash {summary['flash_used']} B, SRAM {summary['sram_used']} B"
                f" (build_only: nothing flashed)"
            )
    if board is not None:
        summary = add_milliseconds(
            summary, str(summary.get("unit", board.timer.unit)), summary.get("clock_hz") or board.timer.hz
        )
    summary.setdefault("run", run_dir.name)
    summary.setdefault("command_seconds", round(time.perf_counter() - t0, 3))
    write_summary(run_dir, summary)
    log.info("result: %s", result_line(summary))
    tracking = OmegaConf.select(cfg, "tracking")
    if tracking:  # tracking=mlflow: config, summary and files to a local MLflow store
        command = (sys.argv[0].split() or ["tinyhil"])[-1] if sys.argv else "tinyhil"
        rid = log_run(OmegaConf.to_container(tracking, resolve=True), run_dir,
                      OmegaConf.to_container(cfg, resolve=True), summary, command)
        log.info("tracked: MLflow run %s in %s", rid, OmegaConf.select(cfg, "tracking.store") or "mlruns/")
    console().print(f"[green]results:[/green] {run_dir / 'summary.json'}")
    check_results(summary)
    return summary


def result_line(summary: dict) -> str:
    """The summary's headline keys on one line (for cli.log)."""
    keys = ("experiment", "model", "board", "timer", "unit", "total_count", "total_ms", "bit_exact", "top1_device",
            "float_top1", "n_entries", "figures", "command_seconds")
    return ", ".join(f"{k}={summary[k]}" for k in keys if k in summary and not isinstance(summary[k], (list, dict)))


def check_results(summary: dict) -> None:
    """ResultError (exit 3) when a measured result is wrong: the summary is written first, then the command
    fails, so a wrong result never exits 0 and nothing measured is lost."""
    if summary.get("bit_exact") is False:
        why = summary.get("mismatches") or summary.get("mismatched_layers") or summary.get("mismatched") or []
        detail = "; ".join(str(w) for w in why[:3]) if isinstance(why, list) else str(why)
        raise ResultError(f"results are not bit-exact against the integer reference: {detail or 'see summary.json'}")


def _one_line(exc: BaseException) -> str:
    """A Hydra/OmegaConf composition error as one line naming the key."""
    err: BaseException | None = exc
    while err is not None:
        if isinstance(err, OmegaConfBaseException) and getattr(err, "full_key", None):
            msg = str(getattr(err, "msg", "") or str(err)).splitlines()[0]
            return f"{err.full_key}: {msg}"
        err = err.__cause__ or err.__context__
    text = " ".join(str(exc).split())
    return text.split(" Config search path:")[0]


def check_writable(path: str | Path, what: str, fix: str) -> None:
    """ConfigError unless ``path`` is a folder this process can create or write into."""
    p = Path(path).absolute()
    probe = p
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"cannot use {p} as {what}: {probe} is a file, not a folder; choose another ({fix})")
    try:  # a real write: permissions alone do not tell (root, read-only or virtual file systems)
        os.rmdir(tempfile.mkdtemp(prefix=".tinyhil-probe-", dir=probe))
    except OSError as e:
        raise ConfigError(f"cannot write {what} {p}: {probe}: {e.strerror}; choose another ({fix})") from None


#: Config groups (and top-level keys) whose override an experiment may not use.
_GROUPS = ("board", "model", "data", "method", "timer", "timing")


def _overridden(override: str) -> str:
    """The config group or top-level key an override sets (``method.bits=[4]`` -> ``method``)."""
    key = override.split("=", 1)[0].lstrip("+~")
    return key.split("@", 1)[0].split(".", 1)[0].split("/", 1)[0]


def check_config(command: str, overrides: list[str]) -> None:
    """Compose the command's config once before running it, so that before any work starts (exit 2, one line):
    a bad key or value names the key; an override of a group the experiment does not read is refused (it would
    silently do nothing); and the search method's options are checked. Sweeps (-m) and Hydra's own flags are
    left to Hydra."""
    if any(o.startswith("-") for o in overrides):
        return
    try:
        cfg = compose_config(command, overrides, hydra=True)
        run_dir = OmegaConf.select(cfg, "hydra.run.dir")
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"bad configuration: {_one_line(e)}") from None
    check_writable(run_dir, "the run folder", "hydra.run.dir=<folder>")
    if OmegaConf.select(cfg, "workdir"):
        check_writable(cfg.workdir, "the work folder", "workdir=<folder>")
    name = OmegaConf.select(cfg, "experiment.name")
    schema = experiment_schema(str(name)) if name else None
    uses = getattr(schema, "uses", _GROUPS)
    for o in overrides:
        group = _overridden(o)
        if group in _GROUPS and group not in uses:
            raise ConfigError(
                f"experiment={name} does not use {group}: '{o}' would have no effect; drop it "
                f"(this experiment reads {', '.join(uses) or 'none of ' + ', '.join(_GROUPS)})"
            )
    if "method" in uses and OmegaConf.select(cfg, "method") is not None:
        check_method(cfg.method)
    entry = OmegaConf.select(cfg, "experiment.entry")
    if entry:  # an experiment's own checks (its module's ``check_config(cfg)``), e.g. the methods of its points
        try:
            own = getattr(importlib.import_module(str(entry).split(":", 1)[0]), "check_config", None)
        except ModuleNotFoundError:
            own = None  # reported by resolve_entry when the run starts
        if own is not None:
            own(cfg)
