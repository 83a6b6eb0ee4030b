"""The timing plugin's records and their merge with the firmware's per-layer serial report.

The plugin appends one line per marker store: ``<tag> <cycles> <instructions> [<events>...]`` (tag 0: an
inference starts, 1: a timed region ends, 2 + i: a timed region of layer i begins), each counting everything
executed before the store. One layer may have several regions (patch-based stages: every patch's kernel call and
copies); a layer's count is the sum of its regions in the last inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.errors import TimingError

TAG_INFER, TAG_END, TAG_LAYER0 = 0, 1, 2
HEADER_PREFIX = "# thtiming-"


@dataclass(frozen=True)
class Record:
    tag: int
    cycles: float
    instructions: int
    events: tuple[int, ...] = ()


@dataclass
class LayerCount:
    """Cycles and instructions of one layer in one inference, summed over its timed regions."""

    index: int
    cycles: float
    instructions: int
    regions: int
    events: np.ndarray | None = None


@dataclass
class RecordFile:
    """The records file of one QEMU session, read incrementally (``mark`` then ``read_new``)."""

    path: Path
    offset: int = 0
    _partial: str = field(default="", repr=False)

    def header(self) -> str | None:
        """The plugin's header line (it writes it when it loads), or None."""
        try:
            with self.path.open("r") as f:
                first = f.readline()
        except FileNotFoundError:
            return None
        return first.strip() if first.startswith(HEADER_PREFIX) else None

    def mark(self) -> None:
        """Forget everything written so far (call right before the command whose records are wanted)."""
        self.offset = self.path.stat().st_size if self.path.exists() else 0
        self._partial = ""

    def read_new(self) -> list[Record]:
        if not self.path.exists():
            return []
        with self.path.open("r") as f:
            f.seek(self.offset)
            text = f.read()
            self.offset = f.tell()
        text = self._partial + text
        lines = text.split("\n")
        self._partial = lines.pop()  # an unfinished last line waits for the next read
        return [parse_line(ln) for ln in lines if ln and not ln.startswith("#")]


def parse_line(line: str) -> Record:
    parts = line.split()
    try:
        return Record(int(parts[0]), float(parts[1]), int(parts[2]), tuple(int(p) for p in parts[3:]))
    except (IndexError, ValueError) as exc:
        raise TimingError(f"garbled timing record {line!r}") from exc


def last_inference(records: Sequence[Record]) -> list[Record]:
    """The records of the last inference (after its TAG_INFER marker)."""
    starts = [i for i, r in enumerate(records) if r.tag == TAG_INFER]
    if not starts:
        if not records:
            raise TimingError(
                "no cycle markers came back from the firmware for this inference: the image was not built with "
                "-DTH_CYCLE_MARKERS, or the timing plugin is not running (see QEMU's stderr)")
        raise TimingError("the cycle markers have no inference-start marker: the firmware's executor and the "
                          "timing plugin disagree (rebuild the image)")
    return list(records[starts[-1] + 1:])


def layer_counts(records: Sequence[Record], n_layers: int, layer_names: Sequence[str] = ()) -> list[LayerCount]:
    """Per-layer cycles and instructions of the last inference in ``records``; TimingError when a layer has no
    marker, a marker names a layer the model does not have, or begin and end markers do not pair up."""
    recs = last_inference(records)
    counts = [LayerCount(i, 0.0, 0, 0) for i in range(n_layers)]
    open_: Record | None = None
    for r in recs:
        if r.tag >= TAG_LAYER0:
            if open_ is not None:
                raise TimingError(f"cycle marker of layer {open_.tag - TAG_LAYER0} has no end marker before the next "
                                  "region begins (the firmware's markers are broken)")
            if r.tag - TAG_LAYER0 >= n_layers:
                raise TimingError(f"the firmware marks layer {r.tag - TAG_LAYER0} but the model has {n_layers} layers "
                                  "(stale image?)")
            open_ = r
        elif r.tag == TAG_END:
            if open_ is None:
                raise TimingError("a cycle end marker without a begin marker (the firmware's markers are broken)")
            c = counts[open_.tag - TAG_LAYER0]
            c.cycles += r.cycles - open_.cycles
            c.instructions += r.instructions - open_.instructions
            c.regions += 1
            if r.events and open_.events:
                ev = np.asarray(r.events, dtype=np.int64) - np.asarray(open_.events, dtype=np.int64)
                c.events = ev if c.events is None else c.events + ev
            open_ = None
    if open_ is not None:
        raise TimingError(f"the timed region of layer {open_.tag - TAG_LAYER0} never ended (no end marker)")
    missing = [c.index for c in counts if c.regions == 0]
    if missing:
        names = [layer_names[i] if i < len(layer_names) else str(i) for i in missing[:5]]
        raise TimingError(f"no cycle marker for layer(s) {', '.join(names)}"
                          f"{' ...' if len(missing) > 5 else ''} of {n_layers}: the records disagree with the model's "
                          "layers (stale image, or a firmware without markers in that code path)")
    return counts


def check_against_ticks(counts: Sequence[LayerCount], ticks: Sequence[int], count_per_tick: float,
                        overhead_per_region: float = 200.0) -> None:
    """The plugin's instruction count of each layer must match the firmware's SysTick count (instructions under
    ``-icount shift=0``) up to the timer reads and one tick per region; TimingError otherwise."""
    if len(ticks) != len(counts):
        raise TimingError(f"the firmware reported {len(ticks)} layers, the cycle records have {len(counts)}")
    for c, t in zip(counts, ticks):
        serial = float(t) * count_per_tick
        slack = c.regions * (2.0 * count_per_tick + overhead_per_region)
        if abs(serial - c.instructions) > slack:
            raise TimingError(
                f"layer {c.index}: the timing plugin counted {c.instructions} instructions but the firmware's timer "
                f"{serial:.0f} (more than {slack:.0f} apart): the records do not belong to this inference")
