"""Optional experiment tracking: a finished run's config, summary keys and result files in a local MLflow store.

``tracking=mlflow`` (configs/tracking/mlflow.yaml) logs every run after its ``summary.json`` is written: the
resolved config as parameters (flattened keys), every numeric summary key as a metric, the other summary keys as
tags, and the run folder's files as artifacts. The store is a folder (MLflow's file store, no server): ``mlruns/``
inside the run folder unless ``tracking.store`` names a shared one; ``mlflow ui --backend-store-uri <folder>``
browses it. Off by default; mlflow is imported only when it is on.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from numbers import Real
from pathlib import Path
from typing import Any

from harness.errors import MissingDependencyError
from harness.results.io import flatten

_PARAM_CHARS = 500  # MLflow limits parameter values; long lists are cut (the full config is an artifact)
_TAG_CHARS = 5000


def _mlflow():
    try:
        import mlflow  # deliberately lazy: optional and heavy
    except ImportError:
        raise MissingDependencyError("tracking=mlflow needs the mlflow package (pip install mlflow)") from None
    return mlflow


def store_uri(tracking: Mapping[str, Any], run_dir: Path) -> str:
    """The file store's URI: ``tracking.store`` (relative to the working folder) or ``<run folder>/mlruns``."""
    folder = Path(tracking.get("store") or Path(run_dir) / "mlruns").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder.as_uri()


def log_run(tracking: Mapping[str, Any], run_dir: Path, config: Mapping[str, Any], summary: Mapping[str, Any],
            command: str) -> str:
    """Log one finished run; returns its MLflow run id."""
    # MLflow 3 keeps file stores in maintenance mode and refuses them unless asked; a folder next to the results
    # (no database, no server) is what tinyhil wants, so ask.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow = _mlflow()
    from mlflow.entities import Metric, Param, RunTag  # part of the lazy import above

    run_dir = Path(run_dir)
    with warnings.catch_warnings():  # MLflow warns that file stores are its older backend; that is the point here
        warnings.simplefilter("ignore")
        client = mlflow.tracking.MlflowClient(tracking_uri=store_uri(tracking, run_dir))
        name = str(tracking.get("experiment") or f"tinyhil-{command}")
        exp = client.get_experiment_by_name(name)
        exp_id = exp.experiment_id if exp is not None else client.create_experiment(name)
        run = client.create_run(exp_id, run_name=run_dir.name, tags={"tinyhil.command": command})
        rid = run.info.run_id
        params = [Param(k, str(v)[:_PARAM_CHARS]) for k, v in flatten(dict(config)).items()]
        metrics, tags = [], []
        for k, v in summary.items():
            if isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(float(v)):
                metrics.append(Metric(k, float(v), 0, 0))
            else:
                tags.append(RunTag(f"summary.{k}", str(v)[:_TAG_CHARS]))
        for i in range(0, max(len(params), len(metrics), len(tags)), 100):  # MLflow's batch limit is 100 params
            client.log_batch(rid, metrics=metrics[i : i + 100], params=params[i : i + 100], tags=tags[i : i + 100])
        for f in sorted(run_dir.iterdir()):
            if f.is_file():
                client.log_artifact(rid, str(f))
        client.set_terminated(rid)
    return rid
