"""One deployable artifact: what the code generator hands to a measuring session, for any kind of model.

An :class:`Artifact` holds the generated C sources, the memory estimate the fit check needs, the model hash the
firmware must report, a description of every layer the firmware will time (name, op, precisions, shapes, MACs)
and the integer reference of the model, which gives every layer's (and, patch-based, every (patch, step)'s)
expected output CRC-32 for an input. Layer-by-layer models (:func:`layer_artifact`) and patch-based ones
(:func:`patch_artifact`) produce the same type, so one session builds, flashes, runs and checks both.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness import ops
from harness.codegen.emit_c import estimate_footprint, model_hash, render_model_c, render_model_h
from harness.codegen.emit_patch import (
    PatchArena,
    estimate_patch_footprint,
    patch_model_hash,
    plan_patch_arena,
    render_patch_c,
)
from harness.ir.model import IntModel, TensorSpec
from harness.ir.packing import pack, packed_weights
from harness.memory.arena import ArenaPlan, layer_scratch_bytes, plan_arena
from harness.memory.estimate import MemoryEstimate
from harness.ops.validate import validate_model
from harness.patch.int_reference import layer_crcs, patch_crcs, run_patched
from harness.patch.intmodel import PatchedModel
from harness.reference.run import run_model


@dataclass(frozen=True)
class LayerInfo:
    """One layer the firmware times, as the artifact describes it."""

    index: int
    name: str
    op: str
    a_bits: int
    w_bits: int
    o_bits: int
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    macs: int  # patch-based stage layers: the MACs of all patches (recomputation included)


@dataclass(frozen=True)
class Expected:
    """What the firmware must report for one input: per-layer CRC-32s, per-(patch, step) CRC-32s, the output."""

    layer_crcs: tuple[int, ...]
    step_crcs: tuple[tuple[int, ...], ...]  # [patch][stage step]; () for layer-by-layer artifacts
    output: np.ndarray  # unpacked output values, flattened


def packed_crc(values: np.ndarray, bits: int) -> int:
    """CRC-32 of a tensor's values as the firmware stores them (packed at ``bits``)."""
    return zlib.crc32(bytes(pack(np.asarray(values), bits)))


