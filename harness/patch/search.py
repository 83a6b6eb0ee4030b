"""Search over patch-stage splits and patch counts, and say plainly whether patch-based inference pays off."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from harness.errors import ConfigError
from harness.graph.spec import LayerSpec
from harness.memory.liveness import LIVENESS, MemoryRule, layer_by_layer_peak
from harness.patch.plan import PatchPlan, check_geometry, plan_patches, resolve_split, split_problem

DEFAULT_N = (2, 3, 4, 5, 6, 7, 8)


def search_patch_plans(
    layers: Sequence[LayerSpec],
    max_mac_overhead: float = 0.3,
    n_choices: Iterable[int] = DEFAULT_N,
    splits: Iterable[str | int] | None = None,
    bits: int | Mapping[str, int] = 8,
    rule: MemoryRule = LIVENESS,
) -> list[PatchPlan]:
    """Every (split, n) plan whose recomputed MACs stay within ``max_mac_overhead`` of the network's MACs.

    ``splits=None`` tries every valid split; ``n`` values larger than a stage's output are skipped. Sorted by
    patch-based peak SRAM, then by MAC overhead, then by fewer patches.
    """
    if max_mac_overhead < 0:
        raise ConfigError(f"max_mac_overhead must be >= 0, got {max_mac_overhead}")
    layers = list(layers)
    check_geometry(layers)
    if splits is None:
        idx = [i for i in range(len(layers)) if split_problem(layers, i) is None]
    else:
        idx = [resolve_split(layers, s) for s in splits]
    ns = sorted({int(n) for n in n_choices})
    if not ns or ns[0] < 1:
        raise ConfigError(f"n_choices must be positive integers, got {ns}")
    plans = []
    for s in idx:
        oh, ow, _ = layers[s].out_shape
        for n in ns:
            if n > min(oh, ow):
                continue
            plan = plan_patches(layers, s, n, bits, rule)
            if plan.mac_overhead <= max_mac_overhead:
                plans.append(plan)
    plans.sort(key=lambda p: (p.patch_peak, p.mac_overhead, p.n, p.split_index))
    return plans


@dataclass(frozen=True)
class SearchSummary:
    """The verdict of a search: the best plan (if any) against layer-by-layer inference."""

    layer_peak: int
    best: PatchPlan | None
    patch_wins: bool
    message: str


def summarize_search(
    layers: Sequence[LayerSpec],
    plans: Sequence[PatchPlan],
    bits: int | Mapping[str, int] = 8,
    rule: MemoryRule = LIVENESS,
) -> SearchSummary:
    """Compare the best plan in ``plans`` with layer-by-layer inference and say which needs less SRAM."""
    full = layer_by_layer_peak(layers, bits, rule)
    lp = full.peak
    if not plans:
        return SearchSummary(
            lp,
            None,
            False,
            f"no patch plan meets the constraints; layer-by-layer peak is {lp / 1024:.1f} KiB "
            f"(at {full.step})",
        )
    best = min(plans, key=lambda p: (p.patch_peak, p.mac_overhead))
    pp = best.patch_peak
    where = (
        f"split after {best.split} with {best.n}x{best.n} patches, {100 * best.mac_overhead:.1f} % extra MACs"
    )
    if pp >= lp:
        msg = (
            f"patch-based inference is NOT better: best patch-based peak {pp / 1024:.1f} KiB ({where}) >= "
            f"layer-by-layer peak {lp / 1024:.1f} KiB; run layer by layer"
        )
        return SearchSummary(lp, best, False, msg)
    msg = (
        f"patch-based inference wins: peak {pp / 1024:.1f} KiB ({where}) vs {lp / 1024:.1f} KiB layer by "
        f"layer ({lp / pp:.2f}x lower)"
    )
    return SearchSummary(lp, best, True, msg)
