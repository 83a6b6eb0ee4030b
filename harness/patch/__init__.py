"""Patch-based inference planning (MCUNetV2): windows per patch, recomputation, and peak SRAM."""

from harness.memory.liveness import LIVENESS, TINYENGINE, MemoryRule, bits_from_config, layer_by_layer_peak
from harness.patch.plan import PatchPlan, PatchStep, plan_patches, valid_splits
from harness.patch.report import describe
from harness.patch.search import SearchSummary, search_patch_plans, summarize_search

__all__ = [
    "LIVENESS",
    "TINYENGINE",
    "MemoryRule",
    "PatchPlan",
    "PatchStep",
    "SearchSummary",
    "bits_from_config",
    "describe",
    "layer_by_layer_peak",
    "plan_patches",
    "search_patch_plans",
    "summarize_search",
    "valid_splits",
]