@dataclass
class Artifact:
    """A model ready to deploy: sources, memory estimate, identity, layer table and integer reference."""

    name: str
    sources: dict[str, str]  # file name -> C text (the project's src/)
    estimate: MemoryEstimate
    model_hash: int
    layers: tuple[LayerInfo, ...]
    input: TensorSpec
    output: TensorSpec
    layout: ArenaPlan | PatchArena  # where every buffer lives in the arena
    memory: dict  # arena_bytes, scratch_bytes, model_flash_bytes, ... for summaries
    reference: Callable[[np.ndarray], Expected] = field(repr=False)
    n_patches: int = 0  # 0: layer by layer
    n_stage: int = 0  # layers of the patch stage
    layer_memory: tuple[dict, ...] = ()  # per layer: flash and RAM bytes (:func:`layer_memory`)

    @property
    def patched(self) -> bool:
        return self.n_patches > 0

    def expected(self, x: np.ndarray) -> Expected:
        """The reference results for one input (unpacked int ``(H, W, C)``)."""
        return self.reference(x)

    def input_bytes(self, x: np.ndarray) -> bytes:
        """The bytes the firmware's input tensor holds for ``x``."""
        return bytes(pack(np.asarray(x), self.input.bits))

    def write_sources(self, folder: str | Path) -> list[Path]:
        """Write the sources into ``folder`` (rewriting only what changed, so rebuilds stay incremental)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, text in self.sources.items():
            p = folder / name
            if not p.is_file() or p.read_text() != text:
                p.write_text(text)
            paths.append(p)
        return paths


def _layer_infos(model: IntModel, macs: dict[str, int] | None = None) -> tuple[LayerInfo, ...]:
    return tuple(
        LayerInfo(
            index=i, name=layer.name, op=layer.op, a_bits=model.a_bits(layer), w_bits=layer.w_bits,
            o_bits=model.o_bits(layer), in_shape=tuple(model.in_spec(layer).shape),
            out_shape=tuple(model.out_spec(layer).shape),
            macs=int((macs or {}).get(layer.name, ops.macs(model, layer))),
        )  # fmt: skip
        for i, layer in enumerate(model.layers)
    )


def layer_memory(model: IntModel, live_bytes: list[int] | None = None) -> tuple[dict, ...]:
    """Per layer, where its bytes go. Flash: ``weight_bytes`` (packed at w_bits), ``bias_bytes``,
    ``requant_bytes`` (per-channel multipliers and shifts, or the add/pool constants), ``flash_bytes`` (their
    sum). RAM: ``in_bytes``/``out_bytes`` (its input and output tensors' share of the arena), ``live_bytes``
    (everything live in the arena during the layer, layer-by-layer plans only) and ``scratch_bytes`` (what its
    kernel needs in the shared scratch buffer)."""
    rows = []
    for i, layer in enumerate(model.layers):
        op = ops.get(layer.op)
        cout = model.out_spec(layer).shape[2]
        w = len(packed_weights(layer))
        b = 4 * int(np.asarray(layer.bias).size) if layer.bias is not None and "bias" in op.arrays else 0
        r = op.requant_bytes(cout)
        rows.append({
            "weight_bytes": w, "bias_bytes": b, "requant_bytes": r, "flash_bytes": w + b + r,
            "in_bytes": int(sum(model.tensors[t].nbytes for t in layer.inputs)),
            "out_bytes": int(model.out_spec(layer).nbytes),
            "live_bytes": int(live_bytes[i]) if live_bytes and i < len(live_bytes) else None,
            "scratch_bytes": int(layer_scratch_bytes(model, layer)),
        })
    return tuple(rows)


def _layer_plan(model: IntModel, variant: str, keep_input: bool) -> tuple[ArenaPlan, MemoryEstimate]:
    plan = plan_arena(model, keep_input=keep_input, validate=False)
    return plan, estimate_footprint(model, plan, variant)


def layer_estimate(model: IntModel, *, variant: str = "opt", keep_input: bool = False) -> MemoryEstimate:
    """What :func:`layer_artifact` of ``model`` would hand the fit check (arena plan, scratch, weights), without
    rendering its sources: the searches judge a configuration by it before anything is built."""
    validate_model(model)
    return _layer_plan(model, variant, keep_input)[1]


def layer_artifact(model: IntModel, *, variant: str = "opt", keep_input: bool = False) -> Artifact:
    """The artifact of ``model`` run layer by layer (``variant='ref'``: every a8w8 layer on its plain loop;
    a layer's ``meta['kernel_variant']`` overrides it for that layer)."""
    validate_model(model)
    plan, estimate = _layer_plan(model, variant, keep_input)
    out = model.tensors[model.output]

    def reference(x: np.ndarray) -> Expected:
        values = run_model(model, x, validate=False)
        crcs = tuple(packed_crc(values[lay.output], model.tensors[lay.output].bits) for lay in model.layers)
        return Expected(crcs, (), np.asarray(values[model.output]).reshape(-1))

    return Artifact(
        name=model.name,
        sources={
            "model_data.c": render_model_c(model, plan, variant),
            "model_data.h": render_model_h(model, plan),
        },
        estimate=estimate,
        model_hash=model_hash(model),
        layers=_layer_infos(model),
        input=model.tensors[model.input],
        output=out,
        layout=plan,
        memory={
            "arena_bytes": plan.arena_bytes,
            "arena_peak_bytes": plan.peak_bytes,
            "scratch_bytes": plan.scratch_bytes,
            "model_flash_bytes": estimate.weights,
        },
        reference=reference,
        layer_memory=layer_memory(model, plan.live_bytes),
    )


def patch_artifact(pm: PatchedModel, *, variant: str = "opt", arena: PatchArena | None = None) -> Artifact:
    """The artifact of a patch-based model: the patch stage patch by patch, the rest layer by layer."""
    validate_model(pm.model)
    for m in {id(m): m for m in pm.patch_models}.values():
        if m is not pm.model:
            validate_model(m)
    arena = arena if arena is not None else plan_patch_arena(pm)
    estimate = estimate_patch_footprint(pm, arena, variant)
    model = pm.model
    stage_macs = {layer.name: int(pm.plan.per_layer_macs[layer.name][1]) for layer in model.layers[: pm.n_stage]}

    def reference(x: np.ndarray) -> Expected:
        run = run_patched(pm, x)
        return Expected(
            tuple(layer_crcs(pm, run)),
            tuple(tuple(row) for row in patch_crcs(pm, run)),
            np.asarray(run.output(pm)).reshape(-1),
        )

    return Artifact(
        name=model.name,
        sources={"model_data.c": render_patch_c(pm, arena, variant)},
        estimate=estimate,
        model_hash=patch_model_hash(pm),
        layers=_layer_infos(model, stage_macs),
        input=model.tensors[model.input],
        output=model.tensors[model.output],
        layout=arena,
        memory={
            "arena_bytes": arena.arena_bytes,
            "scratch_bytes": arena.scratch_bytes,
            "result_bytes": arena.result_bytes,
            "model_flash_bytes": estimate.weights,
            "planner_peak": arena.planner_peak,
            "layer_peak": arena.layer_peak,
        },
        reference=reference,
        n_patches=pm.plan.num_patches,
        n_stage=pm.n_stage,
        layer_memory=layer_memory(model),
    )


def make_artifact(model: IntModel | PatchedModel, *, variant: str = "opt") -> Artifact:
    """:func:`layer_artifact` or :func:`patch_artifact`, by the kind of model."""
    if isinstance(model, PatchedModel):
        return patch_artifact(model, variant=variant)
    return layer_artifact(model, variant=variant)
