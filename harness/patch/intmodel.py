"""Patch-based inference of an integer model: the IntModel <-> LayerSpec bridge and the per-patch model set.

The planner (:mod:`harness.patch.plan`) works on :class:`~harness.graph.spec.LayerSpec` lists whose tensors are
named after their producing layer; an :class:`~harness.ir.model.IntModel` names tensors freely. This module
converts one into the other and bundles what the code generator, the firmware and the patch reference need:

* :class:`PatchedModel`: the base integer model (layer table, rest of the network, stage input and output),
  a :class:`~harness.patch.plan.PatchPlan`, and one integer model per patch. A patch's model runs that patch's
  layer copies: the same graph and weights, but its own activation precisions, scales and requantization
  inside the patch stage (QuantMCU's per-patch branches). The input tensor, the stage-output tensor and every
  layer after the split are identical in all of them, so the patches fill one stage-output buffer and the rest
  of the network runs once, layer by layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from harness import ops
from harness.errors import ConfigError
from harness.graph.spec import INPUT, LayerSpec
from harness.ir.model import IntLayer, IntModel, TensorSpec
from harness.memory.liveness import LIVENESS, MemoryRule
from harness.patch.plan import PatchPlan, plan_patches


def producers(model: IntModel) -> dict[str, str]:
    """Tensor name -> the planner's name for it: its producing layer, or ``"input"`` for the model input."""
    out = {model.input: INPUT}
    for layer in model.layers:
        out[layer.output] = layer.name
    return out


def layer_specs(model: IntModel) -> list[LayerSpec]:
    """The planner's view of ``model``: one LayerSpec per layer, tensors named after their producer."""
    prod = producers(model)
    if INPUT in {layer.name for layer in model.layers}:
        raise ConfigError(f"a layer may not be called {INPUT!r}: the planner names the model input so")
    specs = []
    for layer in model.layers:
        missing = [t for t in layer.inputs if t not in prod]
        if missing:
            raise ConfigError(f"layer {layer.name!r} reads {missing}, which no earlier layer produces")
        act = layer.meta.get("act") if isinstance(layer.meta, Mapping) else None
        specs.append(
            LayerSpec(
                name=layer.name,
                op=layer.op,
                in_shape=tuple(model.in_spec(layer).shape),
                out_shape=tuple(model.out_spec(layer).shape),
                kernel=tuple(int(k) for k in layer.kernel),
                stride=int(layer.stride),
                padding=tuple(int(p) for p in layer.padding),
                inputs=tuple(prod[t] for t in layer.inputs),
                activation=None if act in (None, "none") else str(act),
            )
        )
    return specs


def tensor_bits_of(model: IntModel) -> dict[str, int]:
    """Bit-width of every tensor, keyed by the planner's names (for :func:`plan_patches`)."""
    prod = producers(model)
    return {prod[t]: model.tensors[t].bits for t in prod}


def plan_model(
    model: IntModel,
    split: str | int,
    n: int,
    rule: MemoryRule = LIVENESS,
    bits: Mapping[str, int] | None = None,
) -> PatchPlan:
    """Plan ``n x n`` patches for the stage ``model.layers[:split+1]`` at the model's own tensor precisions
    (or ``bits``, keyed by planner names)."""
    return plan_patches(
        layer_specs(model), split, n, tensor_bits_of(model) if bits is None else dict(bits), rule
    )


def stage_tensors(model: IntModel, plan: PatchPlan) -> list[str]:
    """Tensors written inside the patch stage, except the stage output (they exist per patch only)."""
    stage = set(plan.stage)
    return [layer.output for layer in model.layers if layer.name in stage and layer.name != plan.split]


def _same_tensor(a: TensorSpec, b: TensorSpec) -> bool:
    return (tuple(a.shape), a.bits, a.zero_point) == (tuple(b.shape), b.bits, b.zero_point)


def _same_layer(a: IntLayer, b: IntLayer) -> bool:
    if (a.name, a.op, list(a.inputs), a.output, tuple(a.kernel), a.stride, tuple(a.padding), a.w_bits) != (
        b.name,
        b.op,
        list(b.inputs),
        b.output,
        tuple(b.kernel),
        b.stride,
        tuple(b.padding),
        b.w_bits,
    ):
        return False
    return all(
        (x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))
        for x, y in ((a.weight, b.weight), (a.bias, b.bias), (a.multiplier, b.multiplier), (a.shift, b.shift))
    ) and (a.act_min, a.act_max, a.add) == (b.act_min, b.act_max, b.add)


