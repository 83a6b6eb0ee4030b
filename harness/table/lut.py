"""The latency lookup table: measured per-layer counts keyed by target, layer shape and bits.

One row per ``(board, timer, firmware_hash, cflags, layer_key, a_bits, w_bits, o_bits)``
(:data:`KEY_COLUMNS`). ``layer_key`` is :meth:`~harness.graph.spec.LayerSpec.key`; ``o_bits`` is the precision
the layer writes its output at (the producer narrows, so the count depends on it). Layers without weights
(add, avgpool) have ``w_bits = 0`` and ``a_bits = o_bits`` (they never change precision; see
:mod:`harness.precision.groups`).

Columns: ``count`` (median over ``repeats`` runs), ``count_min``, ``count_max``, ``repeats``, ``macs``,
``op``, ``out_numel`` (output elements, for the o_bits fallback model), ``date`` (ISO 8601); extra columns
are kept.

A table is saved as Parquet and CSV side by side (same stem), each written atomically;
:meth:`LatencyTable.save` merges with what is already on disk so that no measured row is ever lost. Counts
from different targets (board, timer, firmware build, compiler flags) are never mixed:
:meth:`LatencyTable.for_target` selects one, and a table that holds none of the asked target raises
:class:`~harness.errors.TableError` naming both.

Concurrent writers (two ``tinyhil profile`` runs on one board and table, the jobs of a sweep, the shards of a
Ray profile) are made safe with a **file lock**, not an embedded database: :meth:`LatencyTable.save` reads the
table on disk, adds its own new rows and writes both files while holding ``<stem>.lock``
(:func:`table_lock`, an OS ``flock`` through the ``filelock`` package, released by the kernel if the holder dies),
so every row ends up present exactly once. Why not DuckDB with an upsert on the key: the table stays the two
plain files everything already reads (pandas, notebooks, a CSV diff in a results folder, a copy to another
machine) with no second source of truth to keep in step, writes are rare (one per measured image, seconds apart)
and small, so the lock is never contended for long, and a DuckDB file allows one writing process at a time
anyway, which would need the same kind of lock around it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock
from filelock import Timeout as LockTimeout

from harness.errors import TableError
from harness.precision.groups import activation_groups, layer_bits
from harness.results.io import write_table

#: Seconds a save waits for another process's save of the same table before giving up.
LOCK_TIMEOUT_S = 600.0

TARGET_COLUMNS = ("board", "timer", "firmware_hash", "cflags")
ENTRY_COLUMNS = ("layer_key", "a_bits", "w_bits", "o_bits")
KEY_COLUMNS = TARGET_COLUMNS + ENTRY_COLUMNS
VALUE_COLUMNS = ("count", "count_min", "count_max", "repeats", "macs", "op", "out_numel", "date")
COLUMNS = KEY_COLUMNS + VALUE_COLUMNS
_STR = ("board", "timer", "firmware_hash", "cflags", "layer_key", "op", "date")
_INT = ("a_bits", "w_bits", "o_bits", "repeats")
_FLOAT = ("count", "count_min", "count_max", "macs", "out_numel")
A_BITS = (2, 4, 8)
W_BITS = (0, 2, 4, 8)  # 0: a layer without weights

Entry = tuple[str, int, int, int]  # (layer_key, a_bits, w_bits, o_bits)
EntryKey = tuple[str, str, str, str, str, int, int, int]  # the full row key, in KEY_COLUMNS order

# Estimate sources, reported by LatencyTable.estimate and the refiner's notes
MEASURED = "measured"
O_DELTA_OP = "o-delta(op)"
O_DELTA_ALL = "o-delta(all)"
O_INVARIANT = "o-invariant"

_OUT_SHAPE = re.compile(r"_o(\d+)x(\d+)x(\d+)$")


@dataclass(frozen=True)
class Target:
    """Where and how a count was measured; counts of different targets are never compared."""

    board: str
    timer: str
    firmware_hash: str
    cflags: str

    def __str__(self) -> str:
        return (
            f"board {self.board!r}, timer {self.timer!r}, firmware {self.firmware_hash!r}, "
            f"cflags {self.cflags!r}"
        )


def out_numel_from_key(layer_key: str) -> float:
    """Output elements parsed from a :meth:`LayerSpec.key` string (NaN without an ``_oHxWxC`` suffix)."""
    m = _OUT_SHAPE.search(layer_key)
    return float(np.prod([int(x) for x in m.groups()])) if m else float("nan")


def _fmt(a: int, w: int, o: int) -> str:
    return f"a{a}w{w}o{o}"


def _normalize(df: pd.DataFrame) -> pd.DataFrame:
    """Fixed dtypes so that Parquet and CSV round trips compare equal."""
    df = df.copy()
    for c in _STR:
        df[c] = df[c].fillna("").astype(str)
    for c in _INT:
        df[c] = df[c].astype("int64")
    for c in _FLOAT:
        df[c] = df[c].astype("float64")
    cols = list(COLUMNS) + [c for c in df.columns if c not in COLUMNS]
    return df[cols].reset_index(drop=True)


def _empty_frame() -> pd.DataFrame:
    return _normalize(pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS}))


def _require_columns(df: pd.DataFrame) -> None:
    missing = [c for c in KEY_COLUMNS + ("count",) if c not in df.columns]
    if missing:
        raise TableError(
            f"latency rows lack column(s) {missing}; every row needs {list(KEY_COLUMNS)} and 'count'"
        )


def _validate_rows(df: pd.DataFrame) -> None:
    for c in KEY_COLUMNS + ("count",):
        if df[c].isna().any():
            raise TableError(
                f"latency rows have empty {c!r} values (rows {list(df.index[df[c].isna()])[:5]})"
            )
    bad = df[~df["a_bits"].isin(A_BITS) | ~df["o_bits"].isin(A_BITS) | ~df["w_bits"].isin(W_BITS)]
    if len(bad):
        r = bad.iloc[0]
        raise TableError(
            f"latency row for {r['layer_key']!r} has bits a={r['a_bits']} w={r['w_bits']} "
            f"o={r['o_bits']}; a/o must be in {A_BITS}, w in {W_BITS} (0 = no weights)"
        )
    if (df["count"] < 0).any():
        raise TableError("latency rows have negative counts")
    lo_bad = df["count_min"] > df["count"]
    hi_bad = df["count_max"] < df["count"]
    if (lo_bad | hi_bad).any():
        r = df[lo_bad | hi_bad].iloc[0]
        raise TableError(
            f"latency row for {r['layer_key']!r} {_fmt(r['a_bits'], r['w_bits'], r['o_bits'])}: "
            f"count {r['count']} outside [count_min {r['count_min']}, count_max {r['count_max']}]"
        )


def _paths(path: str | Path) -> tuple[Path, Path]:
    """Parquet and CSV paths of one table (any of ``x``, ``x.parquet``, ``x.csv`` names the pair)."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".parquet", ".csv") else p
    return stem.with_name(stem.name + ".parquet"), stem.with_name(stem.name + ".csv")


