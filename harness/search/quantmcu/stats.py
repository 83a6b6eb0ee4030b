"""Calibration statistics for QuantMCU: every stage feature map's values, whole and per patch window.

The 8-bit patch-based model computes, for each patch, exactly the windows of the layer-by-layer tensors
(:mod:`harness.patch.int_reference`), so the integer reference run layer by layer on each calibration image
gives every patch's feature maps by slicing the plan's windows. Values are kept as the 8-bit integers of the
base model; :func:`real` turns them into real values. The model input is kept too (``full[model.input]``,
``windows[p][model.input]``: the patch's input window, what its branch reads).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.errors import ConfigError
from harness.graph.spec import INPUT
from harness.patch.intmodel import PatchedModel, stage_tensors
from harness.patch.rebits import dequantize
from harness.reference.run import run_model


@dataclass
class CalibStats:
    """``windows[p][t]``: patch ``p``'s window of stage tensor ``t`` (the input and the stage output included:
    the patch's input window and output grain) on every calibration image, stacked ``(n_images, h, w, c)``
    (8-bit integers); ``full[t]``: the whole tensor on every image (every layer output and the input)."""

    pm: PatchedModel
    full: dict[str, np.ndarray]
    windows: list[dict[str, np.ndarray]]

    @property
    def n_images(self) -> int:
        return next(iter(self.full.values())).shape[0]

    def real(self, t: str, values: np.ndarray) -> np.ndarray:
        """Real values of integers of tensor ``t`` (base model's scale and zero point)."""
        return dequantize(values, self.pm.model.tensors[t])


def collect(pm: PatchedModel, images: Sequence[np.ndarray]) -> CalibStats:
    """Run the base model on every calibration image (unpacked int inputs) and cut the stage's feature maps."""
    if not pm.is_uniform:
        raise ConfigError("calibration statistics come from the base (uniform) patch-based model")
    if len(images) == 0:
        raise ConfigError("QuantMCU needs at least one calibration image")
    model, plan = pm.model, pm.plan
    tensors = [model.input, *stage_tensors(model, plan), pm.stage_output]
    name_of = {layer.output: layer.name for layer in model.layers}
    name_of[model.input] = INPUT  # the plan names the input's windows "input"
    per_image = [run_model(model, x) for x in images]
    full = {layer.output: np.stack([v[layer.output] for v in per_image]) for layer in model.layers}
    full[model.input] = np.stack([np.asarray(x) for x in images])
    windows = []
    for p in range(plan.num_patches):
        w = {}
        for t in tensors:
            h0, h1, w0, w1 = plan.windows[name_of[t]][p]
            w[t] = full[t][:, h0:h1, w0:w1]
        windows.append(w)
    return CalibStats(pm, full, windows)
