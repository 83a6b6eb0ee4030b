"""The Free Bits refiner (arXiv 2307.02894), priced over the whole network.

The paper's heuristic, per conv/linear layer k at ``(a_k, w_k)``: among the table's pairs ``(a, w)`` with
``a >= a_k`` and ``w >= w_k`` that are faster, take the fastest. Raising precision never lowers accuracy (the
paper's assumption), so each accepted move is free. tinyhil prices a move by everything it changes, not only
k's own row (``pricing="full"``, the default):

* raising k's input precision raises the precision of the tensor k reads, so every *producer* of that
  activation group now narrows to the new precision: its row at ``o_bits = a`` is priced (when the table lacks
  that o_bits row, :meth:`LatencyTable.estimate` models it and the result's notes say which model was used);
* that tensor is *one* decision: the other layers that read it (a second conv; the add of a residual branch
  and everything joined to it, see :mod:`harness.precision.groups`) move to the new precision with it, and
  their change in count is part of the move's price;
* a move whose configuration fails ``fits(config)`` (flash or SRAM budget) is not free and is skipped; the
  next best move of that layer is tried.

``pricing="paper"`` judges a move by layer k's own row alone (at its current o_bits), as the paper does; the
moves still carry their consequences, and every reported saving is the full, table-predicted change.

Iteration: the paper makes one pass over the layers. By default the refiner sweeps the layers in execution
order until a sweep makes no move (``iterate=False``: one pass). It terminates: each accepted move strictly
lowers the predicted total and only ever raises bits.

Ties (two moves of one layer with the same saving, to within 1e-9 counts): ``tie_break="more_bits"`` (default)
takes the one with the most bits (a + w, then a), since at equal latency more bits is the better model;
``"fewer_bits"`` takes the fewest (less memory, a smaller change to fine-tune). Remaining ties go to the pair
listed first in (a, w) order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from harness.errors import ConfigError, TableError
from harness.graph.spec import LayerSpec
from harness.precision.config import PrecisionConfig
from harness.precision.groups import NO_WEIGHTS, activation_groups, group_bits
from harness.table.lut import MEASURED, LatencyTable

EPS = 1e-9
AW = tuple[int, int]


@dataclass(frozen=True)
class Move:
    """One accepted change: layer k from ``from_bits`` to ``to_bits`` (a, w), lowering the predicted total by
    ``saving``. ``also`` lists the other readers of k's input tensor that moved with it: (layer, from, to)."""

    layer: str
    from_bits: AW
    to_bits: AW
    saving: float
    also: tuple[tuple[str, AW, AW], ...] = ()

    def __iter__(self):
        """Unpacks as ``layer, from_bits, to_bits, saving``."""
        return iter((self.layer, self.from_bits, self.to_bits, self.saving))


@dataclass
class RefineResult:
    config: PrecisionConfig
    predicted_before: float
    predicted_after: float
    moves: list[Move] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sweeps: int = 0

    @property
    def saving(self) -> float:
        return self.predicted_before - self.predicted_after