def _read_file(path: Path) -> pd.DataFrame:
    """The rows of one table file; TableError if it cannot be read or is cut off."""
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        text = path.read_bytes()
        if text and not text.endswith(b"\n"):  # write_table ends every CSV with a newline: this one was cut
            raise TableError(f"latency table {path} is truncated (its last line is cut off)")
        return pd.read_csv(
            path, dtype={c: str for c in _STR}, keep_default_na=False, na_values={c: [""] for c in _FLOAT}
        )
    except TableError:
        raise
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad table file
        raise TableError(f"cannot read latency table {path} (truncated or corrupt?): {str(e).rstrip('. ')}") from None


def _recovery_hint(broken: Path, other: Path) -> str:
    """How to recover a broken table file from the intact copy beside it, if there is one."""
    if not other.exists():
        return ""
    try:
        n = len(LatencyTable(_read_file(other)))
    except TableError:
        return f"; the copy beside it, {other}, is unreadable too: profile the model again"
    return (
        f"; the {other.suffix[1:].upper()} beside it, {other}, is intact ({n} rows): move the broken file away "
        f"(`mv '{broken}' '{broken}.broken'`) to load that copy; the next save rewrites both"
    )


@contextlib.contextmanager
def table_lock(path: str | Path, timeout: float = LOCK_TIMEOUT_S):
    """Hold the table's exclusive lock (``<stem>.lock`` beside it; an OS file lock, so a crashed holder never
    leaves it locked). TableError after ``timeout`` seconds of waiting."""
    pq, _ = _paths(path)
    pq.parent.mkdir(parents=True, exist_ok=True)
    lock_path = pq.with_suffix(".lock")
    lock = FileLock(str(lock_path), timeout=timeout)
    try:
        lock.acquire()
    except LockTimeout:
        raise TableError(
            f"latency table {pq} stayed locked by another process for {timeout:g} s ({lock_path}); "
            "wait for the other profile to finish, or check that no tinyhil process hangs"
        ) from None
    try:
        yield
    finally:
        lock.release()


