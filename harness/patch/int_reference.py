"""Integer reference of patch-based inference: what the firmware's patch executor must produce, bit for bit.

Each patch runs the stage's layers on its own windows with the layer copies of its patch model (paddings from
the plan: only border patches pad); a consumer slices the part it reads out of its producer's per-patch buffer,
exactly as :func:`harness.patch.simulate.run_patch` does in float. The patches' split-layer outputs fill the
full stage-output tensor, and the rest of the base model runs layer by layer on it with
:func:`harness.reference.run.run_layer`. For a uniform :class:`PatchedModel` every tensor from the stage output
on equals :func:`harness.reference.run.run_model`'s.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

import numpy as np

from harness.errors import ConfigError
from harness.graph.spec import INPUT
from harness.ir.packing import pack
from harness.patch.intmodel import PatchedModel
from harness.reference.run import checked_input, run_layer


@dataclass
class PatchRun:
    """Everything one patch-based inference computed.

    ``patches[p][layer]`` is the output window of a stage layer in patch ``p`` (unpacked ints, at that patch's
    precision); ``values`` holds the full tensors: the input, the stage output and every later tensor.
    """

    patches: list[dict[str, np.ndarray]]
    values: dict[str, np.ndarray]

    def output(self, pm: PatchedModel) -> np.ndarray:
        return self.values[pm.model.output]


def _window(buf: np.ndarray, have: tuple[int, int, int, int], want: tuple[int, int, int, int]) -> np.ndarray:
    h0, h1, w0, w1 = have
    a0, a1, b0, b1 = want
    if not (h0 <= a0 < a1 <= h1 and w0 <= b0 < b1 <= w1):
        raise ConfigError(f"a patch reads window {want} outside its producer's buffer {have}")
    return buf[a0 - h0 : a1 - h0, b0 - w0 : b1 - w0]


def run_patch(pm: PatchedModel, x: np.ndarray, p: int) -> dict[str, np.ndarray]:
    """Run patch ``p`` of the stage on input ``x``; returns every stage layer's output window (by layer)."""
    plan, model = pm.plan, pm.patch_models[p]
    bufs: dict[str, np.ndarray] = {}
    h0, h1, w0, w1 = plan.windows[INPUT][p]
    bufs[INPUT] = np.asarray(x)[h0:h1, w0:w1]
    by_tensor = {layer.output: layer.name for layer in model.layers}
    by_tensor[model.input] = INPUT
    for i, st in enumerate(plan.schedule[p]):
        layer = model.layers[i]
        if layer.name != st.layer:
            raise ConfigError(
                f"patch {p}: step {i} is {st.layer!r} but the model's layer {i} is {layer.name!r}"
            )
        values = {}
        for t, src, win in zip(layer.inputs, st.inputs, st.in_windows):
            if by_tensor[t] != src:
                raise ConfigError(f"patch {p}, layer {layer.name!r}: plan reads {src!r}, model reads {t!r}")
            values[t] = _window(bufs[src], plan.windows[src][p], win)
        y = run_layer(model, replace(layer, padding=tuple(st.padding)), values)
        if tuple(y.shape[:2]) != st.out_hw:
            raise ConfigError(
                f"patch {p}, layer {layer.name!r}: produced {y.shape[:2]}, the plan says {st.out_hw}"
            )
        bufs[layer.name] = y
    bufs.pop(INPUT)
    return bufs


def run_patched(pm: PatchedModel, x: np.ndarray) -> PatchRun:
    """Patch-based inference of ``pm`` on one input (unpacked ints of the input tensor's shape)."""
    model, plan = pm.model, pm.plan
    x = checked_input(model, x)
    out_name = pm.stage_output
    stage_out = np.zeros(model.tensors[out_name].shape, dtype=np.int8)
    written = np.zeros(stage_out.shape[:2], dtype=bool)
    patches = []
    for p in range(plan.num_patches):
        bufs = run_patch(pm, x, p)
        oh0, oh1, ow0, ow1 = plan.schedule[p][-1].out_window
        stage_out[oh0:oh1, ow0:ow1] = bufs[plan.split]
        written[oh0:oh1, ow0:ow1] = True
        patches.append(bufs)
    if not written.all():
        raise ConfigError("the patches do not cover the whole stage output")
    values = {model.input: x, out_name: stage_out}
    for layer in model.layers[pm.n_stage :]:
        values[layer.output] = run_layer(model, layer, values)
    return PatchRun(patches, values)


def packed(values: np.ndarray, bits: int) -> bytes:
    """The bytes the firmware holds for unpacked ``values`` at ``bits``."""
    return bytes(pack(np.asarray(values), bits))


def patch_crcs(pm: PatchedModel, run: PatchRun) -> list[list[int]]:
    """CRC-32 of every (patch, stage layer) output buffer, packed at that patch's precision (``patches%``)."""
    out = []
    for p, bufs in enumerate(run.patches):
        m = pm.patch_models[p]
        out.append(
            [
                zlib.crc32(packed(bufs[layer.name], m.tensors[layer.output].bits))
                for layer in m.layers[: pm.n_stage]
            ]
        )
    return out


def layer_crcs(pm: PatchedModel, run: PatchRun) -> list[int]:
    """The per-layer CRC-32s the firmware reports (``layers%``) in patch mode.

    A stage layer other than the split: the CRC of its per-patch outputs concatenated in patch order. The split
    layer: the CRC of the whole stage-output tensor. Every later layer: the CRC of its output tensor, as in
    layer-by-layer mode.
    """
    model = pm.model
    per_patch = [b"" for _ in range(pm.n_stage)]
    for p, bufs in enumerate(run.patches):
        m = pm.patch_models[p]
        for i, layer in enumerate(m.layers[: pm.n_stage - 1]):
            per_patch[i] += packed(bufs[layer.name], m.tensors[layer.output].bits)
    crcs = [zlib.crc32(b) for b in per_patch[: pm.n_stage - 1]]
    for layer in model.layers[pm.n_stage - 1 :]:
        crcs.append(zlib.crc32(packed(run.values[layer.output], model.tensors[layer.output].bits)))
    return crcs
