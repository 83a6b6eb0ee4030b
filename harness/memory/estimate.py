"""What a model needs before it is built: the figures the fit check compares with a board."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MemoryEstimate:
    """What a model needs before it is built: arena and scratch in SRAM, its constant data (weights, bias,
    requantization, layer and tensor tables) in flash, and the kernels it runs (whose code the fit check measures
    by linking them: harness.build.fit)."""

    arena: int
    scratch: int = 0
    weights: int = 0
    kernels: tuple[str, ...] = ()