class _State:
    """The mutable search state: per-layer w bits and per-group activation bits, priced through the table."""

    def __init__(
        self,
        layers: Sequence[LayerSpec],
        config: PrecisionConfig,
        table: LatencyTable,
        out_bits_rule: str | int,
        output_bits: int,
        estimate: bool,
    ) -> None:
        self.groups = activation_groups(layers)
        self.gb = group_bits(self.groups, config, output_bits=output_bits)
        self.w = {n: config[n][1] for n in self.groups.weighted}
        self.table, self.rule, self.estimate = table, out_bits_rule, estimate
        self.keys = {s.name: s.key() for s in layers}
        self._cache: dict[tuple[str, int, int, int], tuple[float, str]] = {}

    def bits(
        self, name: str, gb: list[int] | None = None, w: dict[str, int] | None = None
    ) -> tuple[int, int, int]:
        gb, w = gb or self.gb, w or self.w
        a = gb[self.groups.input_group(name)]
        if name not in w:  # add/avgpool: keyed (g, 0, g) whatever the rule
            return a, NO_WEIGHTS, a
        o = gb[self.groups.output_group(name)] if self.rule == "consumer" else int(self.rule)
        return a, w[name], o

    def price(self, name: str, bits: tuple[int, int, int]) -> tuple[float, str]:
        k = (self.keys[name], *bits)
        if k not in self._cache:
            self._cache[k] = self.table.estimate(*k) if self.estimate else (self.table.lookup(*k), MEASURED)
        return self._cache[k]

    def total(self) -> tuple[float, list[str]]:
        tot, est = 0.0, []
        for s in self.groups.layers:
            b = self.bits(s.name)
            c, src = self.price(s.name, b)
            tot += c
            if src != MEASURED:
                est.append(_est_note(s.name, self.keys[s.name], b, src))
        return tot, est

    def config(self, meta: dict) -> PrecisionConfig:
        return PrecisionConfig(
            {n: (self.gb[self.groups.input_group(n)], self.w[n]) for n in self.groups.weighted}, meta=meta
        )


def _est_note(name: str, key: str, b: tuple[int, int, int], src: str) -> str:
    return f"{name} ({key}) at a{b[0]}w{b[1]}o{b[2]}: not measured, estimated by the {src} model"


@dataclass
class _Candidate:
    to: AW
    full_delta: float  # change of the predicted total (negative: faster)
    decision_delta: float  # what the pricing mode judges by
    gb: list[int]
    w: dict[str, int]
    affected: list[str]
    estimates: list[str]


def _evaluate(st: _State, k: str, to: AW, pricing: str) -> _Candidate:
    g = st.groups.input_group(k)
    gb = list(st.gb)
    gb[g] = to[0]
    w = dict(st.w)
    w[k] = to[1]
    affected = {k}
    if gb != st.gb:
        affected |= set(st.groups.readers[g]) | set(st.groups.passthrough[g])
        if st.rule == "consumer":
            affected |= set(st.groups.producers[g])
    order = [s.name for s in st.groups.layers if s.name in affected]
    full, estimates = 0.0, []
    for n in order:
        old_b, new_b = st.bits(n), st.bits(n, gb, w)
        c_new, src = st.price(n, new_b)
        full += c_new - st.price(n, old_b)[0]
        if src != MEASURED:
            estimates.append(_est_note(n, st.keys[n], new_b, src))
    if pricing == "paper":
        a0, w0, o0 = st.bits(k)
        decision = st.price(k, (to[0], to[1], o0))[0] - st.price(k, (a0, w0, o0))[0]
    else:
        decision = full
    return _Candidate(to, full, decision, gb, w, order, estimates)


def _tie_key(c: _Candidate, tie_break: str) -> tuple:
    a, w = c.to
    sign = -1 if tie_break == "more_bits" else 1
    # savings compared on a 1e-9 grid so float noise does not decide a tie
    return (round(c.decision_delta / EPS), sign * (a + w), sign * a, c.to)


