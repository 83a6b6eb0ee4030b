"""Cost accounting of a layer graph under a precision configuration (pure functions over LayerSpecs).

Per layer: MACs (``LayerSpec.macs``: adds count one op per output element, pools one per window tap), BitOPs
``= MACs * a_bits * w_bits`` for conv/fc (0 for add/avgpool, which have no weights), parameter bytes at the
assigned precision (weights packed with byte-aligned rows in the IR layouts of :mod:`harness.ir.model`, plus
the int32 bias; the per-channel requantization multiplier/shift are reported apart), and activation bytes of
the tensors read and written. ``a_bits`` is the precision of the tensor the layer actually reads: a tensor read
by several layers carries the widest precision any of them asks for (``bits_from_config``), so a layer may
read wider than its configured ``a_bits``. The peak SRAM is the layer-by-layer liveness peak of
:func:`harness.memory.liveness.layer_by_layer_peak` (a tensor lives from its producer to its last consumer), the
same rule as the firmware's arena planner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from torch import nn

from harness import ops
from harness.graph.spec import INPUT, LayerSpec
from harness.graph.trace import extract_layers
from harness.ir.packing import packed_nbytes
from harness.memory.liveness import LIVENESS, MemoryRule, bits_from_config, layer_by_layer_peak, tensor_bytes


@dataclass(frozen=True)
class LayerCost:
    """Costs of one layer at its precision."""

    name: str
    op: str
    a_bits: int
    w_bits: int
    o_bits: int
    macs: int
    bitops: int
    params: int
    weight_bytes: int
    bias_bytes: int
    requant_bytes: int
    in_bytes: int
    out_bytes: int

    @property
    def param_bytes(self) -> int:
        """Weights (packed) + int32 bias."""
        return self.weight_bytes + self.bias_bytes


def layer_costs(specs: Sequence[LayerSpec], config: Mapping[str, tuple[int, int]] | None = None
                ) -> list[LayerCost]:
    """Per-layer costs; layers missing from ``config`` (or all, if it is None) are 8-bit."""
    config = dict(config or {})
    tbits = bits_from_config(specs, config)
    out = []
    for s in specs:
        a = tbits[s.inputs[0]]
        o = tbits[s.name]
        w = int(config[s.name][1]) if s.name in config else 8
        in_b = sum(tensor_bytes(*(_shape_of(specs, t, s)), tbits[t]) for t in s.inputs)
        out_b = tensor_bytes(*s.out_shape, o)
        op = ops.get(s.op)
        rb = op.requant_bytes(s.out_shape[2])
        if op.weighted:
            wb, bb = packed_nbytes(s.weight_shape, w), 4 * s.out_shape[2]
            bitops = s.macs * a * w
        else:
            w, wb, bb, bitops = 0, 0, 0, 0
        out.append(LayerCost(s.name, s.op, a, w, o, s.macs, bitops, s.params, wb, bb, rb, in_b, out_b))
    return out


def _shape_of(specs: Sequence[LayerSpec], tensor: str, reader: LayerSpec) -> tuple[int, int, int]:
    if tensor == INPUT:
        return reader.in_shape
    return next(s.out_shape for s in specs if s.name == tensor)


def account(specs: Sequence[LayerSpec], config: Mapping[str, tuple[int, int]] | None = None,
            rule: MemoryRule = LIVENESS) -> dict:
    """Totals and per-layer rows: MACs, BitOPs, parameter bytes, activation bytes, peak SRAM (layer by layer)."""
    costs = layer_costs(specs, config)
    tbits = bits_from_config(specs, dict(config or {}))
    peak = layer_by_layer_peak(list(specs), tbits, rule)
    return {
        "macs": sum(c.macs for c in costs if ops.get(c.op).weighted),
        "ops_all": sum(c.macs for c in costs),
        "bitops": sum(c.bitops for c in costs),
        "params": sum(c.params for c in costs),
        "weight_bytes": sum(c.weight_bytes for c in costs),
        "bias_bytes": sum(c.bias_bytes for c in costs),
        "param_bytes": sum(c.param_bytes for c in costs),
        "requant_bytes": sum(c.requant_bytes for c in costs),
        "activation_bytes": sum(c.out_bytes for c in costs),
        "peak_sram_bytes": peak.peak,
        "peak_step": peak.step,
        "layers": [{**asdict(c), "param_bytes": c.param_bytes} for c in costs],
    }


def account_model(model: nn.Module, config: Mapping[str, tuple[int, int]] | None = None,
                  input_shape: tuple[int, int, int] | None = None, rule: MemoryRule = LIVENESS) -> dict:
    """:func:`account` of a float model's traced graph."""
    return account(extract_layers(model, input_shape), config, rule)