class LatencyTable:
    """Measured per-layer counts; see the module docstring for the row layout."""

    def __init__(self, df: pd.DataFrame | None = None) -> None:
        if df is None:
            df = _empty_frame()
        else:
            df = self._with_defaults(df)
            _require_columns(df)
            df = _normalize(df)
            _validate_rows(df)
            dup = df.duplicated(list(KEY_COLUMNS))
            if dup.any():
                raise TableError(f"latency table has duplicate keys: {self._row_key(df[dup].iloc[0])}")
        self._df = df
        self._index: dict[Entry, float] | None = None

    # construction, persistence ----------------------------------------------------------------------------

    @staticmethod
    def _with_defaults(df: pd.DataFrame, defaults: Mapping[str, Any] | None = None) -> pd.DataFrame:
        df = df.copy()
        for c, v in (defaults or {}).items():
            if c not in df.columns:
                df[c] = v
            else:
                df[c] = df[c].where(df[c].notna(), v)
        if "count" in df.columns:
            for c in ("count_min", "count_max"):
                df[c] = df[c].where(df[c].notna(), df["count"]) if c in df.columns else df["count"]
        defaults_ = {
            "repeats": 1,
            "macs": np.nan,
            "op": "",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        for c, v in defaults_.items():
            if c not in df.columns:
                df[c] = v
        if "out_numel" not in df.columns:
            df["out_numel"] = np.nan
        if "layer_key" in df.columns:
            df["out_numel"] = df["out_numel"].where(
                df["out_numel"].notna(), df["layer_key"].map(lambda k: out_numel_from_key(str(k)))
            )
        return df

    @staticmethod
    def _row_key(r: Mapping[str, Any]) -> EntryKey:
        return (
            str(r["board"]),
            str(r["timer"]),
            str(r["firmware_hash"]),
            str(r["cflags"]),
            str(r["layer_key"]),
            int(r["a_bits"]),
            int(r["w_bits"]),
            int(r["o_bits"]),
        )

    @classmethod
    def load(cls, path: str | Path, *, missing_ok: bool = False) -> LatencyTable:
        """Read a table (Parquet preferred, else the CSV beside it); ``missing_ok``: no file, empty table.

        A cut-off or corrupt file is a TableError; when the other copy beside it is intact, the message says so
        and how to recover from it (never silently: the two copies may differ).
        """
        pq, csv = _paths(path)
        if pq.exists():
            return cls._load_one(pq, csv)
        if csv.exists():
            return cls._load_one(csv, pq)
        if missing_ok:
            return cls()
        raise TableError(f"no latency table at {pq} or {csv}; profile the model on the board first")

    @classmethod
    def _load_one(cls, path: Path, other: Path) -> LatencyTable:
        try:
            return cls(_read_file(path))
        except TableError as e:
            raise TableError(f"{e}{_recovery_hint(path, other)}") from None

    def save(self, path: str | Path, *, merge: bool = True) -> tuple[Path, Path]:
        """Write ``<stem>.parquet`` and ``<stem>.csv`` atomically, under the table's lock (:func:`table_lock`).

        With ``merge`` (default), the table on disk is read *under the same lock* and this table's rows whose key
        it lacks are added to it (a row already on disk is never overwritten, as :meth:`add` never overwrites);
        the result becomes this table. So any number of processes saving to one file at once lose no row and
        duplicate none.
        """

        pq, csv = _paths(path)
        with table_lock(path):
            table = self
            if merge and (pq.exists() or csv.exists()):
                table = LatencyTable.load(path)
                table.add(self._df)
                self._df, self._index = table._df, None
            write_table(table._df, pq)
            write_table(table._df, csv)
        return pq, csv

    # editing ------------------------------------------------------------------------------------------------

    def add(
        self, rows: pd.DataFrame | Iterable[Mapping[str, Any]], *, on_duplicate: str = "skip", **defaults: Any
    ) -> list[EntryKey]:
        """Add measured rows; returns the keys that were new.

        A row whose key is already present is not added (``on_duplicate="skip"``: profiling resumes without
        re-measuring and never overwrites a measurement) or raises (``"error"``). ``defaults`` fill missing
        columns, e.g. ``add(rows, board=..., timer=..., firmware_hash=..., cflags=...)``.
        """
        if on_duplicate not in ("skip", "error"):
            raise TableError(f"on_duplicate must be 'skip' or 'error', got {on_duplicate!r}")
        df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        if df.empty:
            return []
        df = self._with_defaults(df, defaults)
        _require_columns(df)
        df = _normalize(df)
        _validate_rows(df)
        in_batch = df.duplicated(list(KEY_COLUMNS))
        if in_batch.any():
            raise TableError(
                f"rows to add repeat the key {self._row_key(df[in_batch].iloc[0])}; "
                "give one median row per key"
            )
        present = set(map(self._row_key, self._df[list(KEY_COLUMNS)].to_dict("records")))
        keys = [self._row_key(r) for r in df[list(KEY_COLUMNS)].to_dict("records")]
        is_new = [k not in present for k in keys]
        if on_duplicate == "error" and not all(is_new):
            raise TableError(f"latency table already has the key {keys[is_new.index(False)]}")
        new = df[is_new]
        if len(new):
            self._df = _normalize(pd.concat([self._df, new], ignore_index=True)) if len(self._df) else new
            self._index = None
        return [k for k, n in zip(keys, is_new, strict=True) if n]

    # views --------------------------------------------------------------------------------------------------

    @property
    def df(self) -> pd.DataFrame:
        """A copy of the rows."""
        return self._df.copy()

    def __len__(self) -> int:
        return len(self._df)

    def targets(self) -> list[Target]:
        """Distinct targets in the table, sorted."""
        t = self._df[list(TARGET_COLUMNS)].drop_duplicates().sort_values(list(TARGET_COLUMNS))
        return [Target(*map(str, r)) for r in t.itertuples(index=False)]

    def for_target(
        self, board: str, timer: str, firmware_hash: str | None = None, cflags: str | None = None
    ) -> LatencyTable:
        """The rows of one board and timer (and firmware build / flags, when given).

        Raises TableError naming both sides when the table holds rows for other targets only, so a table
        measured on one board or timer is never used for another.
        """
        want = {"board": board, "timer": timer, "firmware_hash": firmware_hash, "cflags": cflags}
        mask = np.ones(len(self._df), dtype=bool)
        for c, v in want.items():
            if v is not None:
                mask &= (self._df[c] == str(v)).to_numpy()
        asked = ", ".join(f"{c} {v!r}" for c, v in want.items() if v is not None)
        if not mask.any():
            have = "; ".join(map(str, self.targets())) or "no rows at all"
            raise TableError(
                f"latency table was measured on {have}; it has nothing for {asked}. Counts from "
                "another board or timer do not transfer: profile this target first"
            )
        view = LatencyTable.__new__(LatencyTable)
        view._df, view._index = self._df[mask].reset_index(drop=True), None
        return view

    def target(self) -> Target:
        """The one target of this table; TableError if it holds none or several (select with for_target)."""
        ts = self.targets()
        if len(ts) != 1:
            if not ts:
                raise TableError("latency table is empty; profile the model on the board first")
            raise TableError(
                f"latency table holds {len(ts)} targets ({'; '.join(map(str, ts))}); select one with "
                "for_target(board, timer, firmware_hash, cflags)"
            )
        return ts[0]

    def require_target(self, board: str, timer: str) -> None:
        """Raise TableError unless this table's one target is on ``board`` with ``timer``."""
        t = self.target()
        if (t.board, t.timer) != (str(board), str(timer)):
            raise TableError(
                f"latency table was measured on board {t.board!r} with timer {t.timer!r}, but it is "
                f"being used for board {board!r} with timer {timer!r}; profile that target first"
            )

    def _entries(self) -> dict[Entry, float]:
        if self._index is None:
            self.target()  # refuse mixed targets
            d = self._df
            self._index = {
                (k, int(a), int(w), int(o)): float(c)
                for k, a, w, o, c in zip(
                    d["layer_key"], d["a_bits"], d["w_bits"], d["o_bits"], d["count"], strict=True
                )
            }
        return self._index

    def pairs(self, layer_key: str) -> list[tuple[int, int]]:
        """The (a_bits, w_bits) pairs measured for a layer shape (at any o_bits), sorted."""
        return sorted({(a, w) for (k, a, w, _o) in self._entries() if k == layer_key})

    def has(self, layer_key: str, a: int, w: int, o: int = 8) -> bool:
        return (layer_key, int(a), int(w), int(o)) in self._entries()

    # queries ------------------------------------------------------------------------------------------------

    def lookup(self, layer_key: str, a: int, w: int, o: int = 8) -> float:
        """The measured count; TableError saying what is missing and how to get it."""
        try:
            return self._entries()[(layer_key, int(a), int(w), int(o))]
        except KeyError:
            pass
        have = sorted((aa, ww, oo) for (k, aa, ww, oo) in self._entries() if k == layer_key)
        t = self.target()
        got = (
            f"it has this shape at {', '.join(_fmt(*x) for x in have)}"
            if have
            else "it has no row at all for this layer shape"
        )
        raise TableError(
            f"latency table ({t}) has no entry for layer {layer_key!r} at {_fmt(a, w, o)} "
            f"(a_bits={a}, w_bits={w}, o_bits={o}); {got}. Profile it: measure that layer at these "
            "bits on the board (LatencyTable.missing() lists every entry a profiling run still needs)"
        )

    def estimate(self, layer_key: str, a: int, w: int, o: int = 8) -> tuple[float, str]:
        """A count and where it comes from: the measured row, else a model of the o_bits dependence.

        When ``(layer_key, a, w)`` was measured at another output precision ``o_ref`` (8 preferred, else the
        nearest, ties to the higher) the count is ``count(o_ref) + out_numel * d``, where ``d`` is the median
        per-output-element change from ``o_ref`` to ``o`` over every ``(key, a, w)`` measured at both, first
        among layers of the same op (:data:`O_DELTA_OP`), else over all ops (:data:`O_DELTA_ALL`). With no
        such evidence the count is taken as independent of o_bits (:data:`O_INVARIANT`, the Free Bits paper's
        assumption). A shape never measured at ``(a, w)`` raises TableError as :meth:`lookup` does.
        """
        a, w, o = int(a), int(w), int(o)
        e = self._entries()
        if (layer_key, a, w, o) in e:
            return e[(layer_key, a, w, o)], MEASURED
        os_ = [oo for (k, aa, ww, oo) in e if k == layer_key and aa == a and ww == w]
        if not os_:
            self.lookup(layer_key, a, w, o)  # raises with the full message
        o_ref = 8 if 8 in os_ else min(os_, key=lambda x: (abs(x - o), -x))
        base = e[(layer_key, a, w, o_ref)]
        rows = self._df[self._df["layer_key"] == layer_key]
        numel = float(rows["out_numel"].iloc[0]) if len(rows) else float("nan")
        op = str(rows["op"].iloc[0]) if len(rows) else ""
        if not np.isnan(numel):
            for source, same_op in ((O_DELTA_OP, True), (O_DELTA_ALL, False)):
                d = self._o_delta(o_ref, o, op if same_op else None)
                if d is not None:
                    return max(0.0, base + numel * d), source
        return base, O_INVARIANT

    def _o_delta(self, o_ref: int, o: int, op: str | None) -> float | None:
        if op == "":
            return None  # unknown op: "same op" means nothing
        d = self._df if op is None else self._df[self._df["op"] == op]
        d = d[d["out_numel"] > 0]
        idx = ["layer_key", "a_bits", "w_bits"]
        ref = d[d["o_bits"] == o_ref].set_index(idx)
        new = d[d["o_bits"] == o].set_index(idx)
        both = ref.index.intersection(new.index)
        if not len(both):
            return None
        per_elem = (new.loc[both, "count"] - ref.loc[both, "count"]) / ref.loc[both, "out_numel"]
        return float(np.median(per_elem.to_numpy()))

    def missing(
        self,
        entries: Iterable[Sequence],
        *,
        board: str | None = None,
        timer: str | None = None,
        firmware_hash: str | None = None,
        cflags: str | None = None,
    ) -> list[Entry]:
        """The entries (``(layer_key, a, w)`` or ``(layer_key, a, w, o)``, o defaulting to 8) not yet
        measured.

        For a resumable profiling run: pass the target fields to look only at that target's rows (a target
        with no rows yet has everything missing). Order is kept, repeats dropped.
        """
        d = self._df
        for c, v in (
            ("board", board),
            ("timer", timer),
            ("firmware_hash", firmware_hash),
            ("cflags", cflags),
        ):
            if v is not None:
                d = d[d[c] == str(v)]
        if len(d[list(TARGET_COLUMNS)].drop_duplicates()) > 1:
            raise TableError(
                "latency table holds several targets; pass board, timer, firmware_hash and cflags "
                "to missing() to say which one is being profiled"
            )
        present = set(
            zip(
                d["layer_key"],
                d["a_bits"].astype(int),
                d["w_bits"].astype(int),
                d["o_bits"].astype(int),
                strict=True,
            )
        )
        out: list[Entry] = []
        seen: set[Entry] = set()
        for item in entries:
            if len(item) not in (3, 4):
                raise TableError(
                    f"missing() takes (layer_key, a, w) or (layer_key, a, w, o) items, got {item!r}"
                )
            ent: Entry = (str(item[0]), int(item[1]), int(item[2]), int(item[3]) if len(item) == 4 else 8)
            if ent not in present and ent not in seen:
                out.append(ent)
            seen.add(ent)
        return out

    # end-to-end prediction ----------------------------------------------------------------------------------

    def _per_layer(
        self, layers: Sequence, config, out_bits_rule: str | int, estimate: bool, output_bits: int
    ) -> list[tuple[Any, tuple[int, int, int], float, str]]:
        bits = layer_bits(activation_groups(layers), config, out_bits_rule, output_bits=output_bits)
        out = []
        for s in layers:
            b = bits[s.name]
            c, src = self.estimate(s.key(), *b) if estimate else (self.lookup(s.key(), *b), MEASURED)
            out.append((s, b, c, src))
        return out

    def explain(
        self,
        layers: Sequence,
        config,
        out_bits_rule: str | int = "consumer",
        *,
        estimate: bool = False,
        output_bits: int = 8,
    ) -> pd.DataFrame:
        """Per-layer prediction: layer, op, layer_key, a_bits, w_bits, o_bits, count, source."""
        recs = [
            (s.name, s.op, s.key(), *b, c, src)
            for s, b, c, src in self._per_layer(layers, config, out_bits_rule, estimate, output_bits)
        ]
        cols = ["layer", "op", "layer_key", "a_bits", "w_bits", "o_bits", "count", "source"]
        return pd.DataFrame(recs, columns=cols)

    def predict(
        self,
        layers: Sequence,
        config,
        out_bits_rule: str | int = "consumer",
        *,
        estimate: bool = False,
        output_bits: int = 8,
    ) -> tuple[float, dict[str, float]]:
        """End-to-end count as the sum of per-layer counts: ``(total, {layer name: count})``.

        Every layer (weightless ones included) is keyed as :mod:`harness.precision.groups` describes: o_bits
        is the precision its consumers read (``out_bits_rule="consumer"``) or a fixed value. Missing entries
        raise TableError unless ``estimate`` allows the o_bits fallback of :meth:`estimate`.
        """
        per = {
            s.name: c for s, _, c, _ in self._per_layer(layers, config, out_bits_rule, estimate, output_bits)
        }
        return float(sum(per.values())), per


def profile_entries(
    layers: Sequence,
    a_bits: Iterable[int] = A_BITS,
    w_bits: Iterable[int] = (2, 4, 8),
    o_bits: Iterable[int] = A_BITS,
) -> list[tuple[Entry, Any]]:
    """Every ``(entry, layer)`` a full profile of these layers needs, one per unique entry, in layer order.

    Weighted layers get every (a, w, o) combination; weightless ones every ``(g, 0, g)``. Feed the entries to
    :meth:`LatencyTable.missing` to resume a profiling run.
    """
    out: list[tuple[Entry, Any]] = []
    seen: set[Entry] = set()
    a_bits, w_bits, o_bits = tuple(a_bits), tuple(w_bits), tuple(o_bits)
    for s in layers:
        if s.has_weights:
            combos = [(a, w, o) for a in a_bits for w in w_bits for o in o_bits]
        else:
            combos = [(g, 0, g) for g in a_bits]
        for a, w, o in combos:
            ent = (s.key(), a, w, o)
            if ent not in seen:
                seen.add(ent)
                out.append((ent, s))
    return out
