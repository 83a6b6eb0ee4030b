"""``tinyhil run experiment=table-optimum``: the network-level figure of merit of the kernels.

Profiles the board's latency table for the network (every layer shape at every (a, w, o), as ``tinyhil
profile``), asks the latency ILP for the fastest configuration the table allows (``bitops_search`` with
``objective="latency"``: accuracy ignored, activation precisions consistent between producer and consumer,
the network input at 8 bits), then deploys that configuration and uniform int8 on the board and measures both.
Each configuration is measured again on the boards of ``experiment.also`` (``board[:timing]``, counted in cycles
with ``timer=qemu-cycles``), so one run gives the figure in instructions and in the cycles of both timing models.

Writes ``summary.json`` (``table_optimum_vs_int8_pct``: 100 (1 - optimum / int8) on the run's board and timer;
``table_optimum_vs_int8_pct_<board>[_<timing>]`` for each ``also`` target; counts, predictions and per-op
shares), ``config_table_optimum.json``, ``per_layer.csv`` (both configurations, every target) and ``lut.csv``
(the table the ILP chose from).
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig
from rich.console import Console

from harness.boards import make_board
from harness.errors import ConfigError
from harness.experiments.common import board_from, workdir
from harness.experiments.profile import profile_for
from harness.graph.trace import extract_layers
from harness.loop.context import total_count
from harness.loop.deploy import Deployer
from harness.measure.target import timer_keys
from harness.quant.prepare import prepare
from harness.results.io import write_table
from harness.search.bitops_budget import bitops_search
from harness.search.uniform import uniform_config


def parse_target(spec: str) -> tuple[str, str | None]:
    """``board`` or ``board:timing`` -> (board, timing)."""
    board, _, timing = str(spec).partition(":")
    if not board:
        raise ConfigError(f"experiment.also: {spec!r} names no board (board or board:timing)")
    return board, timing or None


def target_key(board: str, timing: str | None) -> str:
    """A flat summary-key suffix for a target: ``qemu_mps2_an500_stm32h743``."""
    return "_".join(x.replace("-", "_") for x in (board, timing) if x)


def _rows(m, tag: str, target: str) -> list[dict]:
    return [
        {
            "target": target,
            "config": tag,
            "index": i,
            "name": lm.name,
            "op": lm.op,
            "a_bits": lm.a_bits,
            "w_bits": lm.w_bits,
            "o_bits": lm.o_bits,
            "macs": lm.macs,
            "count": lm.count,
            "unit": m.unit,
        }
        for i, lm in enumerate(m.layers)
    ]


def run(cfg: DictConfig, run_dir: Path) -> dict:
    t0 = time.perf_counter()
    e = cfg.experiment
    console = Console()
    also = [parse_target(s) for s in e.also]  # checked before the long work
    p = prepare(cfg, n_eval=max(1, int(e.n_measure)), n_calib=int(e.n_calib))
    layers = extract_layers(p.model, p.input_shape)
    board = board_from(cfg)
    bcfg = board.cfg
    prof = profile_for(e.profile, bcfg, layers, workdir(cfg, "profile"), seed=int(cfg.seed), title=p.name)
    table = prof.table
    table.save(run_dir / "lut", merge=False)  # the entries the ILP chose from (lut.csv / lut.parquet)
    int8 = uniform_config(layers, 8, 8)
    fastest = bitops_search(layers, objective="latency", table=table)
    fastest.save(run_dir / "config_table_optimum.json")
    pred8 = table.predict(layers, int8, estimate=True)[0]
    predf = table.predict(layers, fastest, estimate=True)[0]
    n = max(1, int(e.n_measure))
    flags = tuple(e.profile.build_flags)

    def measure(dep: Deployer, key: str) -> tuple[float, float, list[dict]]:
        d8 = dep.deploy(int8, n, f"int8-{key}")
        df = dep.deploy(fastest, n, f"optimum-{key}")
        return (
            total_count(d8.measurement),
            total_count(df.measurement),
            _rows(d8.measurement, "int8", key) + _rows(df.measurement, "table_optimum", key),
        )

    main_key = target_key(bcfg.name, None)
    dep = Deployer(
        p, board, workdir(cfg, "table_optimum", bcfg.name, p.name), target=prof.target, build_flags=flags
    )
    c8, cf, rows = measure(dep, main_key)
    unit = rows[0]["unit"]
    summary: dict = {
        "experiment": "table-optimum",
        "model": p.name,
        "board": bcfg.name,
        **timer_keys(prof.target),
        "unit": unit,
        "table_entries": prof.n_entries,
        "int8_count": c8,
        "table_optimum_count": cf,
        "table_optimum_vs_int8_pct": round(100.0 * (1.0 - cf / c8), 3),
        "int8_predicted_count": pred8,
        "table_optimum_predicted_count": predf,
        "table_optimum_predicted_vs_int8_pct": round(100.0 * (1.0 - predf / pred8), 3),
        "table_optimum_mean_a_bits": round(
            sum(a for a, _ in fastest.layers.values()) / max(1, len(fastest)), 3
        ),
        "table_optimum_mean_w_bits": round(
            sum(w for _, w in fastest.layers.values()) / max(1, len(fastest)), 3
        ),
    }
    for b_name, timing in also:
        key = target_key(b_name, timing)
        other = make_board(b_name, timer="qemu-cycles", timing=timing)
        d = Deployer(p, other, workdir(cfg, "table_optimum", key, p.name), build_flags=flags)
        o8, of, orows = measure(d, key)
        rows += orows
        summary[f"int8_count_{key}"] = o8
        summary[f"table_optimum_count_{key}"] = of
        summary[f"table_optimum_vs_int8_pct_{key}"] = round(100.0 * (1.0 - of / o8), 3)
        summary[f"unit_{key}"] = orows[0]["unit"]
    df = pd.DataFrame(rows)
    write_table(df, run_dir / "per_layer.csv")
    main = df[df.target == main_key]
    for tag in ("int8", "table_optimum"):
        sub = main[main.config == tag]
        tot = sub["count"].sum()
        for op, v in sub.groupby("op")["count"].sum().items():
            summary[f"{tag}_count_share_{op}"] = round(float(v / tot), 4)
    summary["host_seconds"] = round(time.perf_counter() - t0, 3)
    console.print(
        f"[bold]{p.name}[/bold] on {bcfg.name}: table optimum {cf:,.0f} vs int8 {c8:,.0f} {unit} "
        f"({summary['table_optimum_vs_int8_pct']:+.1f} % below int8; predicted "
        f"{summary['table_optimum_predicted_vs_int8_pct']:+.1f} %)"
    )
    for b_name, timing in also:
        key = target_key(b_name, timing)
        console.print(
            f"  {b_name}{'+' + timing if timing else ''}: {summary[f'table_optimum_vs_int8_pct_{key}']:+.1f} "
            f"% below int8 in {summary[f'unit_{key}']}"
        )
    return summary
