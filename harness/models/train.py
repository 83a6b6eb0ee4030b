"""Supervised training and evaluation on CPU (or a GPU when present); used for float training and for QAT.

Progressive resizing: ``phases`` lists (resolution, epochs) pairs run in order under one learning-rate schedule.
Training the early epochs at a low resolution and the last ones at the model's own resolution gives most of the
accuracy of full-resolution training for a fraction of the CPU time (the nets are fully convolutional with a
global pool, so the weights carry over; the last phase re-adapts BatchNorm statistics and filters to the
deployed resolution).
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

from harness.config.schema import TrainSchema
from harness.data.base import DataSplits, ImageSet, batches
from harness.errors import ConfigError
from harness.results.io import atomic_write_bytes, atomic_write_text


@dataclass
class TrainConfig(TrainSchema):
    """Hyper-parameters (:class:`~harness.config.schema.TrainSchema` holds the defaults); ``phases`` (list of
    {resolution, epochs, n_train}) overrides ``epochs`` when given (``n_train``: images per epoch, default all);
    ``extra`` keeps keys the trainer does not know (callers' own settings)."""

    extra: dict = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, d) -> TrainConfig:
        if isinstance(d, DictConfig):
            d = OmegaConf.to_container(d, resolve=True)
        d = dict(d or {})
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        return cls(**{k: v for k, v in d.items() if k in known},
                   extra={k: v for k, v in d.items() if k not in known})


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _phases(cfg: TrainConfig, input_shape: Sequence[int]) -> list[tuple[tuple[int, int, int], int, int | None]]:
    """(input shape, epochs, images per epoch or None = all) of every phase."""
    c, h, w = input_shape
    if not cfg.phases:
        return [((c, h, w), int(cfg.epochs), None)]
    out = []
    for p in cfg.phases:
        r = p.get("resolution")
        shape = (c, h, w) if r is None else (c, int(r), int(r)) if isinstance(r, int) else (c, int(r[0]), int(r[1]))
        n = p.get("n_train")
        out.append((shape, int(p.get("epochs", 1)), None if n is None else int(n)))
    if any(e < 0 for _, e, _ in out) or any(n is not None and n <= 0 for _, _, n in out):
        raise ConfigError(f"phase epochs must be >= 0 and n_train > 0: {cfg.phases}")
    return out


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases, BN and quantizer clip values (1-D parameters)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = _param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, foreach=True)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True, foreach=True)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r} (adamw | sgd)")


def lr_factor(step: int, total: int, warmup: float) -> float:
    """Linear warm-up then cosine decay to zero."""
    w = max(1, int(total * warmup))
    if step < w:
        return (step + 1) / w
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - w) / max(1, total - w))))


@torch.no_grad()
def predict(model: nn.Module, data: ImageSet, input_shape: Sequence[int], mean: float = 0.5, std: float = 0.5,
            batch_size: int = 256, device: torch.device | None = None) -> torch.Tensor:
    """Logits of ``model`` on every image of ``data`` (eval mode; the previous mode is restored)."""
    device = device or next(model.parameters()).device
    was = model.training
    model.eval()
    out = [model(x.to(device)).float().cpu() for x, _ in batches(data, input_shape, batch_size, mean=mean, std=std)]
    model.train(was)
    return torch.cat(out) if out else torch.empty(0)


def evaluate(model: nn.Module, data: ImageSet, input_shape: Sequence[int], mean: float = 0.5, std: float = 0.5,
             batch_size: int = 256) -> float:
    """Top-1 accuracy (0..1) on ``data``."""
    logits = predict(model, data, input_shape, mean, std, batch_size)
    return float((logits.argmax(1) == torch.from_numpy(data.y)).float().mean())


def fit(model: nn.Module, data: DataSplits, cfg: TrainConfig, input_shape: Sequence[int] | None = None,
        log: Callable[[str], None] = print, evaluate_each_phase: bool = False) -> dict:
    """Train ``model`` in place on ``data.train``; returns the history and the final test top-1."""
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    device = pick_device(cfg.device)
    model.to(device)
    shape = tuple(input_shape or model.input_shape)
    phases = _phases(cfg, shape)

    def epoch_size(n: int | None) -> int:
        return len(data.train) if n is None else min(n, len(data.train))

    total = sum(math.ceil(epoch_size(n) / cfg.batch_size) * e for _, e, n in phases)
    opt = make_optimizer(model, cfg)
    base_lrs = [g["lr"] for g in opt.param_groups]
    augment, flip = bool(data.meta.get("augment")), bool(data.meta.get("flip", True))
    history: list[dict] = []
    step, epoch, t0 = 0, 0, time.perf_counter()
    for pshape, n_epochs, n_images in phases:
        for _ in range(n_epochs):
            model.train()
            run_loss, run_acc, n = 0.0, 0.0, 0
            # a phase with n_train sees a fresh seeded subset each epoch (a fraction of an epoch of the full set)
            part = (data.train if n_images is None
                    else data.train.subset(epoch_size(n_images), cfg.seed * 7919 + epoch))
            for x, y in batches(part, pshape, cfg.batch_size, shuffle=True, seed=cfg.seed * 1000 + epoch,
                                augment=augment, mean=data.mean, std=data.std, flip=flip):
                x, y = x.to(device), y.to(device)
                for g, b in zip(opt.param_groups, base_lrs):
                    g["lr"] = b * lr_factor(step, total, cfg.warmup)
                logits = model(x)
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                run_loss += loss.item() * len(y)
                run_acc += float((logits.argmax(1) == y).sum())
                n += len(y)
                if cfg.log_every and step % cfg.log_every == 0:
                    log(f"epoch {epoch + 1} step {step}/{total} res {pshape[1]}x{pshape[2]} "
                        f"loss {run_loss / n:.4f} train-acc {run_acc / n:.4f} ({time.perf_counter() - t0:.0f} s)")
            epoch += 1
            rec = {"epoch": epoch, "resolution": list(pshape[1:]), "loss": run_loss / max(1, n),
                   "train_top1": run_acc / max(1, n), "seconds": round(time.perf_counter() - t0, 1)}
            history.append(rec)
        if evaluate_each_phase and n_epochs:
            history[-1]["test_top1_at_phase_res"] = evaluate(model, data.test, pshape, data.mean, data.std)
            log(f"phase {pshape[1]}x{pshape[2]} done: test top-1 {history[-1]['test_top1_at_phase_res']:.4f}")
    model.to("cpu")
    top1 = evaluate(model, data.test, shape, data.mean, data.std, cfg.eval_batch_size)
    log(f"test top-1 {top1:.4f} at {shape[1]}x{shape[2]} after {time.perf_counter() - t0:.0f} s")
    return {"test_top1": top1, "history": history, "train_seconds": round(time.perf_counter() - t0, 1),
            "steps": step, "config": asdict(cfg)}


def save_checkpoint(model: nn.Module, path: str | Path, sidecar: dict) -> Path:
    """Save the state dict to ``path`` and ``sidecar`` (command, seed, top-1, date, ...) next to it as JSON."""

    path = Path(path)
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    atomic_write_bytes(path, buf.getvalue())
    atomic_write_text(path.with_suffix(".json"), json.dumps(sidecar, indent=2, default=str) + "\n")
    for p in (path, path.with_suffix(".json")):
        p.chmod(0o644)  # the atomic writer's temp files are private; checkpoints are shared artefacts
    return path
