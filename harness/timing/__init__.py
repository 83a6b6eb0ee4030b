"""Cycle-approximate timing of the emulated boards (``timer=qemu-cycles``).

A QEMU TCG plugin (``harness/timing/plugin``, C, built on demand by :mod:`harness.timing.plugin`) charges every
executed instruction its cost under a Cortex-M4 or Cortex-M7 model (``configs/timing/core``), every memory access
its cost under a timing profile (``configs/timing/<profile>.yaml``: wait states, caches, clock of a real chip), and
records the cycle count at the firmware's layer markers. :mod:`harness.timing.counter` wires it to a board;
:mod:`harness.timing.records` merges its records with the serial per-layer report.

This package sits low in the package graph: it imports only :mod:`harness.config.board` and :mod:`harness.errors`.
"""

from harness.timing.counter import BUILD_FLAGS, TIMER, CycleCounter, apply_timer
from harness.timing.model import CoreModel, load_core, model_version
from harness.timing.profile import TimingProfile, known_profiles, load_profile, profile_for_board
from harness.timing.records import LayerCount, RecordFile, layer_counts

__all__ = [
    "BUILD_FLAGS", "TIMER", "CoreModel", "CycleCounter", "LayerCount", "RecordFile", "TimingProfile", "apply_timer",
    "known_profiles", "layer_counts", "load_core", "load_profile", "model_version", "profile_for_board",
]
