"""The decisions QuantMCU makes and what they cost: feature-map groups per patch branch, BitOPs, memory.

A *branch* is one patch's run through the patch stage. Its *feature maps* are the stage's activation groups
(:mod:`harness.search.activations`: tensors joined through weightless layers hold one precision, e.g. a residual
stream) whose tensors all live inside the stage: the input image (8-bit) and the group of the stage output
(one tensor shared by every patch, read by the rest of the network) keep the base precision. One decision is
the precision of one feature map in one branch.

BitOPs follow the project's accounting (:mod:`harness.quant.accounting`): ``MACs * a_bits * w_bits`` for
conv/linear layers, none for add/avgpool; a layer's MACs in a branch are the MACs of its patch window (so the
recomputed overlap is counted, as it is executed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from harness.graph.spec import INPUT
from harness.patch.intmodel import PatchedModel, layer_specs, stage_tensors
from harness.patch.liveness import build_steps, peak_memory, row_bytes
from harness.search.activations import activation_groups


@dataclass(frozen=True)
class FeatureMap:
    """One decision unit of a branch: tensors that share a precision, and the weighted layers reading them."""

    index: int
    tensors: tuple[str, ...]
    readers: tuple[str, ...]  # weighted stage layers that read it (their a_bits)

    @property
    def name(self) -> str:
        return self.tensors[0] if len(self.tensors) == 1 else f"{self.tensors[0]}+{len(self.tensors) - 1}"


@dataclass(frozen=True)
class Branches:
    """Feature maps of the patch stage and the per-patch MACs of its weighted layers."""

    pm: PatchedModel
    maps: tuple[FeatureMap, ...]
    weighted: tuple[str, ...]  # weighted stage layers, in order
    macs: tuple[Mapping[str, int], ...]  # per patch: layer -> MACs of its window
    w_bits: Mapping[str, int]
    fixed_bits: Mapping[str, int]  # bits of tensors no decision changes (input, stage output group)

    @property
    def num_patches(self) -> int:
        return len(self.macs)

    def tensor_bits(self, bits: Mapping[int, int]) -> dict[str, int]:
        """Precision of every stage tensor of one branch given ``bits[map index]``."""
        out = dict(self.fixed_bits)
        for fm in self.maps:
            for t in fm.tensors:
                out[t] = bits[fm.index]
        return out

    def a_bits(self, layer: str, bits: Mapping[int, int]) -> int:
        src = self.pm.model.layers[self._index[layer]].inputs[0]
        return self.tensor_bits(bits)[src]

    @property
    def _index(self) -> dict[str, int]:
        return {layer.name: i for i, layer in enumerate(self.pm.model.layers)}

    def branch_bitops(self, p: int, bits: Mapping[int, int]) -> int:
        """BitOPs of patch ``p``'s branch with feature-map precisions ``bits``."""
        tb = self.tensor_bits(bits)
        model = self.pm.model
        idx = self._index
        return sum(
            self.macs[p][r] * tb[model.layers[idx[r]].inputs[0]] * self.w_bits[r] for r in self.weighted
        )

    def move_bitops(self, p: int, fm: FeatureMap, old: int, new: int) -> int:
        """BitOPs saved in branch ``p`` by lowering ``fm`` from ``old`` to ``new`` bits."""
        return sum(self.macs[p][r] * self.w_bits[r] for r in fm.readers) * (old - new)


def branches(pm: PatchedModel) -> Branches:
    """The decision units of ``pm``'s patch stage (tensors named as in the model)."""
    model, plan = pm.model, pm.plan
    specs = layer_specs(model)
    groups = activation_groups(specs)
    prod_tensor = {layer.name: layer.output for layer in model.layers}
    prod_tensor[INPUT] = model.input
    inside = set(stage_tensors(model, plan))
    stage = set(plan.stage)
    maps, fixed = [], {}
    for g, names in enumerate(groups.tensors):
        tensors = tuple(prod_tensor[n] for n in names)
        in_stage = [t for t in tensors if t in inside or t == model.input or t == pm.stage_output]
        if not in_stage:
            continue
        if all(t in inside for t in tensors):
            readers = tuple(r for r in groups.readers[g] if r in stage)
            maps.append(FeatureMap(len(maps), tensors, readers))
        else:
            for t in in_stage:
                fixed[t] = model.tensors[t].bits
    weighted = tuple(s.name for s in specs[: pm.n_stage] if s.has_weights)
    macs = tuple(
        {st.layer: st.macs for st in plan.schedule[p] if st.layer in weighted}
        for p in range(plan.num_patches)
    )
    w_bits = {layer.name: layer.w_bits for layer in model.layers[: pm.n_stage] if layer.weight is not None}
    return Branches(pm, tuple(maps), weighted, macs, w_bits, fixed)


def stage_memory(br: Branches, bits: list[Mapping[int, int]]) -> int:
    """Patch-stage peak SRAM (planner rule, input resident) with per-branch precisions ``bits[p]``: the full
    input and stage-output tensors plus the liveness peak of per-patch buffers, each sized for its largest patch.
    """
    pm = br.pm
    model, plan = pm.model, pm.plan
    by_out = {layer.name: layer.output for layer in model.layers}
    sizes: dict[str, int] = {INPUT: 0, plan.split: 0}
    for p in range(plan.num_patches):
        tb = br.tensor_bits(bits[p])
        for name in plan.stage[:-1]:
            t = by_out[name]
            h0, h1, w0, w1 = plan.windows[name][p]
            nb = (h1 - h0) * (w1 - w0) * row_bytes(model.tensors[t].shape[2], tb[t])
            sizes[name] = max(sizes.get(name, 0), nb)
    specs = layer_specs(model)[: pm.n_stage]
    work = peak_memory(build_steps(specs), sizes).peak
    return model.tensors[model.input].nbytes + model.tensors[pm.stage_output].nbytes + work
