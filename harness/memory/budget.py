"""Memory accounting for the searches: parameter bytes (flash) and peak activation SRAM, pure functions.

These are the searches' default, layer-by-layer approximations (packed weights as in ``harness.ir.model``
plus a fixed per-output-channel overhead for bias, multiplier and shift; tensors live from their producer to
their last reader). A caller with a finer accounting (patch-based inference, the code generator's exact
layout) passes its own functions to :func:`make_fits`; the searches only ever see ``fits(config) -> bool``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from harness.graph.spec import INPUT, LayerSpec
from harness.precision.config import PrecisionConfig
from harness.precision.groups import ActivationGroups, activation_groups, group_bits

PER_CHANNEL_BYTES = 12  # int32 bias + int32 multiplier + int32 shift per output channel

FitsFn = Callable[[PrecisionConfig], bool]


def weight_rows(spec: LayerSpec) -> tuple[int, int]:
    """``(rows, row_length)`` of a layer's weight array; each row starts at a byte boundary when packed."""
    kh, kw = spec.kernel
    ic, oc = spec.in_shape[2], spec.out_shape[2]
    if spec.op == "conv2d":
        return oc * kh * kw, ic
    if spec.op == "depthwise":
        return kh * kw, oc
    if spec.op in ("pointwise", "fc"):
        return oc, ic
    return 0, 0


def layer_param_bytes(spec: LayerSpec, w_bits: int, per_channel_bytes: int = PER_CHANNEL_BYTES) -> int:
    """Flash bytes of one layer's packed weights and per-channel constants (0 for add/avgpool)."""
    rows, n = weight_rows(spec)
    if not rows:
        return 0
    return rows * ((n * w_bits + 7) // 8) + spec.out_shape[2] * per_channel_bytes


def param_bytes(
    layers: Sequence[LayerSpec], config: PrecisionConfig, per_channel_bytes: int = PER_CHANNEL_BYTES
) -> int:
    """Flash bytes of all weights under ``config``."""
    return sum(layer_param_bytes(s, config[s.name][1], per_channel_bytes) for s in layers if s.has_weights)


def tensor_bytes(shape: tuple[int, int, int], bits: int) -> int:
    """Packed bytes of an (H, W, C) tensor: each pixel's channel row starts at a byte boundary."""
    h, w, c = shape
    return h * w * ((c * bits + 7) // 8)


def tensor_shapes(layers: Sequence[LayerSpec]) -> dict[str, tuple[int, int, int]]:
    """Shape of every tensor, the network input included."""
    shapes = {s.name: s.out_shape for s in layers}
    for s in layers:
        if INPUT in s.inputs:
            shapes[INPUT] = s.in_shape
            break
    return shapes


def live_sets(layers: Sequence[LayerSpec]) -> list[list[str]]:
    """Tensors held in SRAM while each layer runs (layer by layer): its inputs, its output and every tensor
    produced earlier that a later layer still reads. Tensors nobody reads (network outputs) stay to the
    end."""
    n = len(layers)
    born = {INPUT: -1, **{s.name: i for i, s in enumerate(layers)}}
    read_last = {p: i for i, s in enumerate(layers) for p in s.inputs}
    last = {
        t: read_last.get(t, n) for t in born
    }  # a tensor nobody reads is a network output: kept to the end
    return [[t for t in born if born[t] <= i <= last[t]] for i in range(n)]


def peak_sram_bytes(
    layers: Sequence[LayerSpec],
    config: PrecisionConfig,
    *,
    output_bits: int = 8,
    groups: ActivationGroups | None = None,
) -> int:
    """Largest sum of live activation bytes over the layers, each tensor at its group's precision."""
    groups = groups or activation_groups(layers)
    gb = group_bits(groups, config, output_bits=output_bits)
    shapes = tensor_shapes(layers)
    return max(
        (sum(tensor_bytes(shapes[t], gb[groups.group_of[t]]) for t in live) for live in live_sets(layers)),
        default=0,
    )


def make_fits(
    layers: Sequence[LayerSpec],
    *,
    flash_bytes: int | None = None,
    sram_bytes: int | None = None,
    param_bytes_fn: Callable[[Sequence[LayerSpec], PrecisionConfig], int] = param_bytes,
    peak_sram_fn: Callable[[Sequence[LayerSpec], PrecisionConfig], int] = peak_sram_bytes,
) -> FitsFn:
    """``fits(config)``: parameter bytes within ``flash_bytes`` and peak activations within ``sram_bytes``
    (either budget may be None: unbounded). Pass the accounting module's functions for exact figures."""
    layers = list(layers)

    def fits(config: PrecisionConfig) -> bool:
        if flash_bytes is not None and param_bytes_fn(layers, config) > flash_bytes:
            return False
        return sram_bytes is None or peak_sram_fn(layers, config) <= sram_bytes

    return fits
