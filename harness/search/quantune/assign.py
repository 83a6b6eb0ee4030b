"""From a ranked sensitivity list to a PrecisionConfig: the top-k most sensitive layers stay high, the rest go low."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.errors import ConfigError
from harness.graph.spec import INPUT, LayerSpec
from harness.precision.config import ALLOWED_BITS, PrecisionConfig

BitPair = tuple[int, int]  # (a_bits, w_bits)


def bit_pair(value: Any, what: str) -> BitPair:
    """``(a_bits, w_bits)`` from an int (both), a pair ``[a, w]`` or a mapping ``{a_bits, w_bits}``."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected bits, got {value!r}")
    if isinstance(value, int):
        pair = (value, value)
    elif isinstance(value, Mapping) and {"a_bits", "w_bits"} <= set(value):
        pair = (value["a_bits"], value["w_bits"])
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        pair = (value[0], value[1])
    else:
        raise ConfigError(f"{what}: expected an int, [a_bits, w_bits] or {{a_bits, w_bits}}, got {value!r}")
    try:
        a, w = int(pair[0]), int(pair[1])
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: bits must be integers, got {value!r}") from None
    if a not in ALLOWED_BITS or w not in ALLOWED_BITS:
        raise ConfigError(f"{what}: ({a}, {w}) not in {ALLOWED_BITS}")
    return a, w


def _pairs(layers: Sequence[LayerSpec], pair: BitPair, input_bits: int | None) -> dict[str, BitPair]:
    """Every conv/linear at ``pair``, a layer reading the image at ``input_bits`` (when given)."""
    out = {}
    for s in layers:
        if s.has_weights:
            a, w = pair
            out[s.name] = (input_bits if (INPUT in s.inputs and input_bits is not None) else a, w)
    return out


def fixed_layers(
    layers: Sequence[LayerSpec], high: BitPair, low: BitPair, input_bits: int | None = 8
) -> list[str]:
    """Conv/linear layers whose bits do not depend on being kept: at ``high`` and at ``low`` they run the same
    ``(a_bits, w_bits)`` (e.g. the layer reading the image when only activations differ). Keeping one costs
    nothing and changes nothing, so they are left out of the ``k`` budget."""
    hi, lo = (
        _pairs(layers, bit_pair(high, "high"), input_bits),
        _pairs(layers, bit_pair(low, "low"), input_bits),
    )
    return [n for n in hi if hi[n] == lo[n]]


def topk_config(
    ranking: Sequence[str],
    layers: Sequence[LayerSpec],
    k: int,
    high: BitPair = (8, 8),
    low: BitPair = (4, 4),
    *,
    input_bits: int | None = 8,
) -> PrecisionConfig:
    """Keep the first ``k`` names of ``ranking`` (most sensitive first) whose bits can change at ``high``, every
    other conv/linear at ``low``. Layers reading the network input read it at ``input_bits`` (8: the image
    arrives as int8; None: like the rest). Layers whose bits are the same either way (:func:`fixed_layers`) do
    not count against ``k``: it ranges over ``[0, changeable layers]``.

    The result is per-layer; readers of one shared activation may disagree, which
    :func:`harness.search.make_start` resolves by raising them to their maximum (``harmonize``).
    """
    weighted = [s.name for s in layers if s.has_weights]
    if sorted(ranking) != sorted(weighted) or len(set(ranking)) != len(ranking):
        missing = sorted(set(weighted) - set(ranking))
        extra = sorted(set(ranking) - set(weighted))
        raise ConfigError(
            f"the sensitivity ranking does not name this network's conv/linear layers once each "
            f"(missing {missing[:5]}, unknown {extra[:5]}); was it computed for another model?"
        )
    high, low = bit_pair(high, "high"), bit_pair(low, "low")
    if high[0] < low[0] or high[1] < low[1]:
        raise ConfigError(f"high precision {high} must not be below low precision {low}")
    if input_bits is not None and input_bits not in ALLOWED_BITS:
        raise ConfigError(f"input_bits must be one of {ALLOWED_BITS} or None, got {input_bits!r}")
    fixed = set(fixed_layers(layers, high, low, input_bits))
    changeable = [n for n in ranking if n not in fixed]
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= len(changeable):
        raise ConfigError(
            f"k must be an integer in [0, {len(changeable)}] (the conv/linear layers whose bits can change"
            f"{f'; {len(fixed)} cannot' if fixed else ''}), got {k!r}"
        )
    keep = set(changeable[:k])
    hi, lo = _pairs(layers, high, input_bits), _pairs(layers, low, input_bits)
    cfg: dict[str, BitPair] = {name: hi[name] if name in keep else lo[name] for name in weighted}
    meta = {
        "method": "quantune",
        "k": k,
        "high": list(high),
        "low": list(low),
        "kept_high": list(changeable[:k]),
        "fixed": sorted(fixed),
    }
    return PrecisionConfig(cfg, meta=meta)
