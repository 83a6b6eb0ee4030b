"""Host fake-quant models for the accuracy side of the comparison, on the deployed network
(:class:`~harness.quant.qnet.QuantNet`: fused, BN folded, every tensor at its activation group's precision as
deployment runs it, :mod:`.grouping`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import ConfigError
from harness.precision.config import PrecisionConfig
from harness.quant.calibrate import calibrate
from harness.quant.qnet import QuantNet, copy_quantnet
from harness.search.quantune.grouping import quantize_grouped


def deployed(model: nn.Module, config: PrecisionConfig, calib: torch.Tensor) -> QuantNet:
    """The fake-quant network of ``model`` at ``config`` (grouped tensor precisions), activation ranges
    calibrated on ``calib``."""
    return calibrate(quantize_grouped(model, config), calib).eval()


def only_layer(
    template: QuantNet, name: str, group_tensors: Mapping[str, Sequence[str]] | None = None
) -> QuantNet:
    """A copy of a calibrated ``template`` in which only layer ``name``'s decision is quantized: its weights and
    the tensors of the activation group it reads (``group_tensors[name]``; default: the one tensor it reads),
    at the template's bits; every other layer and tensor stays float."""
    if name not in template.layer_names():
        raise ConfigError(f"{name!r} is not a quantizable layer of this network")
    q = copy_quantnet(template).set_quant(weights=False, acts=False)
    q.layer(name).weight_quant.enabled = True
    if group_tensors is not None and name in group_tensors:
        tensors = list(group_tensors[name])
    else:
        tensors = [next(s for s in q.specs if s.name == name).inputs[0]]
    for t in tensors:
        q.act(t).enabled = True
    return q.eval()


def one_at_a_time_template(model: nn.Module, config: PrecisionConfig, calib: torch.Tensor) -> QuantNet:
    """The template :func:`only_layer` copies: ranges from the float network (upstream of the one quantized
    layer everything is float), all layers at ``config``, tensors at their group's precision."""
    return calibrate(quantize_grouped(model, config), calib, sequential=False).eval()


@torch.no_grad()
def top1_and_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 250
) -> tuple[float, float]:
    """Top-1 (0..1) and mean cross-entropy of ``model`` on pre-converted inputs ``x`` and labels ``y``."""
    if len(x) == 0 or len(x) != len(y):
        raise ConfigError(f"evaluation needs as many labels as images, got {len(x)} and {len(y)}")
    was = model.training
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(x), batch_size):
        logits = model(x[i : i + batch_size]).float()
        yb = y[i : i + batch_size]
        correct += int((logits.argmax(1) == yb).sum())
        loss += float(F.cross_entropy(logits, yb, reduction="sum"))
    model.train(was)
    return correct / len(x), loss / len(x)
