"""The decisions QuantMCU makes and what they cost: feature-map groups per patch branch, BitOPs, memory.

A *branch* is one patch's run through the patch stage. Its *feature maps* are the stage's activation groups
(:mod:`harness.precision.groups`: tensors joined through weightless layers hold one precision, e.g. a residual
stream) whose tensors all live inside the stage: the input image (8-bit) and the group of the stage output
(one tensor shared by every patch, read by the rest of the network) keep the base precision. One decision is
the precision of one feature map in one branch.

With ``scope="network"`` the feature maps after the patch stage (the stage output's group included; not the
input, not the logits) form one more, shared branch, :class:`RestBranch`: each is one decision for all
patches, searched like a branch of its own (VDPC does not apply: it is not a patch).

BitOPs follow the project's accounting (:mod:`harness.quant.accounting`): ``MACs * a_bits * w_bits`` for
conv/linear layers, none for add/avgpool; a layer's MACs in a branch are the MACs of its patch window (so the
recomputed overlap is counted, as it is executed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from harness import ops
from harness.errors import ConfigError
from harness.graph.spec import INPUT
from harness.memory.liveness import build_steps, peak_memory, row_bytes
from harness.patch.intmodel import PatchedModel, layer_specs, stage_tensors
from harness.precision.groups import activation_groups

SCOPES = ("stage", "network")


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
class RestBranch:
    """The network after the patch stage as one shared branch (``scope="network"``)."""

    maps: tuple[FeatureMap, ...]
    weighted: tuple[str, ...]  # weighted layers after the split
    macs: Mapping[str, int]
    w_bits: Mapping[str, int]
    a_tensor: Mapping[str, str]  # weighted layer -> the tensor it reads

    def bitops(self, bits: Mapping[int, int]) -> int:
        """BitOPs of the rest with ``bits[map index]`` (unlisted tensors at their base precision: 8)."""
        tb = {t: bits[fm.index] for fm in self.maps for t in fm.tensors}
        return sum(self.macs[r] * tb.get(self.a_tensor[r], 8) * self.w_bits[r] for r in self.weighted)

    def move_bitops(self, fm: FeatureMap, old: int, new: int) -> int:
        return sum(self.macs[r] * self.w_bits[r] for r in fm.readers) * (old - new)


@dataclass(frozen=True)
class Branches:
    """Feature maps of the patch stage and the per-patch MACs of its weighted layers."""

    pm: PatchedModel
    maps: tuple[FeatureMap, ...]
    weighted: tuple[str, ...]  # weighted stage layers, in order
    macs: tuple[Mapping[str, int], ...]  # per patch: layer -> MACs of its window
    w_bits: Mapping[str, int]
    fixed_bits: Mapping[str, int]  # bits of tensors no branch decision changes (input, stage output group)
    rest: RestBranch | None = None

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


def branches(pm: PatchedModel, scope: str = "stage") -> Branches:
    """The decision units of ``pm``'s patch stage (tensors named as in the model); with ``scope="network"``
    also those of the rest of the network, as one shared branch."""
    if scope not in SCOPES:
        raise ConfigError(f"scope must be one of {SCOPES}, got {scope!r}")
    model, plan = pm.model, pm.plan
    specs = layer_specs(model)
    groups = activation_groups(specs)
    prod_tensor = {layer.name: layer.output for layer in model.layers}
    prod_tensor[INPUT] = model.input
    inside = set(stage_tensors(model, plan))
    stage = set(plan.stage)
    maps, fixed, rest_maps = [], {}, []
    for g, names in enumerate(groups.tensors):
        tensors = tuple(prod_tensor[n] for n in names)
        in_stage = [t for t in tensors if t in inside or t == model.input or t == pm.stage_output]
        if scope == "network" and model.input not in tensors and not any(t in inside for t in tensors):
            readers = tuple(r for r in groups.readers[g] if r not in stage)
            if readers:
                rest_maps.append(FeatureMap(len(rest_maps), tensors, readers))
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
    rest = None
    if rest_maps:
        after = [layer for layer in model.layers[pm.n_stage :] if layer.weight is not None]
        rest = RestBranch(
            tuple(rest_maps),
            tuple(x.name for x in after),
            {x.name: ops.macs(model, x) for x in after},
            {x.name: x.w_bits for x in after},
            {x.name: x.inputs[0] for x in after},
        )
    return Branches(pm, tuple(maps), weighted, macs, w_bits, fixed, rest)


def stage_memory(
    br: Branches, bits: list[Mapping[int, int]], rest_bits: Mapping[int, int] | None = None
) -> int:
    """Patch-stage peak SRAM (planner rule, input resident) with per-branch precisions ``bits[p]``: the full
    input and stage-output tensors plus the liveness peak of per-patch buffers, each sized for its largest patch.
    ``rest_bits`` (decisions of the shared rest branch) may lower the stage-output tensor.
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
    out = model.tensors[pm.stage_output]
    out_bits = out.bits
    if rest_bits and br.rest is not None:
        for fm in br.rest.maps:
            if pm.stage_output in fm.tensors:
                out_bits = rest_bits[fm.index]
    out_bytes = out.shape[0] * out.shape[1] * row_bytes(out.shape[2], out_bits)
    return model.tensors[model.input].nbytes + out_bytes + work
