"""Budgeted starting points: an integer linear programme over (layer, bit pair), with a greedy fallback.

Decisions follow :mod:`harness.precision.groups`: one weight precision per conv/linear layer and one
precision per activation group (all readers of a tensor agree). The ILP has one binary per (layer, (a, w))
pair and one per (group, bits), linked so that every reader of a group takes the group's bits; latency rows
that depend on o_bits (the consumer's precision) use one continuous variable per (layer, a, w, o) whose
marginals are the layer's pair and the consumer group's bits (exact for integral pairs, and a tight
relaxation: a MobileNetV2-sized latency problem solves to optimality in about a second).

Objectives (``objective``):

* ``"bits"``: maximise the number of bits, ``sum over layers of (a + w)`` (a hardware-agnostic accuracy proxy:
  every layer counts the same; uniform 8-bit is the maximum), ties to fewer BitOPs;
* ``"bitops"``: minimise BitOPs, ``sum over conv/linear layers of macs * a * w`` (add/avgpool are not
  counted), ties to more bits;
* ``"latency"``: minimise the count predicted by a :class:`~harness.table.lut.LatencyTable`.

Constraints, each optional: ``bitops_frac`` / ``latency_frac`` (at most this fraction of the uniform 8-bit
BitOPs / predicted count), ``min_mean_bits`` (mean of (a + w) / 2 over layers at least this), ``flash_bytes``
and
``sram_bytes`` (the layer-by-layer accounting of :mod:`harness.memory.budget`). The network input stays at
``input_bits`` and a tensor no layer reads (the logits) at ``output_bits``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.errors import ConfigError, TableError
from harness.graph.spec import INPUT, LayerSpec
from harness.memory.budget import layer_param_bytes, live_sets, tensor_bytes, tensor_shapes
from harness.precision.config import ALLOWED_BITS, PrecisionConfig
from harness.precision.groups import NO_WEIGHTS, ActivationGroups, activation_groups, group_bits
from harness.table.lut import LatencyTable

OBJECTIVES = ("bits", "bitops", "latency")


def bitops(layers: Sequence[LayerSpec], config: PrecisionConfig) -> int:
    """BitOPs of the conv/linear layers: ``sum(macs * a_bits * w_bits)``."""
    return sum(s.macs * config[s.name][0] * config[s.name][1] for s in layers if s.has_weights)


@dataclass
class _Problem:
    layers: list[LayerSpec]
    groups: ActivationGroups
    opts: list[tuple[int, ...]]  # per group: allowed bits (one value: fixed)
    bits: tuple[int, ...]
    table: LatencyTable | None
    rule: str | int
    estimate: bool
    objective: str
    limits: dict[str, float]  # upper limits: bitops, latency, flash, sram
    min_score: float | None  # lower limit on sum(a + w)
    uses_table: bool  # latency objective or budget
    w_min: dict[str, int]  # per layer: lowest weight bits allowed (the floor)

    def o_options(self, name: str) -> tuple[int, ...]:
        return self.opts[self.groups.output_group(name)] if self.rule == "consumer" else (int(self.rule),)

    def count(self, name: str, a: int, w: int, o: int) -> float | None:
        """Table count of a layer at (a, w, o), None when it cannot be priced."""
        assert self.table is not None
        try:
            c, _ = (self.table.estimate if self.estimate else _measured(self.table))(
                self.groups.by_name[name].key(), a, w, o
            )
        except TableError:
            return None
        return c

    def pairs(self, name: str) -> list[tuple[int, int]]:
        """(a, w) pairs a weighted layer may take (only table-priced ones when the table is used)."""
        a_opts = self.opts[self.groups.input_group(name)]
        pairs = [(a, w) for a in a_opts for w in self.bits if w >= self.w_min.get(name, 0)]
        if self.uses_table:
            measured = set(self.table.pairs(self.groups.by_name[name].key()))
            pairs = [p for p in pairs if p in measured]
            if not pairs:
                raise TableError(
                    f"latency table has no usable (a, w) pair for layer {name!r} "
                    f"({self.groups.by_name[name].key()}); profile it first"
                )
        return pairs

    # evaluation of a full assignment (greedy, checks) -------------------------------------------------------

    def bits_of(self, gb: list[int], w: dict[str, int], name: str) -> tuple[int, int, int]:
        a = gb[self.groups.input_group(name)]
        if name not in w:  # add/avgpool: keyed (g, 0, g) whatever the rule
            return a, NO_WEIGHTS, a
        o = gb[self.groups.output_group(name)] if self.rule == "consumer" else int(self.rule)
        return a, w[name], o

    def metrics(self, gb: list[int], w: dict[str, int]) -> dict[str, float]:
        m: dict[str, float] = {"bitops": 0.0, "score": 0.0, "flash": 0.0}
        for s in self.layers:
            if s.has_weights:
                a = gb[self.groups.input_group(s.name)]
                m["bitops"] += s.macs * a * w[s.name]
                m["score"] += a + w[s.name]
                m["flash"] += layer_param_bytes(s, w[s.name])
        if "sram" in self.limits:
            shapes = tensor_shapes(self.layers)
            m["sram"] = max(
                (
                    sum(tensor_bytes(shapes[t], gb[self.groups.group_of[t]]) for t in live)
                    for live in live_sets(self.layers)
                ),
                default=0,
            )
        if self.uses_table:
            tot = 0.0
            for s in self.layers:
                c = self.count(s.name, *self.bits_of(gb, w, s.name))
                tot += math.inf if c is None else c
            m["latency"] = tot
        return m

    def violation(self, m: dict[str, float]) -> float:
        return sum(max(0.0, m[k] - lim) / max(lim, 1.0) for k, lim in self.limits.items())

    def cost(self, m: dict[str, float]) -> float:
        return {"bits": -m["score"], "bitops": m["bitops"], "latency": m.get("latency", 0.0)}[self.objective]


def _measured(table: LatencyTable):
    return lambda k, a, w, o: (table.lookup(k, a, w, o), "measured")


def _problem(
    layers: Sequence[LayerSpec],
    objective: str,
    bitops_frac: float | None,
    latency_frac: float | None,
    min_mean_bits: float | None,
    flash_bytes: int | None,
    sram_bytes: int | None,
    table: LatencyTable | None,
    out_bits_rule: str | int,
    bits: Sequence[int],
    input_bits: int | None,
    output_bits: int,
    estimate: bool,
    floor: PrecisionConfig | None = None,
) -> _Problem:
    bits = check_params(objective=objective, bits=bits, bitops_frac=bitops_frac, latency_frac=latency_frac)
    if (objective == "latency" or latency_frac is not None) and table is None:
        raise ConfigError(
            "the latency objective / latency_frac budget needs a latency table (profile the model)"
        )
    layers = list(layers)
    groups = activation_groups(layers)
    if not groups.weighted:
        raise ConfigError("the network has no conv/linear layer to choose bits for")
    low = (
        group_bits(groups, floor, output_bits=output_bits) if floor is not None else [0] * len(groups.readers)
    )
    opts: list[tuple[int, ...]] = []
    for g, rs in enumerate(groups.readers):
        if not rs:
            opts.append((output_bits,))
        elif INPUT in groups.tensors[g] and input_bits is not None:
            opts.append((int(input_bits),))
        else:
            opts.append(tuple(b for b in bits if b >= low[g]))
        if not opts[-1] or opts[-1][-1] < low[g]:
            raise ConfigError(f"floor asks for {low[g]}-bit {list(groups.tensors[g])}, above the bits {bits}")
    w_min = {n: floor[n][1] for n in groups.weighted} if floor is not None else {}
    if any(w > max(bits) for w in w_min.values()):
        raise ConfigError(f"floor asks for weight bits above the bits {bits}")
    p = _Problem(
        layers,
        groups,
        opts,
        bits,
        table,
        out_bits_rule,
        estimate,
        objective,
        {},
        None,
        objective == "latency" or latency_frac is not None,
        w_min,
    )
    top = max(bits)
    gb8 = [o[-1] if len(o) > 1 else o[0] for o in opts]
    m8 = p.metrics(gb8, dict.fromkeys(groups.weighted, top))  # the all-top-bits reference
    if bitops_frac is not None:
        p.limits["bitops"] = bitops_frac * m8["bitops"]
    if latency_frac is not None:
        p.limits["latency"] = latency_frac * m8["latency"]
        if not math.isfinite(p.limits["latency"]):
            raise TableError("latency_frac needs the table to price the all-8-bit configuration; profile it")
    if flash_bytes is not None:
        p.limits["flash"] = float(flash_bytes)
    if sram_bytes is not None:
        p.limits["sram"] = float(sram_bytes)
    if min_mean_bits is not None:
        p.min_score = 2.0 * float(min_mean_bits) * len(groups.weighted)
    return p


def _infeasible(p: _Problem, how: str) -> ConfigError:
    lims = ", ".join(f"{k} <= {v:g}" for k, v in p.limits.items())
    if p.min_score is not None:
        lims += f"{', ' if lims else ''}mean bits >= {p.min_score / 2 / len(p.groups.weighted):g}"
    return ConfigError(f"no precision configuration meets the budget ({lims}) [{how}]")


# ILP --------------------------------------------------------------------------------------------------------


def _solve_ilp(p: _Problem, time_limit: float) -> tuple[list[int], dict[str, int], bool] | None:
    """Solve with HiGHS; returns (group bits, w bits, proven optimal), None when no solution was found."""
    import highspy

    costs: list[float] = []
    integral: list[bool] = []
    upper: list[float] = []

    def col(cost: float = 0.0, binary: bool = True) -> int:
        costs.append(cost)
        integral.append(binary)
        upper.append(1.0)
        return len(costs) - 1

    rows: list[tuple[float, float, dict[int, float]]] = []
    inf = highspy.kHighsInf
    g_ = p.groups
    z: dict[tuple[int, int], int] = {}
    for g, o in enumerate(p.opts):
        if len(o) > 1:
            for b in o:
                z[g, b] = col()
            rows.append((1, 1, {z[g, b]: 1.0 for b in o}))

    def group_term(g: int, b: int) -> tuple[int | None, float]:
        """(column, constant) meaning "group g is at b bits": a z column, or a constant 0/1 when fixed."""
        if len(p.opts[g]) > 1:
            return z[g, b], 0.0
        return None, float(p.opts[g][0] == b)

    x: dict[tuple[str, int, int], int] = {}
    for n in g_.weighted:
        for a, w in p.pairs(n):
            x[n, a, w] = col()
        rows.append((1, 1, {x[n, a, w]: 1.0 for a, w in p.pairs(n)}))
        g = g_.input_group(n)
        if len(p.opts[g]) > 1:
            for b in p.opts[g]:
                terms = {x[n, a, w]: 1.0 for a, w in p.pairs(n) if a == b}
                terms[z[g, b]] = -1.0
                rows.append((0, 0, terms))

    exprs: dict[str, tuple[dict[int, float], float]] = {}

    def add_to(name: str, c: int | None, coef: float, const: float = 0.0) -> None:
        lin, k = exprs.setdefault(name, ({}, 0.0))
        if c is not None:
            lin[c] = lin.get(c, 0.0) + coef
        exprs[name] = (lin, k + const)

    for n in g_.weighted:
        s = g_.by_name[n]
        for a, w in p.pairs(n):
            add_to("bitops", x[n, a, w], s.macs * a * w)
            add_to("score", x[n, a, w], a + w)
            add_to("flash", x[n, a, w], layer_param_bytes(s, w))
    if "sram" in p.limits:
        shapes = tensor_shapes(p.layers)
        for i, live in enumerate(live_sets(p.layers)):
            for t in live:
                g = g_.group_of[t]
                for b in p.opts[g]:
                    c, k = group_term(g, b)
                    add_to(f"sram{i}", c, tensor_bytes(shapes[t], b), k * tensor_bytes(shapes[t], b))
    if p.uses_table:
        for s in p.layers:
            if s.has_weights:
                pairs, outs = p.pairs(s.name), p.o_options(s.name)
                if len(outs) == 1:  # output bits fixed: the count is linear in x
                    for a, w in pairs:
                        cnt = p.count(s.name, a, w, outs[0])
                        if cnt is None:
                            upper[x[s.name, a, w]] = 0.0
                        else:
                            add_to("latency", x[s.name, a, w], cnt)
                    continue
                # joint (a, w, o) choice: y's marginals are x (over o) and the output group's z (over a, w),
                # which makes y the exact product for integral x, z and keeps the relaxation tight
                g_out = g_.output_group(s.name)
                y = {}
                for a, w in pairs:
                    for o in outs:
                        cnt = p.count(s.name, a, w, o)
                        y[a, w, o] = col(binary=False)
                        if cnt is None:  # not priceable: forbid the combination
                            upper[y[a, w, o]] = 0.0
                        else:
                            add_to("latency", y[a, w, o], cnt)
                for a, w in pairs:
                    rows.append((0, 0, {**{y[a, w, o]: 1.0 for o in outs}, x[s.name, a, w]: -1.0}))
                for o in outs:
                    rows.append((0, 0, {**{y[a, w, o]: 1.0 for a, w in pairs}, z[g_out, o]: -1.0}))
            else:
                g = g_.input_group(s.name)
                for b in p.opts[g]:
                    o = b
                    cnt = p.count(s.name, b, NO_WEIGHTS, o)
                    c, k = group_term(g, b)
                    if cnt is None:
                        if c is None:
                            raise TableError(
                                f"latency table cannot price {s.name!r} ({s.key()}) at a{b}w0o{o}; profile it"
                            )
                        upper[c] = 0.0
                    else:
                        add_to("latency", c, cnt, k * cnt)

    for name, lim in p.limits.items():
        keys = [k for k in exprs if k == name or (name == "sram" and k.startswith("sram"))]
        for k in keys:
            lin, const = exprs[k]
            rows.append((-inf, lim - const, lin))
    if p.min_score is not None:
        lin, const = exprs["score"]
        rows.append((p.min_score - const, inf, lin))

    # objective, with a secondary term smaller than the primary's integer steps
    def scaled(name: str, f: float) -> dict[int, float]:
        return {c: v * f for c, v in exprs.get(name, ({}, 0.0))[0].items()}

    max_score = 2.0 * max(p.bits) * len(g_.weighted)
    max_bitops = sum(g_.by_name[n].macs for n in g_.weighted) * max(p.bits) ** 2 or 1.0
    obj: dict[int, float] = {}
    parts = {
        "bits": [("score", -1.0), ("bitops", 0.5 / max_bitops)],
        "bitops": [("bitops", 1.0), ("score", -0.5 / max_score)],
        "latency": [("latency", 1.0)],
    }[p.objective]
    for name, f in parts:
        for c, v in scaled(name, f).items():
            obj[c] = obj.get(c, 0.0) + v
    for c, v in obj.items():
        costs[c] += v

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit))
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", 1e-7)
    h.setOptionValue("random_seed", 0)
    n = len(costs)
    h.addVars(n, np.zeros(n), np.array(upper))
    idx = np.arange(n, dtype=np.int32)
    h.changeColsCost(n, idx, np.array(costs, dtype=float))
    ints = [i for i in range(n) if integral[i]]
    h.changeColsIntegrality(
        len(ints), np.array(ints, dtype=np.int32), np.array([highspy.HighsVarType.kInteger] * len(ints))
    )
    for lo, hi, terms in rows:
        ks = sorted(terms)
        h.addRow(lo, hi, len(ks), np.array(ks, dtype=np.int32), np.array([terms[k] for k in ks], dtype=float))
    h.run()
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kInfeasible:
        raise _infeasible(p, "ILP")
    if status != highspy.HighsModelStatus.kOptimal and h.getInfo().primal_solution_status != 2:
        return None
    val = h.getSolution().col_value
    gb = [o[0] if len(o) == 1 else max(o, key=lambda b: val[z[g, b]]) for g, o in enumerate(p.opts)]
    w = {}
    for n_ in g_.weighted:
        a, w[n_] = max(p.pairs(n_), key=lambda aw: val[x[n_, aw[0], aw[1]]])
    return gb, w, status == highspy.HighsModelStatus.kOptimal


# greedy -----------------------------------------------------------------------------------------------------


def _steps(
    p: _Problem, gb: list[int], w: dict[str, int], down: bool
) -> list[tuple[list[int], dict[str, int]]]:
    """Every one-step change (a group's bits or a layer's weight bits to the next lower/higher option)."""
    out = []
    for g, o in enumerate(p.opts):
        i = o.index(gb[g]) + (-1 if down else 1)
        if len(o) > 1 and 0 <= i < len(o):
            new = list(gb)
            new[g] = o[i]
            out.append((new, w))
    for n in p.groups.weighted:
        i = p.bits.index(w[n]) + (-1 if down else 1)
        if 0 <= i < len(p.bits) and p.bits[i] >= p.w_min.get(n, 0):
            out.append((gb, {**w, n: p.bits[i]}))
    return out


def _solve_greedy(p: _Problem) -> tuple[list[int], dict[str, int]]:
    """Descend from the all-top-bits configuration: first the cheapest steps (budget violation removed per bit
    lost) until every budget holds, then (BitOPs / latency objectives) the steps that save the most cost per
    bit lost while the budgets and ``min_mean_bits`` hold; for the bits objective, raise back what still
    fits."""
    gb = [o[-1] for o in p.opts]
    w = dict.fromkeys(p.groups.weighted, max(p.bits))
    m = p.metrics(gb, w)

    def ok_bits(mm: dict[str, float]) -> bool:
        return p.min_score is None or mm["score"] >= p.min_score - 1e-9

    if not ok_bits(m):
        raise _infeasible(p, "greedy")
    while p.violation(m) > 0:
        best = None
        for ngb, nw in _steps(p, gb, w, down=True):
            mm = p.metrics(ngb, nw)
            gain = p.violation(m) - p.violation(mm)
            lost = m["score"] - mm["score"]
            if gain > 0 and ok_bits(mm):
                r = gain / max(lost, 1e-9)
                if best is None or r > best[0]:
                    best = (r, ngb, nw, mm)
        if best is None:
            raise _infeasible(p, "greedy")
        _, gb, w, m = best
    improving = True
    while improving:
        improving = False
        best = None
        for ngb, nw in _steps(p, gb, w, down=p.objective != "bits"):
            mm = p.metrics(ngb, nw)
            if p.violation(mm) > 0 or not ok_bits(mm):
                continue
            saved = p.cost(m) - p.cost(mm)
            if saved <= 1e-9:
                continue
            r = saved / max(abs(m["score"] - mm["score"]), 1e-9) if p.objective != "bits" else -p.cost(mm)
            if best is None or r > best[0]:
                best = (r, ngb, nw, mm)
        if best is not None:
            _, gb, w, m = best
            improving = True
    return gb, w


# entry point ------------------------------------------------------------------------------------------------


def check_params(
    *,
    objective: str = "bits",
    bits: Sequence[int] = ALLOWED_BITS,
    bitops_frac: float | None = None,
    latency_frac: float | None = None,
    solver: str = "ilp",
    input_bits: int | None = 8,
    output_bits: int = 8,
    **_: object,
) -> tuple[int, ...]:
    """ConfigError naming the option when the search's options are invalid (checked before any work starts);
    returns the sorted bit choices."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"method.objective must be one of {OBJECTIVES}, got {objective!r}")
    choices = tuple(sorted({int(b) for b in bits}))
    if not choices or any(b not in ALLOWED_BITS for b in choices):
        raise ConfigError(f"method.bits must be a non-empty subset of {ALLOWED_BITS}, got {list(bits)}")
    for name, v in (("bitops_frac", bitops_frac), ("latency_frac", latency_frac)):
        if v is not None and not 0 < v:
            raise ConfigError(f"method.{name} must be a positive fraction of the 8-bit figure, got {v}")
    if solver not in ("ilp", "greedy"):
        raise ConfigError(f"method.solver must be 'ilp' or 'greedy', got {solver!r}")
    for name, v in (("input_bits", input_bits), ("output_bits", output_bits)):
        if v is not None and v not in ALLOWED_BITS:
            raise ConfigError(f"method.{name} must be one of {ALLOWED_BITS}, got {v}")
    return choices