def refine(
    layers: Sequence[LayerSpec],
    config: PrecisionConfig,
    table: LatencyTable,
    *,
    out_bits_rule: str | int = "consumer",
    pricing: str = "full",
    fits: Callable[[PrecisionConfig], bool] | None = None,
    iterate: bool = True,
    max_sweeps: int = 100,
    tie_break: str = "more_bits",
    estimate: bool = True,
    output_bits: int = 8,
    board: str | None = None,
    timer: str | None = None,
) -> RefineResult:
    """Raise bits wherever the table says it is faster (see the module docstring).

    ``config`` must be consistent (readers of one tensor agree on a_bits; see
    :func:`harness.precision.groups.harmonize`). ``board``/``timer``, when given, select those rows of the
    table and refuse a table measured elsewhere. ``estimate=False`` prices only measured rows (a move needing
    an unmeasured row is skipped and noted). Returns the refined configuration and the predicted counts.
    """
    if pricing not in ("full", "paper"):
        raise ConfigError(f"pricing must be 'full' or 'paper', got {pricing!r}")
    if tie_break not in ("more_bits", "fewer_bits"):
        raise ConfigError(f"tie_break must be 'more_bits' or 'fewer_bits', got {tie_break!r}")
    if max_sweeps < 1:
        raise ConfigError(f"max_sweeps must be at least 1, got {max_sweeps}")
    if board is not None or timer is not None:
        if board is None or timer is None:
            raise ConfigError("pass both board and timer (or neither) to refine()")
        table = table.for_target(board, timer)
    st = _State(layers, config, table, out_bits_rule, output_bits, estimate)
    before, est_before = st.total()  # raises TableError when the start itself cannot be priced
    notes: list[str] = []
    if fits is not None and not fits(config):
        notes.append("the starting configuration already exceeds the memory budget; no raise can fit")
    used_estimates: dict[str, None] = dict.fromkeys(est_before)
    skipped: dict[str, None] = {}
    if config.patches:
        notes.append("per-patch activation overrides are kept as given and not priced by the table")
    moves: list[Move] = []
    sweeps, moved = 0, False
    while sweeps < max_sweeps:
        sweeps += 1
        moved = False
        for k in st.groups.weighted:
            a0, w0 = st.gb[st.groups.input_group(k)], st.w[k]
            cands: list[_Candidate] = []
            for a, w in table.pairs(st.keys[k]):
                if a < a0 or w < w0 or (a, w) == (a0, w0):
                    continue
                try:
                    c = _evaluate(st, k, (a, w), pricing)
                except TableError as e:
                    reason = str(e).split("; ")[0]
                    skipped[f"{k}: a{a0}w{w0} -> a{a}w{w} skipped, cannot be priced: {reason}"] = None
                    continue
                if c.decision_delta < -EPS:
                    cands.append(c)
            cands.sort(key=lambda c: _tie_key(c, tie_break))
            for c in cands:
                if fits is not None and not fits(_config_from(st, c, config)):
                    notes.append(
                        f"{k}: a{a0}w{w0} -> a{c.to[0]}w{c.to[1]} would save {-c.full_delta:g} but "
                        "exceeds the memory budget"
                    )
                    continue
                g = st.groups.input_group(k)
                also = tuple(
                    (n, (a0, st.w[n]), (c.to[0], st.w[n]))
                    for n in st.groups.readers[g]
                    if n != k and c.to[0] != a0
                )
                moves.append(Move(k, (a0, w0), c.to, -c.full_delta, also))
                used_estimates.update(dict.fromkeys(c.estimates))
                st.gb, st.w = c.gb, c.w
                moved = True
                break
        if not moved or not iterate:
            break
    after, est_after = st.total()
    used_estimates.update(dict.fromkeys(est_after))
    notes = list(dict.fromkeys(notes)) + list(used_estimates) + list(skipped)
    if moved and iterate and sweeps >= max_sweeps:
        notes.append(f"stopped after max_sweeps={max_sweeps} sweeps with moves still being found")
    meta = {
        **config.meta,
        "refined": f"freebits-{pricing}",
        "predicted_before": before,
        "predicted_after": after,
    }
    refined = st.config(meta)
    refined.patches = {p: dict(v) for p, v in config.patches.items()}
    return RefineResult(refined, before, after, moves, notes, sweeps)


def _config_from(st: _State, c: _Candidate, start: PrecisionConfig) -> PrecisionConfig:
    """The configuration a candidate move leads to (what ``fits`` judges)."""
    layers = {n: (c.gb[st.groups.input_group(n)], c.w[n]) for n in st.groups.weighted}
    return PrecisionConfig(layers, {p: dict(v) for p, v in start.patches.items()}, dict(start.meta))
