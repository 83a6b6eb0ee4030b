"""The unfused graph QuantuneV2 analyses, and which deployed (fused) layer each unfused op belongs to.

Analysis runs on the unfused graph: every Conv2d, BatchNorm2d, ReLU/ReLU6 and Linear module is observed on its
own. Deployment fuses Conv+BN+ReLU into one kernel whose precision a
:class:`~harness.precision.config.PrecisionConfig` sets under the conv's name, so each BN/ReLU is attributed to the
conv whose output it directly consumes (the same rule ``harness.graph.trace`` fuses by). An activation after a
residual add has no conv to belong to: it is observed (``owner=None``) but not ranked.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from torch import fx, nn

from harness.errors import UnsupportedLayerError

OBSERVED: tuple[tuple[type[nn.Module], str], ...] = (
    (nn.Conv2d, "conv"),
    (nn.Linear, "linear"),
    (nn.BatchNorm2d, "bn"),
    (nn.ReLU, "relu"),
    (nn.ReLU6, "relu"),
)
WEIGHTED_KINDS = ("conv", "linear")
# modules that change neither values nor which fused layer a tensor belongs to
_TRANSPARENT = (nn.Identity, nn.Dropout, nn.Dropout2d)


@dataclass(frozen=True)
class UnfusedOp:
    """One observed module call, in execution order."""

    key: str  # the module's qualified name; "name#i" for the i-th call of a module called more than once
    module: str  # qualified module name (what hooks attach to)
    kind: str  # "conv", "linear", "bn" or "relu"
    owner: (
        str | None
    )  # the conv/linear (PrecisionConfig key) it deploys fused into; None if it fuses into none
    call: int = 0  # which call of ``module`` within one forward pass


def _kind(mod: nn.Module) -> str | None:
    for cls, kind in OBSERVED:
        if isinstance(mod, cls):
            return kind
    return None


def unfused_ops(model: nn.Module) -> list[UnfusedOp]:
    """The observed module calls of ``model`` in execution order, each with the fused layer it belongs to."""
    try:
        gm = fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001 - any tracing failure means the model cannot be analysed
        raise UnsupportedLayerError(
            f"{type(model).__name__} cannot be traced by torch.fx for sensitivity analysis: {e}"
        ) from None
    modules = dict(model.named_modules())
    calls = Counter(
        str(n.target)
        for n in gm.graph.nodes
        if n.op == "call_module" and _kind(modules[str(n.target)]) is not None
    )
    for name, n in calls.items():
        if n > 1 and _kind(modules[name]) in WEIGHTED_KINDS:
            raise UnsupportedLayerError(
                f"module {name!r} ({type(modules[name]).__name__}) is called {n} times in one forward pass; "
                "a weight-shared layer cannot take one precision per call"
            )

    owner_of: dict[fx.Node, str | None] = {}  # node -> conv/linear its value is the (partial) fused output of
    seen: Counter = Counter()
    ops: list[UnfusedOp] = []
    for node in gm.graph.nodes:
        if node.op != "call_module":
            owner_of[node] = None
            continue
        name = str(node.target)
        mod = modules[name]
        kind = _kind(mod)
        src = node.args[0] if node.args else None
        # a BN/ReLU fuses into the conv chain it reads only when nothing else reads that value
        chained = owner_of.get(src) if isinstance(src, fx.Node) and len(src.users) == 1 else None
        if kind in WEIGHTED_KINDS:
            owner: str | None = name
        elif kind in ("bn", "relu"):
            owner = chained
        elif isinstance(mod, _TRANSPARENT):
            owner_of[node] = owner_of.get(src) if isinstance(src, fx.Node) else None
            continue
        else:
            owner_of[node] = None
            continue
        owner_of[node] = owner
        i = seen[name]
        seen[name] += 1
        key = name if calls[name] == 1 else f"{name}#{i}"
        ops.append(UnfusedOp(key, name, kind, owner, i))
    if not any(op.kind in WEIGHTED_KINDS for op in ops):
        raise UnsupportedLayerError(f"{type(model).__name__} has no Conv2d or Linear module to rank")
    return ops


def ranked_layers(ops: list[UnfusedOp]) -> list[str]:
    """The conv/linear names (PrecisionConfig keys) in execution order."""
    return [op.module for op in ops if op.kind in WEIGHTED_KINDS]
