"""Build a model from its config (``configs/model/*.yaml``) and find its shipped checkpoint.

A model config names a class or factory in ``_target_`` and gives its keyword arguments; the keys ``name``,
``checkpoint`` and ``description`` describe the entry and are not passed on. ``user.yaml`` points at the user's
own ``torch.nn.Module`` (see :func:`harness.models.user.load_user_model`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from omegaconf import DictConfig, OmegaConf
from torch import nn

from harness import CONFIG_DIR, REPO_ROOT
from harness.errors import ConfigError

CHECKPOINT_DIR = REPO_ROOT / "checkpoints"
_META_KEYS = {"_target_", "name", "checkpoint", "description"}


def _plain(cfg: Any) -> dict:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"a model config must be a mapping, got {type(cfg).__name__}")
    return dict(cfg)


def import_object(path: str) -> Callable:
    """Import ``"package.module:Name"`` or ``"package.module.Name"``."""
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"expected an import path 'module:Name', got {path!r}")
    mod_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise ConfigError(f"cannot import {mod_name!r} for {path!r}: {e}") from None
    try:
        return getattr(mod, attr)
    except AttributeError:
        raise ConfigError(f"module {mod_name!r} has no {attr!r}") from None


def model_names() -> list[str]:
    """Names of the model configs shipped in ``configs/model``."""
    return sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml"))


def model_config(name: str) -> dict:
    """Load ``configs/model/<name>.yaml`` as a plain dict."""
    path = CONFIG_DIR / "model" / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(model_names())}")
    return yaml.safe_load(path.read_text())


def build_model(cfg: Mapping | str, **overrides: Any) -> nn.Module:
    """Instantiate the model a config describes; ``overrides`` replace config keys (e.g. ``num_classes``).

    Sets ``model.name`` from the config's ``name`` when the model has none.
    """
    d = model_config(cfg) if isinstance(cfg, str) else _plain(cfg)
    target = d.get("_target_")
    if not target:
        raise ConfigError(f"model config {d.get('name', '?')!r} has no _target_")
    kwargs = {k: v for k, v in d.items() if k not in _META_KEYS}
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    factory = import_object(target)
    try:
        model = factory(**kwargs)
    except TypeError as e:
        raise ConfigError(f"model {d.get('name', target)!r}: bad arguments {sorted(kwargs)}: {e}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{target} returned {type(model).__name__}, not a torch.nn.Module")
    if d.get("name") and not getattr(model, "name", None):
        model.name = str(d["name"])
    return model


def checkpoint_path(model_name: str, data_name: str, root: Path = CHECKPOINT_DIR) -> Path:
    """Where the trained weights of ``model_name`` on ``data_name`` live."""
    return Path(root) / f"{model_name}-{data_name}.pt"


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a state dict saved by :func:`harness.models.train.save_checkpoint` into ``model``."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"checkpoint {path} does not exist (train it with `tinyhil train`)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a cut-off or foreign file raises EOFError, RuntimeError, KeyError, ...
        raise ConfigError(
            f"checkpoint {path} is unreadable (truncated or not a torch checkpoint: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else 'empty'}); delete it and retrain with `tinyhil train "
            "save_checkpoint=true` (or restore it with `git checkout -- " + str(path) + "`)"
        ) from None
    if isinstance(state, dict):
        state = state.get("state_dict", state)
    if not isinstance(state, dict):
        raise ConfigError(
            f"checkpoint {path} holds a {type(state).__name__}, not a state dict; delete it and retrain with "
            "`tinyhil train save_checkpoint=true`"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ConfigError(f"checkpoint {path} does not fit the model: {e}") from None
    return model
