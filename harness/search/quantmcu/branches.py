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
from harness.codegen.emit_patch import plan_patch_arena
from harness.errors import ConfigError
from harness.graph.spec import INPUT
from harness.ir.model import IntModel
from harness.patch.intmodel import PatchedModel, layer_specs, stage_tensors
from harness.patch.rebits import spec_at_bits
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


def planned_model(
    br: Branches, bits: list[Mapping[int, int]], rest_bits: Mapping[int, int] | None = None
) -> PatchedModel:
    """The patch-based model of a search state as the memory planner sees it: every tensor at its searched
    bit-width (``bits[p]`` per branch, ``rest_bits`` for the shared rest), layers and weights untouched.

    Only shapes and bits decide where the firmware puts a buffer, so the tensors keep the base's range (the
    requantization is redone only for the model that runs, :func:`~harness.search.quantmcu.build.
    patched_from_config`)."""
    base = br.pm.model
    model = base
    if rest_bits and br.rest is not None:
        tensors = dict(base.tensors)
        for fm in br.rest.maps:
            for t in fm.tensors:
                tensors[t] = spec_at_bits(base.tensors[t], int(rest_bits[fm.index]))
        model = IntModel(tensors, base.layers, base.input, base.output, base.name)
    models = []
    for p in range(br.num_patches):
        tensors = dict(model.tensors)
        changed = False
        for fm in br.maps:
            b = int(bits[p][fm.index])
            for t in fm.tensors:
                if b != tensors[t].bits:
                    tensors[t] = spec_at_bits(tensors[t], b)
                    changed = True
        models.append(
            IntModel(tensors, model.layers, model.input, model.output, model.name) if changed else model
        )
    return PatchedModel(model, br.pm.plan, tuple(models))


def sram_need(br: Branches, bits: list[Mapping[int, int]], rest_bits: Mapping[int, int] | None = None) -> int:
    """SRAM bytes the firmware's patch-based arena needs at a search state: the arena as the code generator
    lays it out (:func:`~harness.codegen.emit_patch.plan_patch_arena`: first-fit placement of the full input,
    the stage output, the per-patch buffers of each patch's precisions with their window copies, and the rest of
    the network), the per-step result tables and the kernels' scratch buffer. This is what the fit check adds
    the runtime and the stack to (:attr:`~harness.codegen.artifact.Artifact.estimate`), so a budget of the
    board's SRAM less those two is exactly the build's limit."""
    arena = plan_patch_arena(planned_model(br, bits, rest_bits))
    return int(arena.arena_bytes + arena.result_bytes + arena.scratch_bytes)
