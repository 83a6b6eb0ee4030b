"""QuantuneV2 (arXiv 2501.07161): layer sensitivity from two inference passes, and top-k mixed precision.

* :mod:`.metrics`: SQNR, MSE, dSQNR as pure functions and their streaming sums;
* :mod:`.units`: the unfused graph (conv, bn, relu, linear) and the fused layer each op deploys in;
* :mod:`.record`: the float and the quantized pass, observed by hooks;
* :mod:`.analyze`: per-op and per-layer metrics and the ranked list;
* :mod:`.ranking`: the configurable combination rule, Spearman and top-k overlap;
* :mod:`.assign`: top-k most sensitive layers high, the rest low -> PrecisionConfig;
* :mod:`.baseline`: the one-layer-at-a-time accuracy ranking (n + 1 evaluations) it replaces;
* :mod:`.grouping`: the deployed network (tensors at their activation group's precision) every analysis and
  evaluation runs on, and which quantizers each layer's decision owns;
* :mod:`.quality`: rankings judged by the top-1 of the top-k assignments they choose (against random ones).
"""

from harness.search.quantune.analyze import Sensitivity, analyze
from harness.search.quantune.assign import bit_pair, topk_config
from harness.search.quantune.baseline import OneAtATime, one_at_a_time
from harness.search.quantune.metrics import NoiseStats, delta_sqnr, mse, sqnr
from harness.search.quantune.ranking import RankRule, spearman, topk_overlap

__all__ = [
    "NoiseStats",
    "OneAtATime",
    "RankRule",
    "Sensitivity",
    "analyze",
    "bit_pair",
    "delta_sqnr",
    "mse",
    "one_at_a_time",
    "spearman",
    "sqnr",
    "topk_config",
    "topk_overlap",
]


def _register() -> None:
    # imported lazily by harness.search's discovery of "quantune*" modules
    from harness.search import register_start
    from harness.search.quantune.pipeline import QuantuneParams, start

    register_start("quantune", check=lambda params: QuantuneParams.from_mapping(params) and None)(start)


_register()
