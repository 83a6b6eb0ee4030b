"""Where a profile's images run: here, one after the other; a local process pool; or shards on a Ray cluster.

Every executor calls the same picklable function on each job (``measure_image`` of an ``ImageJob``) and hands
each result to ``take`` *in this process*, as soon as it arrives: only the caller merges rows into the latency
table and saves it, so the table built from shards is the one a serial profile builds (the same rows; the order
in which they were added and the ``date`` column aside). A job that fails with a :class:`TinyHilError` is
reported in ``errors`` and the others go on; anything else stops the profile.

``ray``: ``address`` names a running cluster (``host:port`` of its head, ``auto`` for the cluster this machine is
a node of); without one, a private local Ray is started for the profile (``num_cpus = workers``) and stopped
after it. Ray's workers import ``harness`` from this checkout (``PYTHONPATH`` in the job's runtime environment):
nodes of a cluster need the checkout at the same path, the venv and the toolchains (docs/scaling.md); a node whose
firmware or compiler differs refuses its images (the target check in ``measure_image``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from harness.build.project import CACHE_ENV
from harness.config.board import repo_root
from harness.errors import ConfigError, DeviceError, MissingDependencyError, TinyHilError

EXECUTORS = ("local", "ray")


def run_serial(jobs: Sequence[Any], fn: Callable, take: Callable) -> None:
    """One job after the other in this process; the first error stops the profile (what was taken is saved)."""
    for job in jobs:
        take(fn(job))


def run_pool(jobs: Sequence[Any], workers: int, fn: Callable, take: Callable, errors: list[str],
             describe: Callable) -> None:
    """A pool of ``workers`` local processes (spawned: the host process may hold torch/OpenMP threads that a
    forked child must not inherit)."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
    pending: dict[Future, Any] = {pool.submit(fn, j): j for j in jobs}
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                job = pending.pop(f)
                try:
                    res = f.result()
                except TinyHilError as e:
                    errors.append(f"{describe(job)}: {e}")
                    continue
                take(res)
    except BaseException:
        # interrupted: do not wait for the jobs in flight (what was saved is kept; a rerun resumes)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _ray():
    try:
        import ray  # heavy (a second or two): imported only for executor=ray
    except ImportError:
        raise MissingDependencyError("profile.executor=ray needs the ray package: pip install 'ray>=2.9'") from None
    return ray


def _runtime_env() -> dict:
    path = os.pathsep.join(p for p in (str(repo_root()), os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
    if os.environ.get(CACHE_ENV):  # the caller's build cache, on a shared file system
        env[CACHE_ENV] = os.environ[CACHE_ENV]
    return {"env_vars": env}


def run_ray(jobs: Sequence[Any], address: str | None, workers: int, fn: Callable, take: Callable,
            errors: list[str], describe: Callable) -> dict:
    """Shard ``jobs`` over Ray tasks (one CPU each); returns what the cluster offered (``ray_nodes``, ``ray_cpus``)."""
    ray = _ray()
    own = not ray.is_initialized()
    if own:
        kw: dict[str, Any] = {"runtime_env": _runtime_env(), "log_to_driver": False,
                              "logging_level": "ERROR", "configure_logging": True}
        if address:
            kw["address"] = address
        else:  # a private local Ray on this machine only
            kw.update(num_cpus=workers, include_dashboard=False, address="local")
        try:
            ray.init(**kw)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise DeviceError(f"cannot start or reach {where}: {str(e).splitlines()[0]}; start the head with "
                              "`ray start --head` or leave profile.ray_address empty for a local Ray") from None
    try:
        info = {"ray_nodes": len([n for n in ray.nodes() if n.get("Alive")]),
                "ray_cpus": int(ray.cluster_resources().get("CPU", 0))}
        task = ray.remote(num_cpus=1, max_retries=0)(fn)
        pending = {task.remote(j): j for j in jobs}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    job = pending.pop(ref)
                    try:
                        res = ray.get(ref)
                    except TinyHilError as e:  # Ray re-raises the task's own error class
                        errors.append(f"{describe(job)}: {_cause(e)}")
                        continue
                    take(res)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        return info
    finally:
        if own:
            ray.shutdown()


def _cause(e: BaseException) -> str:
    """The message of the task's own exception, without Ray's wrapping traceback."""
    cause = getattr(e, "cause", None)
    return str(cause if cause is not None else e).strip().splitlines()[-1]


def check_executor(name: str) -> None:
    if name not in EXECUTORS:
        raise ConfigError(f"profile.executor must be one of {EXECUTORS}, got {name!r}")
