"""Sweeps (``tinyhil <command> -m ...``): the sweep table, and resuming a sweep where it stopped.

Each job of a sweep runs in ``<sweep dir>/<its overrides>/`` (``hydra.sweep.subdir``, see
:func:`harness.experiments.folders.job_dir_name`) and writes its ``summary.json`` there. At the end of every
multirun, :func:`write_sweep_table` gathers one row per job folder into ``<sweep dir>/sweep.csv`` and
``sweep.parquet``: ``job`` (the folder), ``status`` (``done``, ``failed``: the summary says a result is wrong, or
``missing``: the job stopped before writing one), ``overrides`` (as typed), one ``override.<key>`` column per
override, then the summary's keys (lists and mappings as JSON text). Running the same sweep again into the same
folder (``hydra.sweep.dir=...``) skips every job whose summary is complete (:func:`finished_summary`) and runs
the others.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from harness.results.io import atomic_write_text, write_table

SWEEP_TABLE = "sweep"
FIRST_COLUMNS = ("job", "status", "overrides")


def finished_summary(run_dir: Path) -> dict | None:
    """The summary of a job that finished with correct results (None: run it, or run it again)."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("bit_exact") is False:
        return None
    return summary


def _job_overrides(job: Path) -> list[str] | None:
    try:
        items = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    return [str(o) for o in items] if isinstance(items, list) else None


def _cell(v: Any) -> Any:
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True)
    return v


def sweep_rows(sweep_dir: Path) -> list[dict]:
    """One row per job folder of the sweep (a folder with Hydra's ``.hydra/overrides.yaml``), in folder order."""
    rows = []
    for job in sorted(p for p in Path(sweep_dir).iterdir() if p.is_dir()):
        overrides = _job_overrides(job)
        if overrides is None:
            continue
        try:
            summary = json.loads((job / "summary.json").read_text())
        except (OSError, ValueError):
            summary = None
        status = "missing" if summary is None else ("failed" if summary.get("bit_exact") is False else "done")
        row: dict[str, Any] = {"job": job.name, "status": status, "overrides": " ".join(overrides)}
        for o in overrides:
            key, _, value = o.partition("=")
            row[f"override.{key.lstrip('+~')}"] = value
        for k, v in (summary or {}).items():
            if k not in row:
                row[k] = _cell(v)
        rows.append(row)
    return rows


def write_sweep_table(sweep_dir: Path) -> Path | None:
    """Write ``sweep.csv`` and ``sweep.parquet`` into ``sweep_dir``; None when it holds no job yet."""
    rows = sweep_rows(sweep_dir)
    if not rows:
        return None
    df = pd.DataFrame(rows)
    for c in df.columns:  # one type per column, so Parquet takes it (a key that is a number in one job, text in another)
        kinds = {type(v) for v in df[c] if v is not None and not (isinstance(v, float) and pd.isna(v))}
        if len(kinds) > 1 and not kinds <= {int, float, bool}:
            df[c] = df[c].map(lambda v: None if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))
    write_table(df, Path(sweep_dir) / f"{SWEEP_TABLE}.parquet")
    write_table(df, Path(sweep_dir) / f"{SWEEP_TABLE}.csv")
    atomic_write_text(Path(sweep_dir) / f"{SWEEP_TABLE}.json", json.dumps(
        {"jobs": len(df), "done": int((df["status"] == "done").sum()),
         "failed": int((df["status"] == "failed").sum()), "missing": int((df["status"] == "missing").sum())}
    ))
    return Path(sweep_dir) / f"{SWEEP_TABLE}.csv"
