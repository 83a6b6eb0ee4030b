"""``tinyhil bench experiment=scaling``: how a profile scales with local workers and through Ray.

The same profile (one model's layer shapes, the configured bit subset) is measured once per setting: serially (one
worker, the baseline), by a pool of N local workers, and through a local Ray (a head started on this machine; or a
running cluster, ``experiment.ray_address``). Each setting starts from an empty table and its own empty build
cache (``TINYHIL_BUILD_CACHE``), so each pays for its builds. Writes ``scaling.csv`` (one row per setting: wall
seconds, speed-up over serial, images, entries) and the summary: ``seconds_<setting>``, ``speedup_<setting>``,
``tables_identical`` (every table equals the serial one row for row, ``date`` aside) and ``bit_exact``.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from harness import CONFIG_DIR
from harness.build.project import CACHE_ENV
from harness.errors import ConfigError
from harness.experiments.common import board_from, workdir
from harness.experiments.profile import model_layers
from harness.measure.profile import ProfileSettings, available_cores, default_budget, profile_layers
from harness.results.io import write_table
from harness.table.lut import KEY_COLUMNS, LatencyTable

#: Columns compared between tables (``date`` is when a row was measured, ``bit_exact`` is checked separately).
COMPARED = (*KEY_COLUMNS, "count", "count_min", "count_max", "repeats", "macs", "op", "out_numel", "image")


def comparable(table: LatencyTable) -> pd.DataFrame:
    df = table.df
    cols = [c for c in COMPARED if c in df.columns]
    return df[cols].sort_values(list(KEY_COLUMNS)).reset_index(drop=True)


@contextlib.contextmanager
def build_cache(folder: Path):
    """Builds go to ``folder`` (an empty cache) while inside; spawned workers and Ray tasks inherit it."""
    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(folder)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = old


def model_config(name: str) -> dict:
    """``configs/model/<name>.yaml`` as a mapping (read directly: this runs inside the command's Hydra app)."""
    path = CONFIG_DIR / "model" / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml")))
        raise ConfigError(f"experiment.model: unknown model {name!r}; known: {known}")
    data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    data.pop("defaults", None)
    return data


def run(cfg: DictConfig, run_dir: Path) -> dict:
    e = cfg.experiment
    board = board_from(cfg).cfg
    layers = model_layers(model_config(str(e.model)))
    settings = []
    for w in OmegaConf.to_container(e.workers):
        settings.append((f"workers{w}" if w > 1 else "serial", "local", int(w), None))
    if bool(e.ray):
        settings.append(("ray", "ray", max(int(w) for w in e.workers), e.ray_address or None))
    console = Console(stderr=True)
    rows, tables = [], {}
    for label, executor, workers, address in settings:
        prof = ProfileSettings(
            a_bits=tuple(e.a_bits), w_bits=tuple(e.w_bits), o_bits=tuple(e.o_bits), repeats=int(e.repeats),
            workers=workers, seed=int(cfg.seed), budget=default_budget(board, max_macs=float(e.max_macs)),
            executor=executor, ray_address=address,
        )
        base = workdir(cfg, "scaling", label)
        with build_cache(base / "build-cache"):
            t0 = time.perf_counter()
            res = profile_layers(layers, board, run_dir / "tables" / label, prof, workdir=base / "images")
            seconds = time.perf_counter() - t0
        tables[label] = res.table
        rows.append({"setting": label, "executor": executor, "workers": workers, "seconds": round(seconds, 3),
                     "n_images": res.n_images, "n_entries": res.n_entries, "n_new": res.n_new,
                     "n_mismatched": len(res.mismatched), **res.executor_info})
        console.print(f"[bold]{label}[/bold]: {res.n_new} entries in {res.n_images} images, {seconds:.1f} s")
    serial = rows[0]["seconds"]
    for r in rows:
        r["speedup"] = round(serial / r["seconds"], 3) if r["seconds"] else None
    write_table(pd.DataFrame(rows), run_dir / "scaling.csv")
    ref = comparable(tables[rows[0]["setting"]])
    identical = {label: comparable(t).equals(ref) for label, t in tables.items()}
    for r in rows:
        console.print(f"  {r['setting']:>9}: {r['seconds']:8.1f} s  x{r['speedup']:.2f}  "
                      f"table {'identical' if identical[r['setting']] else 'DIFFERENT'}")
    summary = {
        "experiment": "scaling", "board": board.name, "model": str(e.model), "cores": available_cores(),
        "n_entries": rows[0]["n_entries"], "n_images": rows[0]["n_images"],
        "tables_identical": all(identical.values()),
        "bit_exact": all(r["n_mismatched"] == 0 for r in rows) and all(identical.values()),
        "mismatches": [f"{k}: table differs from the serial one" for k, v in identical.items() if not v],
    }
    for r in rows:
        summary[f"seconds_{r['setting']}"] = r["seconds"]
        summary[f"speedup_{r['setting']}"] = r["speedup"]
    for k in ("ray_nodes", "ray_cpus"):
        if any(k in r for r in rows):
            summary[k] = next(r[k] for r in rows if k in r)
    return summary
