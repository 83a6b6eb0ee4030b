"""Counts and time: cycle counts (a real board's DWT counter, at the core clock) also in milliseconds.

QEMU's counts are instructions, which have no duration; only ``unit: cycles`` counts are converted.
``add_milliseconds`` is applied to every run's summary by harness.cli.execute.
"""

from __future__ import annotations

from numbers import Real
from typing import Any


def cycles_to_ms(cycles: float, clock_hz: int) -> float:
    return float(cycles) * 1e3 / float(clock_hz)


def _ms_key(key: str) -> str | None:
    """``total_count`` -> ``total_ms``; None for keys that are not counts (``count_per_mac``, ``n_inputs``)."""
    parts = key.split("_")
    if "count" not in parts or "per" in parts:
        return None
    return "_".join("ms" if p == "count" else p for p in parts)


def add_milliseconds(summary: dict[str, Any], unit: str, clock_hz: int) -> dict[str, Any]:
    """For cycle counts: ``clock_hz``, and beside every count a millisecond value (also inside lists of rows)."""
    if unit != "cycles" or not clock_hz:
        return summary
    out = dict(summary)
    out.setdefault("unit", unit)
    out["clock_hz"] = int(clock_hz)
    for key, value in summary.items():
        ms = _ms_key(key)
        if ms and isinstance(value, Real) and not isinstance(value, bool) and ms not in summary:
            out[ms] = round(cycles_to_ms(value, clock_hz), 6)
        elif isinstance(value, list) and all(isinstance(r, dict) for r in value):
            out[key] = [_rows_ms(r, clock_hz) for r in value]
    return out


def _rows_ms(row: dict[str, Any], clock_hz: int) -> dict[str, Any]:
    out = dict(row)
    for key, value in row.items():
        ms = _ms_key(key)
        if ms and isinstance(value, Real) and not isinstance(value, bool) and ms not in row:
            out[ms] = round(cycles_to_ms(value, clock_hz), 6)
    return out
