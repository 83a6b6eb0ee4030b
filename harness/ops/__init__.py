"""The operator registry: one :class:`~harness.ops.base.OpDef` per IR operator, one module each.

``get(kind)`` is the only way the rest of tinyhil learns an operator's facts (weights, MACs, reference kernel,
C kernel, table fields). To add an operator: write ``harness/ops/<kind>.py`` with an ``OP`` instance, list it in
``_MODULES`` below, and add its C kernel under ``firmware/runtime/kernels/`` (see docs/architecture.md).
"""

from __future__ import annotations

from harness.errors import UnsupportedLayerError
from harness.ir.model import IntLayer, IntModel
from harness.ops import add, avgpool, conv2d, depthwise, fc, pointwise
from harness.ops.base import VARIANTS, OpDef

_MODULES = (conv2d, depthwise, pointwise, fc, add, avgpool)
REGISTRY: dict[str, OpDef] = {m.OP.kind: m.OP for m in _MODULES}
#: Every operator kind, in registry order.
OPS: tuple[str, ...] = tuple(REGISTRY)
#: The operators with weights (and a kernel per (a_bits, w_bits) pair).
WEIGHTED_OPS: tuple[str, ...] = tuple(k for k, op in REGISTRY.items() if op.weighted)

__all__ = ["OPS", "REGISTRY", "VARIANTS", "WEIGHTED_OPS", "OpDef", "get", "kernel_symbol", "macs"]


def get(kind: str) -> OpDef:
    """The operator ``kind``; UnsupportedLayerError naming the supported ones otherwise."""
    try:
        return REGISTRY[kind]
    except KeyError:
        raise UnsupportedLayerError(f"unknown op {kind!r} (supported: {', '.join(OPS)})") from None


def macs(model: IntModel, layer: IntLayer) -> int:
    """Multiply-accumulates of one integer layer."""
    return get(layer.op).macs(
        tuple(model.in_spec(layer).shape), tuple(model.out_spec(layer).shape), tuple(layer.kernel)
    )


def kernel_symbol(op: str, a_bits: int, w_bits: int, variant: str = "opt") -> str:
    """The C kernel for a layer: ``th_<op>_a<A>w<W>``; ``variant='ref'`` picks ``th_<op>_ref`` for a8w8."""
    return get(op).kernel_symbol(a_bits, w_bits, variant)
