"""QuantuneV2's sensitivity analysis: two inference passes -> per-op and per-layer metrics -> ranked list.

Per unfused op (conv, bn, relu, linear): SQNR of its input and output activations and their difference
dSQNR(op) = SQNR_a(input) - SQNR_a(output), the noise the op itself adds. Per deployed layer (a conv/linear
with the BN and ReLU fused into it, keyed by the conv's name as in a PrecisionConfig): weight SQNR, SQNR of
the unit's input (the conv's input) and output (the last fused op's output), their difference (which equals the
sum of the unit's per-op dSQNRs), and the MSE of the unit's output. The ranking rule is
:class:`~harness.search.quantune.ranking.RankRule`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from harness.errors import ConfigError
from harness.search.quantune.metrics import SQNR_CAP_DB, NoiseStats, delta_sqnr, sqnr
from harness.search.quantune.ranking import RankRule, rank_layers, sensitivity_scores
from harness.search.quantune.record import TwoPassResult, two_pass
from harness.search.quantune.units import WEIGHTED_KINDS, UnfusedOp, unfused_ops

WeightFn = Callable[[nn.Module], torch.Tensor]  # the weights a (quantized) module computes with


@dataclass
class Sensitivity:
    """The result of one analysis: the ranking and the tables behind it."""

    ranking: list[str]  # conv/linear names, most sensitive first
    layers: list[dict]  # one row per conv/linear in ranking order (rank, layer, score, metrics)
    ops: list[dict]  # one row per unfused op in execution order
    seconds: float = 0.0  # wall time of the passes and the metrics
    cpu_seconds: float = 0.0  # CPU time of this process over the same span (robust to a busy machine)
    forward_calls: int = 0
    images: int = 0
    meta: dict = field(default_factory=dict)


def op_rows(result: TwoPassResult, cap_db: float = SQNR_CAP_DB) -> list[dict]:
    """Per unfused op: input/output SQNR, dSQNR and output MSE."""
    rows = []
    for n in result.ops:
        s_in, s_out = n.inp.sqnr(cap_db), n.out.sqnr(cap_db)
        rows.append(
            {
                "op": n.op.key,
                "kind": n.op.kind,
                "layer": n.op.owner,
                "a_sqnr_in": s_in,
                "a_sqnr_out": s_out,
                "dsqnr": delta_sqnr(s_in, s_out),
                "mse": n.out.mse,
            }
        )
    return rows


def layer_rows(
    result: TwoPassResult,
    w_sqnr: Mapping[str, float],
    cap_db: float = SQNR_CAP_DB,
    input_op: Mapping[str, str] | None = None,
    group_ops: Mapping[str, Sequence[str]] | None = None,
) -> list[dict]:
    """Per conv/linear (execution order): the fused unit's metrics, from its first and last op.

    The unit's input is its conv's input, or the input of the op ``input_op[layer]`` names (the quantizer of
    the tensor the layer reads, whose noise belongs to the layer's ``a_bits``). ``group_ops[layer]`` names the
    quantizers of the other tensors of the layer's input group (one precision, set by its readers): their
    dSQNRs are added (``group_dsqnr``), so ``dsqnr = unit_dsqnr + group_dsqnr``.
    """
    first: dict[str, NoiseStats] = {}
    last: dict[str, NoiseStats] = {}
    kinds: dict[str, str] = {}
    by_key = {n.op.key: n for n in result.ops}
    for n in result.ops:
        if n.op.owner is None:
            continue
        if n.op.kind in WEIGHTED_KINDS:
            first[n.op.owner] = n.inp
            kinds[n.op.owner] = n.op.kind
        last[n.op.owner] = n.out
    for name, key in (input_op or {}).items():
        if name in first:
            if key not in by_key:
                raise ConfigError(f"layer {name!r}: its input op {key!r} was not observed")
            first[name] = by_key[key].inp
    rows = []
    for name, inp in first.items():
        s_in, s_out = inp.sqnr(cap_db), last[name].sqnr(cap_db)
        group = 0.0
        for key in (group_ops or {}).get(name, ()):
            if key not in by_key:
                raise ConfigError(
                    f"layer {name!r}: the quantizer {key!r} of its input group was not observed"
                )
            q = by_key[key]
            group += delta_sqnr(q.inp.sqnr(cap_db), q.out.sqnr(cap_db))
        unit = delta_sqnr(s_in, s_out)
        rows.append(
            {
                "layer": name,
                "kind": kinds[name],
                "w_sqnr": w_sqnr.get(name, float("nan")),
                "a_sqnr_in": s_in,
                "a_sqnr_out": s_out,
                "dsqnr": unit + group,
                "unit_dsqnr": unit,
                "group_dsqnr": group,
                "mse": last[name].mse,
            }
        )
    return rows


def rank_rows(rows: Sequence[dict], rule: RankRule) -> list[dict]:
    """``rows`` sorted most sensitive first, with ``rank`` (1 = most sensitive) and ``score`` added."""
    scores = sensitivity_scores(rows, rule)
    order = rank_layers(rows, rule)
    return [{"rank": r + 1, **rows[i], "score": scores[i]} for r, i in enumerate(order)]


def weight_sqnrs(
    float_model: nn.Module,
    quant_model: nn.Module,
    names: Sequence[str],
    weight_of: WeightFn,
    cap_db: float = SQNR_CAP_DB,
) -> dict[str, float]:
    """SQNR of each named layer's weights: float model's against what the quantized module computes with."""
    fm, qm = dict(float_model.named_modules()), dict(quant_model.named_modules())
    out = {}
    with torch.no_grad():
        for n in names:
            w, q = fm[n].weight.detach(), weight_of(qm[n]).detach()
            out[n] = min(cap_db, sqnr(w, q))
    return out


def analyze(
    float_model: nn.Module,
    quant_model: nn.Module,
    images: torch.Tensor,
    *,
    weight_of: WeightFn,
    rule: RankRule | None = None,
    chunk_size: int | None = None,
    cap_db: float = SQNR_CAP_DB,
    ops: Sequence[UnfusedOp] | None = None,
    input_op: Mapping[str, str] | None = None,
    group_ops: Mapping[str, Sequence[str]] | None = None,
    clone: bool = True,
) -> Sensitivity:
    """Rank the conv/linear layers of ``float_model`` by how much quantization noise each adds, from one float
    and one quantized inference pass over ``images`` (``quant_model``: the same network, every layer at the
    probe precision, same module names, BN and ReLU not folded). ``ops``/``input_op``: what to observe and
    where each layer's input is taken (default: every unfused op of ``float_model``; the conv's own input);
    ``group_ops``: the other quantizers of each layer's input group, whose noise it is charged with.
    ``clone=False`` skips copying the float activations (only for models without in-place ops)."""
    rule = rule or RankRule()
    t0, c0 = time.perf_counter(), time.process_time()
    ops = list(ops) if ops is not None else unfused_ops(float_model)
    result = two_pass(float_model, quant_model, images, ops, chunk_size, clone)
    names = [op.module for op in ops if op.kind in WEIGHTED_KINDS]
    wsq = weight_sqnrs(float_model, quant_model, names, weight_of, cap_db)
    layers = rank_rows(layer_rows(result, wsq, cap_db, input_op, group_ops), rule)
    if not layers:
        raise ConfigError("no conv/linear layer was observed")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return Sensitivity(
        [r["layer"] for r in layers],
        layers,
        op_rows(result, cap_db),
        seconds,
        cpu,
        result.forward_calls,
        result.images,
        {"rule": rule.rule, "passes": result.passes},
    )
