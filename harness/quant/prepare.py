"""From a Hydra config to a trained float model, its fake-quant network and its integer model.

Every experiment that runs a real model on a board starts here: build the zoo model, load its shipped
checkpoint, load the offline data, calibrate, export. Keeping it in one place means the int8 baseline, the
Free Bits loop and QuantMCU all evaluate the same images the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from harness.data.base import to_model_input
from harness.data.registry import load_data
from harness.errors import ConfigError
from harness.graph.trace import extract_layers
from harness.ir.model import IntModel
from harness.models.registry import build_model, checkpoint_path, load_checkpoint, model_id, train_command
from harness.precision.config import PrecisionConfig
from harness.quant.calibrate import calibrate
from harness.quant.export import export_int_model, quantize_input
from harness.quant.qnet import quantize_model
from harness.reference.run import run_model
from harness.results.io import repo_relative


@dataclass
class Prepared:
    """A trained model with its data, ready to quantize."""

    name: str
    model: torch.nn.Module
    input_shape: tuple[int, int, int]  # (C, H, W)
    data: object  # harness.data.base.DataSplits
    mean: float
    std: float
    calib: torch.Tensor  # model inputs for calibration
    eval_x: torch.Tensor  # model inputs of the evaluation images
    eval_y: np.ndarray
    checkpoint: str | None


def _plain(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


def prepare(cfg: DictConfig, n_eval: int, n_calib: int = 256, require_checkpoint: bool = True) -> Prepared:
    """Build ``cfg.model`` with its checkpoint for ``cfg.data`` and pick calibration and evaluation images.

    Calibration images come from the training split, evaluation images from the test split, both drawn
    deterministically by ``cfg.seed``.
    """

    model_cfg, data_cfg = _plain(cfg.model), _plain(cfg.data)
    model = build_model(model_cfg)
    name = model_cfg.get("name", type(model).__name__)
    extract_layers(model, model_input_shape(model))  # an unsupported layer is named before anything else
    ckpt = checkpoint_path(model_id(model_cfg), data_cfg["name"])
    if ckpt.exists():
        load_checkpoint(model, ckpt)
    elif require_checkpoint:
        raise ConfigError(
            f"no trained checkpoint for {model_id(model_cfg)} on {data_cfg['name']} ({repo_relative(ckpt)}); "
            f"train one with `{train_command(model_cfg, data_cfg['name'])}`"
        )
    model.eval()
    shape = model_input_shape(model)
    data = load_data(data_cfg)
    mean, std = data.mean, data.std
    seed = int(cfg.seed)
    cal = data.train.subset(min(n_calib, len(data.train)), seed=seed)
    ev = data.test.subset(min(n_eval, len(data.test)), seed=seed + 1)
    calib = to_model_input(cal.x, shape, mean, std)
    eval_x = to_model_input(ev.x, shape, mean, std)
    return Prepared(
        name, model, shape, data, mean, std, calib, eval_x, ev.y, repo_relative(ckpt) if ckpt.exists() else None
    )


def model_input_shape(model: torch.nn.Module) -> tuple[int, int, int]:
    """The (C, H, W) input a model was built for: its ``input_shape`` (zoo models and ``model=user`` record it)."""
    shape = getattr(model, "input_shape", None)
    if shape is None or len(shape) != 3:
        raise ConfigError(f"{type(model).__name__} records no input_shape (C, H, W); for your own module use "
                          "model=user model.path=pkg.module:Class model.input_shape=[C,H,W]")
    return (int(shape[0]), int(shape[1]), int(shape[2]))


@torch.no_grad()
def top1(model: torch.nn.Module, x: torch.Tensor, y: np.ndarray, batch: int = 256) -> float:
    """Top-1 accuracy (0..1) of a float or fake-quant model."""
    model.eval()
    pred = torch.cat([model(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])
    return float((pred.numpy() == y).mean())


def quantize(p: Prepared, config: PrecisionConfig | None = None):
    """The calibrated fake-quant network (uniform 8-bit unless ``config``)."""

    q = quantize_model(p.model, config, input_shape=p.input_shape)
    calibrate(q, p.calib)
    return q


def export(qnet, config: PrecisionConfig | None = None) -> IntModel:
    """The integer model of a calibrated fake-quant network."""

    return export_int_model(qnet, config)


def integer_inputs(model: IntModel, x: torch.Tensor) -> list[np.ndarray]:
    """Model inputs (N, C, H, W) -> the int8 (H, W, C) tensors the firmware's input quantizer would make."""

    q = quantize_input(x, model.tensors[model.input])
    return [q[i] for i in range(len(q))]


def reference_predictions(model: IntModel, inputs: list[np.ndarray]) -> np.ndarray:
    """argmax of the Python integer reference on each input."""

    return np.array([int(np.argmax(run_model(model, x)[model.output])) for x in inputs])
