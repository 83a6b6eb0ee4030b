"""Counts measured in context: a deployed network's per-layer counts, keyed as the latency table wants.

The profiled table measures each layer shape alone in a batch image; the loop also measures the whole network,
where a layer reads what its real producer wrote. :func:`context_rows` turns one such measurement into table rows
(one per ``(layer_key, a, w, o)``: the mean over the layers of that shape and over the inputs, so that the table
prices the measured network at exactly its measured mean count), and
:func:`with_in_context` keeps a record of them: the profiled rows, with every entry measured in context replaced
by the in-context count (column ``source``: ``profile`` or ``in-context``). Decisions never read that record
(the loop compares like with like: :mod:`harness.loop.closed_loop`); :func:`layer_counts` gives each layer's
measured count, from which the loop models what the isolated rows miss (a per-layer offset).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import datetime, timezone

import pandas as pd

from harness.errors import ConfigError
from harness.graph.spec import LayerSpec
from harness.measure.session import Measurement
from harness.precision.config import PrecisionConfig
from harness.precision.groups import NO_WEIGHTS, activation_groups, layer_bits
from harness.table.lut import ENTRY_COLUMNS, Entry, LatencyTable

PROFILE = "profile"
IN_CONTEXT = "in-context"


def measured_entries(m: Measurement, layers: Sequence[LayerSpec]) -> list[Entry]:
    """The table entry of every measured layer (execution order)."""
    by_name = {s.name: s for s in layers}
    out = []
    for lm in m.layers:
        s = by_name.get(lm.name)
        if s is None:
            raise ConfigError(
                f"measured layer {lm.name!r} is not a layer of the network being refined "
                f"(known: {list(by_name)[:4]} ...)"
            )
        out.append((s.key(), lm.a_bits, lm.w_bits if s.has_weights else NO_WEIGHTS, lm.o_bits))
    return out


def check_keys(m: Measurement, layers: Sequence[LayerSpec], config: PrecisionConfig) -> None:
    """ConfigError unless the deployed network ran every layer at the bits the table prices ``config`` at."""
    want = layer_bits(activation_groups(layers), config)
    bad = [
        f"{lm.name}: ran a{e[1]}w{e[2]}o{e[3]}, priced a{want[lm.name][0]}w{want[lm.name][1]}o{want[lm.name][2]}"
        for lm, e in zip(m.layers, measured_entries(m, layers), strict=True)
        if tuple(e[1:]) != want[lm.name]
    ]
    if bad:
        raise ConfigError(
            f"the exported network does not run the configuration the table prices "
            f"({len(bad)} layer(s)): {'; '.join(bad[:4])}"
        )


def per_input_counts(m: Measurement) -> list[list[float]]:
    """Per input, per layer: the measured count in the timer's unit (instructions or cycles)."""
    return m.counts_per_input or [[lm.count for lm in m.layers]]


def layer_counts(m: Measurement) -> dict[str, float]:
    """Per layer name: its measured count averaged over the inputs, in the timer's unit."""
    rows = per_input_counts(m)
    return {lm.name: float(statistics.fmean(row[i] for row in rows)) for i, lm in enumerate(m.layers)}


def total_count(m: Measurement) -> float:
    """The network's count, averaged over the measured inputs."""
    return float(statistics.fmean(sum(row) for row in per_input_counts(m)))


def context_rows(m: Measurement, layers: Sequence[LayerSpec], *, round_: int | None = None) -> list[dict]:
    """Table rows (without target columns) of one in-context measurement."""
    entries = measured_entries(m, layers)
    counts = per_input_counts(m)
    by_entry: dict[Entry, list[float]] = {}
    info: dict[Entry, tuple] = {}
    for i, (lm, e) in enumerate(zip(m.layers, entries, strict=True)):
        by_entry.setdefault(e, []).extend(row[i] for row in counts)
        h, w, c = lm.out_shape
        info[e] = (lm.op, float(lm.macs), float(h * w * c))
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows = []
    for e, cs in by_entry.items():
        op, macs, numel = info[e]
        rows.append(
            {
                **dict(zip(ENTRY_COLUMNS, e, strict=True)),
                "count": float(statistics.fmean(cs)),
                "count_min": min(cs),
                "count_max": max(cs),
                "repeats": len(cs),
                "macs": macs,
                "op": op,
                "out_numel": numel,
                "date": date,
                "source": IN_CONTEXT,
                "round": -1 if round_ is None else int(round_),
            }
        )
    return rows


def with_in_context(table: LatencyTable, rows: Sequence[dict]) -> LatencyTable:
    """``table`` (one target) with the entries of ``rows`` replaced by the in-context counts."""
    if not rows:
        return table
    t = table.target()
    df = table.df
    if "source" not in df.columns:
        df["source"] = PROFILE
    df["source"] = df["source"].fillna(PROFILE).replace("", PROFILE)
    new = pd.DataFrame(list(rows))
    for c, v in (
        ("board", t.board),
        ("timer", t.timer),
        ("firmware_hash", t.firmware_hash),
        ("cflags", t.cflags),
    ):
        new[c] = v
    keys = set(map(tuple, new[list(ENTRY_COLUMNS)].itertuples(index=False, name=None)))
    old_keys = df[list(ENTRY_COLUMNS)].itertuples(index=False, name=None)
    keep = [tuple(k) not in keys for k in old_keys]
    return LatencyTable(pd.concat([df[keep], new], ignore_index=True))
