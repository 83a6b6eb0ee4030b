"""The closed measure-and-refine loop (Free Bits with the board in the loop).

Round ``r``: predict the configuration's end-to-end count from the profiled table (per layer), deploy it and
measure it on the board, record the counts measured in context (:mod:`harness.loop.context`), then let the Free
Bits refiner (:func:`harness.search.freebits.refine`) raise bits wherever the table says it is faster, within the
board's memory (``fits``). The next round measures the refined configuration.

Like with like: the refiner prices every configuration, the current one and its candidates, from the same rows,
the ones profiled in isolation. Counts measured in context never replace a profiled row in a decision (a
current configuration priced from its in-context rows against candidates from isolated rows would be biased by
their difference and could invent or hide moves). They are kept beside (the loop's ``context`` table) and give a
second, in-context prediction of every later round: each layer's profiled count plus its offset (measured minus
profiled) from the last round that measured it (:func:`~harness.loop.context.layer_offsets`).

Stops when (whichever comes first): the measured count did not improve on the best round by more than
``min_gain`` (relative; the best configuration is kept, not the last one), the refiner found no faster raise
that fits (converged), or ``max_rounds`` rounds were measured.

How a configuration is deployed and measured is the caller's (``measure(config, round) -> Measurement``),
so the loop runs the same on QEMU and on a real board.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from harness.errors import ConfigError, DoesNotFitError, InternalError
from harness.graph.spec import LayerSpec
from harness.loop.context import (
    check_keys,
    context_rows,
    layer_counts,
    total_count,
    with_in_context,
)
from harness.measure.session import Measurement
from harness.precision.config import PrecisionConfig
from harness.search.freebits import refine
from harness.table.lut import LatencyTable

STOP_NO_GAIN = "measured count stopped improving"
STOP_CONVERGED = "refiner found no faster raise (converged)"
STOP_MAX_ROUNDS = "max_rounds reached"

FitsFn = Callable[[PrecisionConfig], bool]


@dataclass(frozen=True)
class LoopSettings:
    """``max_rounds``: rounds measured at most; ``min_gain``: relative improvement a round must bring to go on;
    ``pricing``/``out_bits_rule``/``tie_break``: passed to the refiner."""

    max_rounds: int = 4
    min_gain: float = 0.0
    pricing: str = "full"
    out_bits_rule: str | int = "consumer"
    tie_break: str = "more_bits"

    def __post_init__(self) -> None:
        if self.max_rounds < 1:
            raise ConfigError(f"max_rounds must be at least 1, got {self.max_rounds}")
        if not 0.0 <= self.min_gain < 1.0:
            raise ConfigError(f"min_gain must be in [0, 1), got {self.min_gain}")


def _pct(predicted: float | None, measured: float) -> float:
    if predicted is None or not measured:
        return float("nan")
    return 100.0 * (predicted - measured) / measured


@dataclass
class Round:
    """One measured configuration."""

    index: int
    config: PrecisionConfig
    predicted: float  # from the profiled table, before this round's measurement
    measured: float
    bit_exact: bool
    top1: float | None = None
    n_moves: int = 0  # raises the refiner made after this round
    predicted_next: float | None = None  # the refiner's prediction for the next configuration
    predicted_in_context: float | None = None  # profiled table + the offsets measured in context (round >= 1)
    measurement: Measurement | None = field(default=None, repr=False)

    @property
    def error_pct(self) -> float:
        """Prediction error of the profiled table, in % of the measured count (positive: predicted too high)."""
        return _pct(self.predicted, self.measured)

    @property
    def error_in_context_pct(self) -> float:
        """Prediction error of the in-context model (NaN at round 0, where nothing was measured yet)."""
        return _pct(self.predicted_in_context, self.measured)

    def row(self) -> dict:
        return {
            "round": self.index,
            "config_hash": self.config.digest(),
            "predicted_count": self.predicted,
            "measured_count": self.measured,
            "prediction_error_pct": self.error_pct,
            "predicted_in_context": self.predicted_in_context,
            "prediction_error_in_context_pct": self.error_in_context_pct,
            "top1": self.top1,
            "bit_exact": self.bit_exact,
            "n_moves": self.n_moves,
            "method": self.config.meta.get("method", ""),
        }


@dataclass
class LoopResult:
    rounds: list[Round]
    best: Round
    table: LatencyTable  # the profiled table every decision and prediction used
    context: (
        LatencyTable  # the same, with the entries measured in context replaced (a record; see the docstring)
    )
    predictions: pd.DataFrame  # per round and layer: predicted (profiled, in context) and measured counts
    stop_reason: str
    notes: list[str] = field(default_factory=list)  # the refiner's notes (memory refusals, estimates)

    @property
    def start(self) -> Round:
        return self.rounds[0]


def check_start_fits(start: PrecisionConfig, fits: FitsFn | None) -> None:
    """DoesNotFitError (before anything is built) when the starting configuration exceeds the budget."""
    if fits is not None and not fits(start):
        why = getattr(fits, "why", lambda c: "")(start)
        raise DoesNotFitError(
            f"the starting configuration ({start.meta.get('method', 'start')}) does not fit the board"
            + (f": {why}" if why else "")
            + "; start from lower precisions or a board with more memory"
        )


def closed_loop(
    layers: Sequence[LayerSpec],
    start: PrecisionConfig,
    table: LatencyTable,
    measure: Callable[[PrecisionConfig, int], Measurement],
    *,
    settings: LoopSettings | None = None,
    fits: FitsFn | None = None,
    evaluate: Callable[[PrecisionConfig], float] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> LoopResult:
    """Run the loop from ``start`` over the profiled ``table`` (one target; see the module docstring).

    ``fits(config)``: the board's memory budget (e.g. :func:`harness.search.memory_fit.board_fit`); the start
    must fit (DoesNotFitError otherwise) and no raise that breaks it is made."""
    settings = settings or LoopSettings()
    t = table.target()
    check_start_fits(start, fits)
    rounds: list[Round] = []
    best: Round | None = None
    config = start
    stop = STOP_MAX_ROUNDS
    context = table
    offsets: dict[str, float] = {}
    frames: list[pd.DataFrame] = []
    notes: list[str] = []
    for r in range(settings.max_rounds):
        per = table.explain(layers, config, settings.out_bits_rule, estimate=True)
        predicted = float(per["count"].sum())
        per["offset"] = per["layer"].map(offsets).fillna(0.0) if offsets else float("nan")
        per["predicted_in_context"] = per["count"] + per["offset"]
        m = measure(config, r)
        table.require_target(m.board, m.timer_id)  # counts of another board, timer or model never price this one
        check_keys(m, layers, config)
        measured = total_count(m)
        per["measured"] = per["layer"].map(layer_counts(m))
        offsets = dict(zip(per["layer"], per["measured"] - per["count"], strict=True))
        context = with_in_context(context, context_rows(m, layers, round_=r))
        pic = float(per["predicted_in_context"].sum()) if r > 0 else None
        rnd = Round(r, config, predicted, measured, m.bit_exact, measurement=m, predicted_in_context=pic)
        frames.append(_layer_frame(r, config, per))
        if evaluate is not None:
            rnd.top1 = evaluate(config)
        rounds.append(rnd)
        log(f"round {r}: predicted {predicted:,.0f}, measured {measured:,.0f} ({rnd.error_pct:+.2f} %)")
        improved = best is None or measured < best.measured * (1.0 - settings.min_gain)
        if not improved:
            stop = STOP_NO_GAIN
            break
        best = rnd
        if r == settings.max_rounds - 1:
            break
        res = refine(
            layers,
            config,
            table,
            out_bits_rule=settings.out_bits_rule,
            pricing=settings.pricing,
            tie_break=settings.tie_break,
            fits=fits,
            board=t.board,
            timer=t.timer,
        )
        notes.extend(n for n in res.notes if n not in notes)
        rnd.n_moves, rnd.predicted_next = len(res.moves), res.predicted_after
        if not res.moves:
            stop = STOP_CONVERGED
            break
        log(f"round {r}: refiner raised {len(res.moves)} layer(s), predicted {res.predicted_after:,.0f}")
        config = res.config
    if best is None:
        raise InternalError("the closed loop measured no round")
    return LoopResult(rounds, best, table, context, pd.concat(frames, ignore_index=True), stop, notes)


def _layer_frame(r: int, config: PrecisionConfig, per: pd.DataFrame) -> pd.DataFrame:
    out = per.rename(columns={"count": "predicted", "source": "table_source"}).copy()
    out.insert(0, "round", r)
    out.insert(1, "config_hash", config.digest())
    out["error_pct"] = (
        100.0 * (out["predicted"] - out["measured"]) / out["measured"].where(out["measured"] != 0)
    )
    return out
