"""``tracking=mlflow``: a run's config, summary keys and files in a local MLflow file store; off by default."""

from __future__ import annotations

import json
import os

from tests.fixtures.cli import tinyhil


def _client(store):
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=store.resolve().as_uri())


def test_tracking_is_off_by_default(tmp_path):
    p = tinyhil("figures", f"results={tmp_path / 'none'}", f"out={tmp_path / 'figs'}")
    assert p.returncode == 0, p.stderr[-2000:]
    assert not (tmp_path / "figs" / "mlruns").exists()
    assert "tracked" not in (tmp_path / "figs" / "cli.log").read_text()


def test_mlflow_logs_config_summary_and_files_to_a_shared_local_store(tmp_path):
    store = tmp_path / "store"
    for i in (1, 2):
        p = tinyhil("figures", f"results={tmp_path / 'none'}", f"out={tmp_path / f'figs{i}'}", "tracking=mlflow",
                    f"tracking.store={store}")
        assert p.returncode == 0, p.stderr[-2000:]
        assert "tracked: MLflow run" in (tmp_path / f"figs{i}" / "cli.log").read_text()
    client = _client(store)
    exp = client.get_experiment_by_name("tinyhil-figures")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["figs1", "figs2"]
    run = next(r for r in runs if r.info.run_name == "figs1")
    summary = json.loads((tmp_path / "figs1" / "summary.json").read_text())
    assert run.data.metrics["figures"] == summary["figures"] == 1
    assert run.data.params["results"] == str(tmp_path / "none") and run.data.params["tracking_name"] == "mlflow"
    assert run.data.tags["tinyhil.command"] == "figures" and "freebits_pareto" in run.data.tags["summary.skipped"]
    files = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"summary.json", "config.yaml", "cli.log", "mcunetv2_peak_sram.png", "mcunetv2_peak_sram.pdf"} <= files
