"""Arena planning: where each activation tensor lives in the firmware's static arena, and the scratch size.

A tensor is live from the step that produces it (the model input: step 0) to the last step that reads it (the
model output: the last step). Tensors whose lifetimes overlap must not share bytes; the others may. Offsets are
assigned greedily, largest tensor first, each at the lowest 4-byte-aligned offset that clears every already
placed tensor it overlaps in time. ``peak_bytes`` is the true lower bound (the most bytes live at once);
``arena_bytes`` is what the plan needs (equal to the peak for chains, sometimes a little more).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from harness.errors import InternalError
from harness.ir.model import IntLayer, IntModel
from harness.native.host_c import scratch_bytes as c_scratch_bytes
from harness.ops.validate import validate_model

ALIGN = 4


def _align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


@dataclass
class ArenaPlan:
    """Offsets (bytes) of every used tensor in the arena, with the lifetimes that produced them."""

    offsets: dict[str, int]
    sizes: dict[str, int]
    lifetimes: dict[str, tuple[int, int]]  # (first step, last step), steps = layer indices
    arena_bytes: int
    peak_bytes: int
    scratch_bytes: int
    live_bytes: list[int] = field(default_factory=list)  # bytes live at each step

    def overlaps(self, a: str, b: str) -> bool:
        """Whether tensors ``a`` and ``b`` share arena bytes."""
        oa, ob = self.offsets[a], self.offsets[b]
        return oa < ob + self.sizes[b] and ob < oa + self.sizes[a]


def lifetimes(model: IntModel, keep_input: bool = False) -> dict[str, tuple[int, int]]:
    """``(first, last)`` step of every tensor the layers use. ``keep_input`` keeps the model input live to the
    end (so repeated inferences need not reload it)."""
    last_step = len(model.layers) - 1
    life: dict[str, list[int]] = {model.input: [0, 0]}
    for i, layer in enumerate(model.layers):
        for t in layer.inputs:
            life.setdefault(t, [i, i])[1] = i
        life[layer.output] = [i, i]
    life[model.output][1] = last_step
    if keep_input:
        life[model.input][1] = last_step
    return {k: (v[0], v[1]) for k, v in life.items()}


def layer_scratch_bytes(model: IntModel, layer: IntLayer) -> int:
    """Scratch bytes the kernels of ``layer``'s op need: the firmware's own ``th_<op>_scratch_bytes`` (defined
    in C beside the kernels, called on the host through :func:`harness.native.host_c.scratch_bytes`)."""
    return c_scratch_bytes(model, layer)


def scratch_bytes(model: IntModel) -> int:
    """The scratch buffer size: the largest need of any layer (at least 4, so the C array is never empty)."""
    return max([ALIGN] + [layer_scratch_bytes(model, layer) for layer in model.layers])


def _place(order: list[str], sizes: Mapping[str, int], life: Mapping[str, tuple[int, int]]) -> dict[str, int]:
    """First fit in ``order``: each buffer at the lowest aligned offset clear of the placed ones it overlaps in time."""
    offsets: dict[str, int] = {}
    for t in order:
        s0, s1 = life[t]
        busy = sorted(
            (offsets[u], offsets[u] + sizes[u]) for u in offsets if life[u][0] <= s1 and s0 <= life[u][1]
        )
        off = 0
        for b0, b1 in busy:
            if off + sizes[t] <= b0:
                break
            off = max(off, _align(b1))
        offsets[t] = off
    return offsets


def greedy_place(sizes: Mapping[str, int], life: Mapping[str, tuple[int, int]]) -> tuple[dict[str, int], int]:
    """Offsets for buffers with lifetimes ``(first step, last step)``; returns ``(offsets, arena bytes)``.

    First fit under a few orders (largest first, longest-lived first, earliest first, largest area in
    bytes x steps first), keeping the smallest arena: no one order wins on every graph, and trying four costs
    nothing next to a build."""
    orders = (
        lambda t: (-sizes[t], life[t][0], t),
        lambda t: (-(life[t][1] - life[t][0]), -sizes[t], t),
        lambda t: (life[t][0], -sizes[t], t),
        lambda t: (-sizes[t] * (life[t][1] - life[t][0] + 1), t),
    )
    best: tuple[int, dict[str, int]] | None = None
    for key in orders:
        offsets = _place(sorted(sizes, key=key), sizes, life)
        end = max((_align(offsets[t] + sizes[t]) for t in offsets), default=0)
        if best is None or end < best[0]:
            best = (end, offsets)
    if best is None:
        raise InternalError("the arena placer tried no order")
    return best[1], best[0]


def plan_arena(model: IntModel, keep_input: bool = False, validate: bool = True) -> ArenaPlan:
    """Plan the arena for layer-by-layer execution with buffer reuse (greedy by size)."""
    if validate:
        validate_model(model)
    life = lifetimes(model, keep_input)
    sizes = {t: model.tensors[t].nbytes for t in life}
    offsets, arena = greedy_place(sizes, life)
    n_steps = len(model.layers)
    live = [sum(sizes[t] for t, (a, b) in life.items() if a <= i <= b) for i in range(n_steps)]
    return ArenaPlan(
        offsets=offsets,
        sizes=sizes,
        lifetimes=life,
        arena_bytes=max(arena, ALIGN),
        peak_bytes=max(live, default=0),
        scratch_bytes=scratch_bytes(model),
        live_bytes=live,
    )