@dataclass(frozen=True)
class PatchedModel:
    """A base model, its patch plan, and the integer model each patch's layer copies come from."""

    model: IntModel
    plan: PatchPlan
    patch_models: tuple[IntModel, ...]

    @classmethod
    def uniform(cls, model: IntModel, plan: PatchPlan) -> PatchedModel:
        """Every patch runs the base model's layers (MCUNetV2's patch-based inference)."""
        return cls(model, plan, tuple(model for _ in range(plan.num_patches)))

    def __post_init__(self) -> None:
        check_patched(self)

    @property
    def n_stage(self) -> int:
        return self.plan.split_index + 1

    @property
    def stage_output(self) -> str:
        """Name of the stage-output tensor (the split layer's output)."""
        return self.model.layers[self.plan.split_index].output

    def patch_bits(self, p: int) -> dict[str, int]:
        """Bit-width of every stage tensor in patch ``p``, keyed by tensor name."""
        m = self.patch_models[p]
        return {t: m.tensors[t].bits for t in stage_tensors(self.model, self.plan)}

    @property
    def is_uniform(self) -> bool:
        return all(m is self.model for m in self.patch_models)


def check_patched(pm: PatchedModel) -> None:
    """Check that the plan belongs to the model and that every patch model differs only inside the stage."""
    model, plan = pm.model, pm.plan
    names = [layer.name for layer in model.layers]
    if tuple(names[: plan.split_index + 1]) != tuple(plan.stage):
        raise ConfigError(
            f"the patch plan's stage {list(plan.stage)[:3]}... is not the first {plan.split_index + 1} layers of "
            f"model {model.name!r}"
        )
    if len(pm.patch_models) != plan.num_patches:
        raise ConfigError(f"{len(pm.patch_models)} patch models for a plan of {plan.num_patches} patches")
    inside = set(stage_tensors(model, plan))
    for p, m in enumerate(pm.patch_models):
        if m is model:
            continue
        if [layer.name for layer in m.layers] != names or (m.input, m.output) != (model.input, model.output):
            raise ConfigError(
                f"patch {p}: its model has a different layer list or input/output than the base"
            )
        for t, spec in model.tensors.items():
            if t not in inside and not _same_tensor(spec, m.tensors[t]):
                raise ConfigError(
                    f"patch {p}: tensor {t!r} differs from the base model but lies outside the patch stage "
                    "(only stage-internal tensors may change per patch)"
                )
        for i, (a, b) in enumerate(zip(model.layers, m.layers)):
            if i > plan.split_index and not _same_layer(a, b):
                raise ConfigError(f"patch {p}: layer {a.name!r} after the split differs from the base model")
            if i <= plan.split_index and (a.op, a.w_bits, tuple(a.kernel), a.stride) != (
                b.op,
                b.w_bits,
                tuple(b.kernel),
                b.stride,
            ):
                raise ConfigError(
                    f"patch {p}: stage layer {a.name!r} changes op, weights' bits, kernel or stride"
                )
            if i <= plan.split_index and a.weight is not None and not np.array_equal(a.weight, b.weight):
                raise ConfigError(f"patch {p}: stage layer {a.name!r} has other weights (weights are shared)")


def patched_model(
    model: IntModel,
    split: str | int,
    n: int,
    patch_models: Sequence[IntModel] | None = None,
    rule: MemoryRule = LIVENESS,
) -> PatchedModel:
    """Plan ``model`` and bundle it with its per-patch models (``None``: every patch runs the base model)."""
    plan = plan_model(model, split, n, rule)
    if patch_models is None:
        return PatchedModel.uniform(model, plan)
    return PatchedModel(model, plan, tuple(patch_models))


def patched_bitops(pm: PatchedModel) -> int:
    """BitOPs of patch-based inference as executed: ``MACs * a_bits * w_bits`` of every conv/linear layer copy
    on its patch window (recomputed overlap included, each patch at its own precision), plus the rest of the
    network layer by layer. Add/avgpool count none (:mod:`harness.quant.accounting`)."""
    total = 0
    for p, steps in enumerate(pm.plan.schedule):
        m = pm.patch_models[p]
        for layer, st in zip(m.layers, steps):
            if layer.weight is not None:
                total += st.macs * m.a_bits(layer) * layer.w_bits
    for layer in pm.model.layers[pm.n_stage :]:
        if layer.weight is not None:
            total += ops.macs(pm.model, layer) * pm.model.a_bits(layer) * layer.w_bits
    return int(total)


def patched_macs(pm: PatchedModel) -> int:
    """MACs of patch-based inference as executed (the stage once per patch, the rest once)."""
    return int(
        pm.plan.stage_macs_patched + sum(ops.macs(pm.model, layer) for layer in pm.model.layers[pm.n_stage :])
    )
