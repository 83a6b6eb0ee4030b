"""``tinyhil train model=... data=...``: train a zoo model on an offline data set and save its checkpoint."""

from __future__ import annotations

import datetime as _dt
import shlex
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from harness.data.registry import load_data
from harness.graph.trace import extract_layers
from harness.models.registry import build_model, checkpoint_path, load_checkpoint, model_id
from harness.models.train import TrainConfig, fit, save_checkpoint
from harness.results.io import repo_relative


def main(cfg: DictConfig, run_dir: Path) -> dict:
    """Train; write ``run_dir/model.pt`` (+ JSON sidecar) and, if ``train.save_checkpoint``, the shipped
    ``checkpoints/<model id>-<data>.pt`` (the user's own model: ``user-<module.Class>-<hash of its kwargs and input
    shape>``, see :func:`harness.models.registry.model_id`). Returns the summary (float top-1, seconds, paths
    relative to the repository)."""

    console = Console(stderr=True)
    data = load_data(cfg.data)
    model = build_model(cfg.model, num_classes=data.num_classes)
    extract_layers(model)  # a layer tinyhil cannot deploy is refused before the training time is spent
    init = cfg.init_checkpoint
    if init:  # continue from earlier weights (e.g. one more low-lr epoch on a shipped checkpoint)
        load_checkpoint(model, init)
        console.print(f"starting from {init}")
    tcfg = TrainConfig.from_mapping(cfg.train)
    model_name, data_name = model_id(cfg.model), str(cfg.data.name)
    console.print(
        f"training {model_name} on {data_name}: {len(data.train)} train / {len(data.test)} test, "
        f"input {tuple(model.input_shape)}"
    )
    result = fit(model, data, tcfg, log=console.print)
    sidecar = {
        "model": model_name,
        "data": data_name,
        "command": "tinyhil train " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "seed": tcfg.seed,
        "init_checkpoint": repo_relative(init) if init else None,
        "float_top1": result["test_top1"],
        "n_train": len(data.train),
        "n_test": len(data.test),
        "input_shape": list(model.input_shape),
        "num_classes": data.num_classes,
        "train_seconds": result["train_seconds"],
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "train": result["config"],
        "model_config": OmegaConf.to_container(cfg.model, resolve=True),
        "data_config": OmegaConf.to_container(cfg.data, resolve=True),
        "history": result["history"],
    }
    paths = [save_checkpoint(model, Path(run_dir) / "model.pt", sidecar)]
    if cfg.save_checkpoint:
        paths.append(save_checkpoint(model, checkpoint_path(model_name, data_name), sidecar))
    for p in paths:
        console.print(f"checkpoint: {p}")
    return {
        "model": model_name,
        "data": data_name,
        "float_top1": result["test_top1"],
        "train_seconds": result["train_seconds"],
        "checkpoint": repo_relative(paths[-1]),
        "run_checkpoint": repo_relative(paths[0]),
    }
