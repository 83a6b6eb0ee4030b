"""The ranking QuantuneV2 replaces: quantize one layer at a time and measure accuracy (n + 1 evaluations).

Evaluation 0 is the float model; evaluation i quantizes only layer i (at the probe precision; every other
layer stays float). A layer's sensitivity is the top-1 it costs; top-1 on a finite eval set ties often, so
ties go to the larger increase of the eval loss.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from harness.errors import ConfigError

# evaluate(None) -> float model; evaluate(name) -> only that layer quantized. Returns (top-1, mean loss).
EvalFn = Callable[[str | None], tuple[float, float]]


@dataclass
class OneAtATime:
    ranking: list[str]  # most sensitive first
    rows: list[dict]  # per layer in ranking order: rank, layer, top1, loss, top1_drop, loss_increase
    float_top1: float
    float_loss: float
    evaluations: int
    seconds: float
    cpu_seconds: float = 0.0
    meta: dict = field(default_factory=dict)


def one_at_a_time(names: Sequence[str], evaluate: EvalFn) -> OneAtATime:
    """Rank ``names`` by the accuracy lost when each alone is quantized; ``len(names) + 1`` evaluations."""
    if not names or len(set(names)) != len(names):
        raise ConfigError("the one-at-a-time ranking needs distinct layer names")
    t0, c0 = time.perf_counter(), time.process_time()
    top1_f, loss_f = evaluate(None)
    rows = []
    for i, n in enumerate(names):
        top1, loss = evaluate(n)
        rows.append(
            {
                "layer": n,
                "top1": top1,
                "loss": loss,
                "top1_drop": top1_f - top1,
                "loss_increase": loss - loss_f,
                "_order": i,
            }
        )
    rows.sort(key=lambda r: (-r["top1_drop"], -r["loss_increase"], r["_order"]))
    ranked = [
        {"rank": r + 1, **{k: v for k, v in row.items() if k != "_order"}} for r, row in enumerate(rows)
    ]
    return OneAtATime(
        [r["layer"] for r in ranked],
        ranked,
        top1_f,
        loss_f,
        len(names) + 1,
        time.perf_counter() - t0,
        time.process_time() - c0,
    )
