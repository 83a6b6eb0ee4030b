"""Run folders that never collide and a private work folder per run, so concurrent runs cannot meet.

* **Run folders** (``results/<run_name>``, a sweep's ``results/multirun-...``) are *claimed* before anything is
  written: a marker file ``.tinyhil-run`` created with ``O_EXCL`` in a folder that is new or empty. Two runs that
  start in the same second with the default, time-stamped name get different folders: the second takes the first
  free ``<name>-2``, ``<name>-3``, ... A name the user gave (``run_name=...`` or ``hydra.run.dir=...``) that already
  holds another run is refused with one line naming the fix; nothing of the other run is overwritten. A sweep
  folder the user named is resumed instead (its finished jobs are skipped, see :mod:`harness.experiments.sweep`).
* **Work folders** (generated projects, build trees, emulator files) are private to a run:
  ``<workdir>/runs/<run id>/`` where the run id is derived from the claimed run folder, so no two runs ever build
  in the same folder. Images are shared only through the content-addressed build cache
  (:func:`harness.build.project.build`). A work folder records its owner (host, pid); ones whose owner has ended
  and that are older than :data:`PRUNE_AFTER_S` are removed when a later run starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import time
from pathlib import Path

from omegaconf import OmegaConf

from harness.errors import ConfigError

MARKER = ".tinyhil-run"
OWNER = ".tinyhil-owner.json"
#: A finished run's work folder is kept this long (to rebuild by hand, to debug), then pruned.
PRUNE_AFTER_S = 24 * 3600.0
#: Work folders of other hosts (a shared file system) are pruned only after this long.
PRUNE_FOREIGN_AFTER_S = 7 * 24 * 3600.0
_MAX_SUFFIX = 1000
_UNSAFE = re.compile(r"[^A-Za-z0-9._,=+@%-]+")
_PLAIN = re.compile(r"[^A-Za-z0-9._-]+")


class RunFolderTaken(ConfigError):
    """A run folder the user named already holds another run."""


def _try_claim(folder: Path) -> bool:
    """Claim ``folder`` for this run: True when it was new or empty and the marker is ours."""
    folder.mkdir(parents=True, exist_ok=True)
    if any(p.name != MARKER for p in folder.iterdir()):
        return False
    try:
        fd = os.open(folder / MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}, f)
    return True


def claim_run_dir(folder: str | Path, *, explicit: bool, what: str = "run") -> Path:
    """The folder this run writes to: ``folder`` itself, or (for a default name) the first free ``folder-N``.

    ``explicit``: the user named the folder; if it holds another run, :class:`RunFolderTaken` (nothing is
    touched)."""
    folder = Path(folder)
    if _try_claim(folder):
        return folder
    if explicit:
        raise RunFolderTaken(
            f"{folder} already holds another {what}; give a new name (run_name=NAME or hydra.run.dir=DIR) or move "
            f"that folder away: tinyhil never writes over another run"
        )
    for n in range(2, _MAX_SUFFIX):
        candidate = folder.with_name(f"{folder.name}-{n}")
        if _try_claim(candidate):
            return candidate
    raise RunFolderTaken(f"no free run folder next to {folder} (tried {_MAX_SUFFIX} names); clean up results/")


def claim_sweep_dir(folder: str | Path, *, explicit: bool) -> Path:
    """A sweep's folder: a folder the user named is resumed as it is (finished jobs are skipped); the default,
    time-stamped name gets a fresh suffix when another sweep started in the same second."""
    folder = Path(folder)
    if explicit:
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return claim_run_dir(folder, explicit=False, what="sweep")


def job_dir_name(override_dirname: str, num: int | str) -> str:
    """A sweep job's folder name from its overrides (``seed=11,method.phi=3``): safe as one path component
    (``/`` and other separators become ``_``), at most 120 characters (longer ones end in a hash), ``job<num>``
    for a job without overrides."""
    name = _UNSAFE.sub("_", str(override_dirname)).strip("._")
    if not name:
        return f"job{num}"
    if len(name) > 120:
        name = f"{name[:100]}-{hashlib.sha1(name.encode()).hexdigest()[:10]}"
    return name


def _register_resolver() -> None:
    if not OmegaConf.has_resolver("tinyhil_job_dir"):
        OmegaConf.register_new_resolver("tinyhil_job_dir", job_dir_name)


_register_resolver()  # at import: Hydra resolves hydra.sweep.subdir in launcher workers that import this module


# ------------------------------------------------------------------------------------------ work folders


def run_id(run_dir: str | Path) -> str:
    """A short name unique to one run folder: its name and a hash of its absolute path."""
    p = Path(run_dir).resolve()
    digest = hashlib.sha256(str(p).encode()).hexdigest()[:10]
    # Only [A-Za-z0-9._-]: build tools split their arguments at commas (-Wl,-Map,<path>) and at '='.
    return f"{_PLAIN.sub('_', p.name)[:60]}-{digest}"


def private_workdir(base: str | Path, run_dir: str | Path) -> Path:
    """This run's own work folder under ``base`` (absolute, so worker processes on any cwd agree), with its owner
    recorded; older folders of finished runs are pruned first."""
    root = Path(base).resolve() / "runs"
    root.mkdir(parents=True, exist_ok=True)
    prune_work_folders(root)
    d = root / run_id(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    (d / OWNER).write_text(
        json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "run_dir": str(Path(run_dir).resolve()),
                    "started": time.time()})
    )
    return d


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def prune_work_folders(root: Path, *, now: float | None = None) -> list[Path]:
    """Remove work folders whose owner process has ended and that are older than :data:`PRUNE_AFTER_S`
    (another host's: :data:`PRUNE_FOREIGN_AFTER_S`). Returns what was removed."""
    now = time.time() if now is None else now
    host = socket.gethostname()
    removed = []
    for d in root.iterdir() if root.is_dir() else ():
        try:
            owner = json.loads((d / OWNER).read_text())
            age = now - (d / OWNER).stat().st_mtime
        except (OSError, ValueError):
            continue  # no owner record (being created, or not ours): leave it
        if owner.get("host") == host:
            stale = age > PRUNE_AFTER_S and not _alive(int(owner.get("pid", 0)))
        else:
            stale = age > PRUNE_FOREIGN_AFTER_S
        if stale:
            with contextlib.suppress(OSError):
                gone = d.with_name(f".gone-{d.name}-{os.getpid()}")
                d.rename(gone)
                shutil.rmtree(gone, ignore_errors=True)
                removed.append(d)
    return removed
