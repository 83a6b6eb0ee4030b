"""Short quantization-aware fine-tuning of a calibrated :class:`QuantNet` (straight-through estimator).

Weights train through their fake quantizers; activation ranges stay fixed, or are learned (PACT-style) when the
quantizers were built with ``ActQuantPolicy(learn_clip=True)``. BatchNorm is already folded, so fine-tuning
adjusts the folded weights directly (no BN statistics to re-estimate at deployment).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict

from harness.config.schema import QatSchema
from harness.data.base import DataSplits, batches
from harness.models.train import TrainConfig, evaluate, fit
from harness.quant.calibrate import calibrate
from harness.quant.qnet import QuantNet

#: QAT hyper-parameters over the trainer's: the experiment-level keys (images used) are not the trainer's
QAT_DEFAULTS = {k: v for k, v in asdict(QatSchema()).items() if k not in ("n_train", "n_test")}


def calibration_batches(data: DataSplits, input_shape, n: int = 256, seed: int = 0):
    """The first ``n`` training images (after a seeded shuffle) as model inputs."""
    sub = data.train.subset(min(n, len(data.train)), seed)
    return [x for x, _ in batches(sub, input_shape, 256, mean=data.mean, std=data.std)]


def qat_finetune(qnet: QuantNet, data: DataSplits, cfg: TrainConfig | Mapping | None = None,
                 calib_images: int = 256, log: Callable[[str], None] = print) -> dict:
    """Calibrate (if needed) and fine-tune ``qnet`` in place; returns test top-1 before/after and the losses."""
    tcfg = cfg if isinstance(cfg, TrainConfig) else TrainConfig.from_mapping({**QAT_DEFAULTS, **dict(cfg or {})})
    shape = qnet.input_shape
    if not all(bool(qnet.act(t).calibrated) for t in qnet.tensor_names()):
        calibrate(qnet, calibration_batches(data, shape, calib_images, tcfg.seed))
    before = evaluate(qnet, data.test, shape, data.mean, data.std)
    res = fit(qnet, data, tcfg, input_shape=shape, log=log)
    return {"test_top1_before": before, "test_top1_after": res["test_top1"],
            "loss_history": [h["loss"] for h in res["history"]], "train_seconds": res["train_seconds"]}
