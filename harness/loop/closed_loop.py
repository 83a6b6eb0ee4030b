"""The closed measure-and-refine loop (Free Bits with the board in the loop).

Round ``r``: predict the configuration's end-to-end count from the table, deploy it and measure it on the board,
replace the table's rows of every entry the network ran with the counts measured in context
(:mod:`harness.loop.context`), then let the Free Bits refiner (:func:`harness.search.freebits.refine`) raise bits
wherever the updated table says it is faster. The next round measures the refined configuration.

Stops when (whichever comes first): the measured count did not improve on the best round by more than
``min_gain`` (relative; the best configuration is kept, not the last one), the refiner found no faster raise
(converged: the table's optimum under raise-only moves is deployed), or ``max_rounds`` rounds were measured.

How a configuration is deployed and measured is the caller's (``measure(config, round) -> Measurement``),
so the loop runs the same on QEMU and on a real board.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from harness.errors import ConfigError, InternalError
from harness.graph.spec import LayerSpec
from harness.loop.context import check_keys, context_rows, total_count, with_in_context
from harness.measure.session import Measurement
from harness.precision.config import PrecisionConfig
from harness.search.freebits import refine
from harness.table.lut import LatencyTable

STOP_NO_GAIN = "measured count stopped improving"
STOP_CONVERGED = "refiner found no faster raise (converged)"
STOP_MAX_ROUNDS = "max_rounds reached"


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


@dataclass
class Round:
    """One measured configuration."""

    index: int
    config: PrecisionConfig
    predicted: float  # from the table before this round's measurement
    measured: float
    bit_exact: bool
    top1: float | None = None
    n_moves: int = 0  # raises the refiner made after this round
    predicted_next: float | None = None  # the refiner's prediction for the next configuration
    measurement: Measurement | None = field(default=None, repr=False)

    @property
    def error_pct(self) -> float:
        """Prediction error of the table, in % of the measured count (positive: predicted too high)."""
        return 100.0 * (self.predicted - self.measured) / self.measured if self.measured else float("nan")

    def row(self) -> dict:
        return {
            "round": self.index,
            "config_hash": self.config.digest(),
            "predicted_count": self.predicted,
            "measured_count": self.measured,
            "prediction_error_pct": self.error_pct,
            "top1": self.top1,
            "bit_exact": self.bit_exact,
            "n_moves": self.n_moves,
            "method": self.config.meta.get("method", ""),
        }


@dataclass
class LoopResult:
    rounds: list[Round]
    best: Round
    table: LatencyTable  # the table after the last round (profiled rows + in-context rows)
    stop_reason: str

    @property
    def start(self) -> Round:
        return self.rounds[0]


def closed_loop(
    layers: Sequence[LayerSpec],
    start: PrecisionConfig,
    table: LatencyTable,
    measure: Callable[[PrecisionConfig, int], Measurement],
    *,
    settings: LoopSettings | None = None,
    evaluate: Callable[[PrecisionConfig], float] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> LoopResult:
    """Run the loop from ``start`` over ``table`` (one target; see the module docstring)."""
    settings = settings or LoopSettings()
    t = table.target()
    rounds: list[Round] = []
    best: Round | None = None
    config = start
    stop = STOP_MAX_ROUNDS
    for r in range(settings.max_rounds):
        predicted, _ = table.predict(layers, config, settings.out_bits_rule, estimate=True)
        m = measure(config, r)
        table.require_target(m.board, m.timer)  # counts of another board or timer never price this one
        check_keys(m, layers, config)
        measured = total_count(m)
        table = with_in_context(table, context_rows(m, layers, round_=r))
        rnd = Round(r, config, predicted, measured, m.bit_exact, measurement=m)
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
            board=t.board,
            timer=t.timer,
        )
        rnd.n_moves, rnd.predicted_next = len(res.moves), res.predicted_after
        if not res.moves:
            stop = STOP_CONVERGED
            break
        log(f"round {r}: refiner raised {len(res.moves)} layer(s), predicted {res.predicted_after:,.0f}")
        config = res.config
    if best is None:
        raise InternalError("the closed loop measured no round")
    return LoopResult(rounds, best, table, stop)
