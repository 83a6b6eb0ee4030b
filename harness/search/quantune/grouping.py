"""The network QuantuneV2 analyses and evaluates is the one that deploys: activation tensors at their group's
precision (:mod:`harness.precision.groups`).

The quantizer's own rule (:func:`harness.quant.qnet.apply_config`) keeps a tensor that only an add or a pool reads
at 8 bits; deployment and the latency table join it to the group it flows into (a MobileNetV2 projection output
joins the residual stream the next block's expand reads), so it holds that group's precision. The probe, the
one-at-a-time template and every evaluated assignment are therefore built here, with grouped bits. A group is
one decision: its precision is what its conv/linear readers ask for, so the noise of every quantizer in it
belongs to those readers (:func:`input_group_tensors`).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from harness.graph.spec import INPUT, LayerSpec
from harness.precision.config import PrecisionConfig
from harness.precision.groups import activation_groups, grouped_tensor_bits
from harness.quant.qnet import QuantNet, quantize_model


def quantize_grouped(model: nn.Module, config: PrecisionConfig) -> QuantNet:
    """The (uncalibrated) fake-quant network of ``model`` at ``config``, every tensor at its group's
    precision. ``config`` must be consistent (readers of one group agree: :func:`~harness.precision.groups.
    harmonize` makes it so)."""
    q = quantize_model(model, config)
    for t, b in grouped_tensor_bits(q.specs, config).items():
        q.act(t).bits = b
    return q


def input_group_tensors(specs: Sequence[LayerSpec], input_fixed: bool = True) -> dict[str, tuple[str, ...]]:
    """Per conv/linear: the tensors of the activation group it reads (its own input first). With
    ``input_fixed`` the network input's group belongs to no decision (it arrives as int8): empty."""
    groups = activation_groups(specs)
    out: dict[str, tuple[str, ...]] = {}
    for s in specs:
        if not s.has_weights:
            continue
        own = s.inputs[0]
        g = groups.group_of[own]
        members = groups.tensors[g]
        if input_fixed and INPUT in members:
            out[s.name] = ()
            continue
        out[s.name] = (own, *(t for t in members if t != own))
    return out