def bitops_search(
    layers: Sequence[LayerSpec],
    *,
    objective: str = "bits",
    bitops_frac: float | None = None,
    latency_frac: float | None = None,
    min_mean_bits: float | None = None,
    flash_bytes: int | None = None,
    sram_bytes: int | None = None,
    table: LatencyTable | None = None,
    out_bits_rule: str | int = "consumer",
    bits: Sequence[int] = ALLOWED_BITS,
    input_bits: int | None = 8,
    output_bits: int = 8,
    solver: str = "ilp",
    time_limit: float = 30.0,
    estimate: bool = True,
    floor: PrecisionConfig | None = None,
) -> PrecisionConfig:
    """A consistent :class:`PrecisionConfig` optimising ``objective`` under the budgets (module docstring).

    ``floor``: no layer goes below its bits there. ``objective="latency", floor=start`` is the exact
    counterpart of the Free Bits refiner: the fastest configuration that only raises bits.

    ``solver="ilp"`` uses HiGHS and falls back to the greedy descent when no solution was found in
    ``time_limit`` seconds (said in ``meta["solver"]``); ``"greedy"`` uses the descent only. An infeasible
    budget raises ConfigError.
    """
    check_params(solver=solver)
    p = _problem(
        layers,
        objective,
        bitops_frac,
        latency_frac,
        min_mean_bits,
        flash_bytes,
        sram_bytes,
        table,
        out_bits_rule,
        bits,
        input_bits,
        output_bits,
        estimate,
        floor,
    )
    used, optimal = "greedy", False
    res = None
    if solver == "ilp":
        res = _solve_ilp(p, time_limit)
    if res is not None:
        gb, w, optimal = res
        used = "highs-ilp"
    else:
        gb, w = _solve_greedy(p)
        if solver == "ilp":
            used = "greedy (ILP found no solution in time)"
    m = p.metrics(gb, w)
    cfg = {n: (gb[p.groups.input_group(n)], w[n]) for n in p.groups.weighted}
    meta = {
        "method": f"bitops-{objective}",
        "solver": used,
        "optimal": optimal,
        "objective": objective,
        "budgets": dict(p.limits),
        "min_mean_bits": min_mean_bits,
        "bitops": m["bitops"],
        "mean_bits": m["score"] / 2 / len(cfg),
    }
    if "latency" in m:
        meta["predicted"] = m["latency"]
    return PrecisionConfig(cfg, meta=meta)
