"""Per-layer tables: printed with rich for a person, written as CSV for a program.

``per_layer.csv`` has one row per layer: what it is (op, precisions, shapes, MACs), what it cost (``count`` in
the timer's ``unit``, ``instructions`` beside cycles, ``ms`` where the clock is known), and where its bytes live:
flash (``weight_bytes``, ``bias_bytes``, ``requant_bytes``, ``flash_bytes``) and RAM (``in_bytes``/``out_bytes``:
its tensors' share of the arena, ``live_bytes``: the arena in use during the layer, ``scratch_bytes``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from harness.measure.session import Measurement
from harness.results.io import write_table


def per_layer_frame(m: Measurement) -> pd.DataFrame:
    """One row per layer: counts (and milliseconds where the clock is known) beside flash and RAM bytes."""
    df = pd.DataFrame(m.per_layer_rows())
    df.insert(0, "board", m.board)
    df.insert(1, "timer", m.timer)
    df.insert(2, "unit", m.unit)
    df["count_per_mac"] = df["count"] / df["macs"].clip(lower=1)
    if m.unit == "cycles" and m.clock_hz:
        df["ms"] = df["count"] * 1e3 / float(m.clock_hz)
    if m.layer_memory and len(m.layer_memory) == len(df):
        mem = pd.DataFrame(m.layer_memory)
        df = pd.concat([df.reset_index(drop=True), mem.reset_index(drop=True)], axis=1)
    return df


def write_per_layer(m: Measurement, run_dir: Path, name: str = "per_layer.csv") -> Path:
    return write_table(per_layer_frame(m), Path(run_dir) / name)


def print_per_layer(m: Measurement, title: str = "") -> None:
    t = Table(title=title or f"{m.board} ({m.timer}, {m.unit})")
    for col in ("#", "layer", "op", "a/w/o", "in", "out", "MACs", m.unit, f"{m.unit}/MAC", "bit-exact"):
        t.add_column(col, justify="right" if col not in ("layer", "op") else "left")
    for r in m.layers:
        t.add_row(str(r.index), r.name, r.op, f"{r.a_bits}/{r.w_bits}/{r.o_bits}",
                  "x".join(map(str, r.in_shape)), "x".join(map(str, r.out_shape)), f"{r.macs:,}",
                  f"{r.count:,.0f}", f"{r.count / max(r.macs, 1):.2f}", {True: "yes", False: "NO", None: "-"}[r.bit_exact])
    t.add_row("", "total", "", "", "", "", f"{sum(r.macs for r in m.layers):,}", f"{m.total_count:,.0f}", "", "")
    console = Console()
    if not console.is_terminal:  # logs and CI: do not squeeze the table to 80 columns
        console = Console(width=160)
    console.print(t)


def count_keys(m: Measurement) -> dict:
    """The summary keys every measurement carries: what its counts are (timer, unit) and their total; with
    ``timer=qemu-cycles`` also the core, timing profile, model version, instructions beside the cycles and the
    profile's clock (the runner adds milliseconds beside every cycle count: ``total_ms``)."""
    keys = {"timer": m.timer, "unit": m.unit, "total_count": m.total_count, "warmup_inferences": m.warmup}
    if m.unit != "instructions" and m.instructions_total is not None:
        keys["instructions_total"] = m.instructions_total
    if m.timing:
        keys.update(
            core=m.timing["core"], timing_profile=m.timing["timing_profile"],
            timing_model_version=m.timing["timing_model_version"], clock_hz=m.timing["clock_hz"],
        )  # fmt: skip
    return keys
