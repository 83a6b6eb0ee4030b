"""What a model needs before it is built: the figures the fit check compares with a board."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MemoryEstimate:
    """What a model needs before it is built: arena and scratch in SRAM, constant data (weights) in flash."""

    arena: int
    scratch: int = 0
    weights: int = 0
