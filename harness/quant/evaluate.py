"""Accuracy of a model under a precision configuration: float, post-training fake-quant, and after QAT."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from harness.data.base import DataSplits
from harness.models.train import evaluate
from harness.precision.config import PrecisionConfig
from harness.quant.calibrate import calibrate
from harness.quant.qat import calibration_batches, qat_finetune
from harness.quant.qnet import QuantNet, apply_config, copy_quantnet, quantize_model
from harness.quant.quantizers import (
    DEFAULT_ACT_POLICY,
    DEFAULT_WEIGHT_POLICY,
    ActQuantPolicy,
    WeightQuantPolicy,
)


def evaluate_config(model: nn.Module | QuantNet, data: DataSplits, config: PrecisionConfig,
                    calib_images: int = 256, qat: Mapping | None = None,
                    weight_policy: WeightQuantPolicy = DEFAULT_WEIGHT_POLICY,
                    act_policy: ActQuantPolicy = DEFAULT_ACT_POLICY,
                    log: Callable[[str], None] = print) -> tuple[QuantNet, dict]:
    """Quantize ``model`` at ``config``, calibrate on ``calib_images`` training images, measure test top-1;
    with ``qat`` (train settings, e.g. ``{"epochs": 1}``) also fine-tune and measure again.

    Returns the (possibly fine-tuned) QuantNet and ``{"ptq_top1", "qat_top1"?, ...}``. ``model`` is unchanged.
    """
    q = copy_quantnet(model) if isinstance(model, QuantNet) else quantize_model(
        model, weight_policy=weight_policy, act_policy=act_policy)
    apply_config(q, config)
    shape = q.input_shape
    calibrate(q, calibration_batches(data, shape, calib_images))
    out = {"config": config.digest(), "ptq_top1": evaluate(q, data.test, shape, data.mean, data.std)}
    log(f"{config.meta.get('method', 'config')} {config.digest()}: post-training top-1 {out['ptq_top1']:.4f}")
    if qat:
        res = qat_finetune(q, data, qat, log=log)
        out["qat_top1"] = res["test_top1_after"]
        out["qat_seconds"] = res["train_seconds"]
        log(f"after QAT: top-1 {out['qat_top1']:.4f}")
    return q, out


@torch.no_grad()
def float_top1(model: nn.Module, data: DataSplits) -> float:
    return evaluate(model, data.test, model.input_shape, data.mean, data.std)
