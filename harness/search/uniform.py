"""Uniform starting point: every conv/linear layer at the same (a_bits, w_bits)."""

from __future__ import annotations

from collections.abc import Sequence

from harness.graph.spec import INPUT, LayerSpec
from harness.precision.config import PrecisionConfig
from harness.precision.groups import activation_groups


def uniform_config(
    layers: Sequence[LayerSpec], a_bits: int = 8, w_bits: int = 8, *, input_bits: int | None = 8
) -> PrecisionConfig:
    """All weighted layers at ``(a_bits, w_bits)``; the layers reading the network input read it at
    ``input_bits`` (8: the image arrives as int8; None: at ``a_bits`` like the rest)."""
    groups = activation_groups(layers)
    first = set(groups.readers[groups.group_of[INPUT]])
    cfg = {
        n: (input_bits if (n in first and input_bits is not None) else a_bits, w_bits)
        for n in groups.weighted
    }
    return PrecisionConfig(cfg, meta={"method": f"uniform-a{a_bits}w{w_bits}"})
