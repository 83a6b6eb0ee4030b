"""Atomic result files: a crash mid-write never leaves a half-written table or summary.

Result files are readable by the group and others (0644, as ``cp`` would make them under the usual umask):
``mkstemp`` creates its temporary file private (0600), which would keep colleagues on a shared server out.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from harness import REPO_ROOT

#: Mode of every result file tinyhil writes.
RESULT_MODE = 0o644


def ensure_readable(path: str | Path) -> Path:
    """Give a result file tinyhil wrote the group-readable :data:`RESULT_MODE`."""
    os.chmod(path, RESULT_MODE)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and an atomic rename (mode 0644)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, RESULT_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def _plain(v: Any) -> Any:
    """Numbers as numbers: numpy scalars become Python ones, NaN becomes null."""
    if isinstance(v, np.generic):
        v = v.item()
    elif isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def flatten(summary: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings become flat keys joined by ``_`` (``{"pairs": {"a2w2": 3}}`` -> ``pairs_a2w2``)."""
    out: dict[str, Any] = {}
    for k, v in summary.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{key}_"))
        else:
            out[key] = v
    return out


def repo_relative(path: str | Path, base: str | Path | None = None) -> str:
    """``path`` as result files keep it: relative to ``base`` (default: the repository) when inside it, else as
    given when already relative, else only its file name: a result file never holds an absolute path (it would
    name the machine and user that ran it, and break when the folder moves)."""
    p = Path(path)
    if not p.is_absolute():
        return str(p)
    for root in ([Path(base)] if base is not None else []) + [REPO_ROOT]:
        try:
            return str(p.resolve().relative_to(Path(root).resolve()))
        except ValueError:
            continue
    return p.name


def portable(value: Any, base: str | Path | None = None) -> Any:
    """``value`` with every absolute path string (also inside lists and mappings) made :func:`repo_relative`."""
    if isinstance(value, str):
        return repo_relative(value, base) if value.startswith(os.sep) and len(value) > 1 else value
    if isinstance(value, dict):
        return {k: portable(v, base) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v, base) for v in value]
    return value


def write_summary(run_dir: str | Path, summary: dict[str, Any]) -> Path:
    """Write ``run_dir/summary.json``: flat keys (nested mappings flattened), numbers as numbers, paths relative to
    the run folder or the repository (:func:`portable`)."""
    return atomic_write_text(
        Path(run_dir) / "summary.json",
        json.dumps(_plain(portable(flatten(summary), run_dir)), indent=2) + "\n",
    )


def write_table(df, path: str | Path) -> Path:
    """Write a pandas DataFrame as CSV (or Parquet by suffix), atomically."""
    path = Path(path)
    if path.suffix == ".parquet":

        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return atomic_write_bytes(path, buf.getvalue())
    return atomic_write_text(path, df.to_csv(index=False))
