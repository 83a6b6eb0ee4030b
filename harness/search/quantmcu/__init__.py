"""QuantMCU (arXiv 2401.13714): value-driven mixed precision for patch-based inference, without training.

``quantmcu(base, calib, params)`` takes the uniform 8-bit patch-based model (:class:`~harness.patch.intmodel.
PatchedModel`, MCUNetV2) and calibration inputs, classifies patches (VDPC, :mod:`.vdpc`), searches per-branch
feature-map precisions (VDQS, :mod:`.vdqs`) and returns the per-patch model the code generator and firmware run,
with its :class:`~harness.precision.config.PrecisionConfig` (``patches``: patch -> layer -> a_bits). Memory is
judged by the firmware's arena planner (:func:`sram_need`). :mod:`.finetune` trains the shared weights of a
configuration through the patch-based computation with every patch's precisions fixed.
"""

from harness.errors import ConfigError
from harness.search import register_check
from harness.search.quantmcu.branches import Branches, FeatureMap, branches, planned_model, sram_need
from harness.search.quantmcu.build import patched_from_config, to_config
from harness.search.quantmcu.pipeline import QuantMcuParams, QuantMcuResult, quantmcu
from harness.search.quantmcu.stats import CalibStats, collect
from harness.search.quantmcu.vdpc import Vdpc, classify
from harness.search.quantmcu.vdqs import Move, Vdqs, entropy_bits, measure, search

__all__ = [
    "PLAN_KEYS",
    "Branches",
    "CalibStats",
    "FeatureMap",
    "Move",
    "QuantMcuParams",
    "QuantMcuResult",
    "Vdpc",
    "Vdqs",
    "branches",
    "classify",
    "collect",
    "entropy_bits",
    "measure",
    "patched_from_config",
    "planned_model",
    "quantmcu",
    "search",
    "sram_need",
    "to_config",
]

#: Method options that choose the patch plan and the experiment's budget, not VDPC/VDQS themselves.
PLAN_KEYS = ("split", "n", "max_mac_overhead", "n_calib", "memory_budget")


def _check(params: dict) -> None:
    """The method's options, before any work starts (ConfigError naming the option)."""
    QuantMcuParams.from_mapping({k: v for k, v in params.items() if k not in PLAN_KEYS})
    budget = params.get("memory_budget", "board")
    if budget not in ("board", "none", None) and not str(budget).isdigit():
        raise ConfigError(f"method.memory_budget must be board, null or a number of bytes, got {budget!r}")
    if float(params.get("max_mac_overhead", 0.0)) < 0:
        raise ConfigError(f"method.max_mac_overhead must be >= 0, got {params['max_mac_overhead']}")


register_check("quantmcu", _check)
