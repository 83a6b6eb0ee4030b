"""Build a model from its config (``configs/model/*.yaml``) and find its shipped checkpoint.

A model config names a class or factory in ``_target_`` and gives its keyword arguments; the keys ``name``,
``checkpoint``, ``description`` and ``integer`` describe the entry and are not passed on. ``user.yaml`` points at
the user's own ``torch.nn.Module`` (see :func:`harness.models.user.load_user_model`); ``tflite.yaml`` (``integer:
true``) at an int8 ``.tflite`` file, an integer model that runs as it is (:func:`build_int_model`).

Checkpoints are filed under :func:`model_id`: a zoo model's name, or for the user's model its class path and a hash
of its constructor arguments and input shape, so two user models never share a checkpoint.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from omegaconf import DictConfig, OmegaConf
from torch import nn

from harness import CONFIG_DIR, REPO_ROOT
from harness.errors import ConfigError
from harness.ir.model import IntModel

CHECKPOINT_DIR = REPO_ROOT / "checkpoints"
_META_KEYS = {"_target_", "name", "checkpoint", "description", "integer"}
_USER_TARGET = "harness.models.user.load_user_model"


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


def is_integer(cfg: Mapping | str) -> bool:
    """Whether the config describes an integer model that runs as it is (an imported ``.tflite`` file)."""
    d = model_config(cfg) if isinstance(cfg, str) else _plain(cfg)
    return bool(d.get("integer"))


def is_user_model(cfg: Mapping | str) -> bool:
    d = model_config(cfg) if isinstance(cfg, str) else _plain(cfg)
    return d.get("_target_") == _USER_TARGET


def model_id(cfg: Mapping | str) -> str:
    """The name checkpoints and results are filed under: the zoo name, or for the user's own model
    ``user-<module.Class>-<8 hex digits of its kwargs and input shape>``."""
    d = model_config(cfg) if isinstance(cfg, str) else _plain(cfg)
    if d.get("_target_") != _USER_TARGET:
        return str(d.get("name") or d.get("_target_"))
    path = str(d.get("path", "")).replace(":", ".")
    ident = json.dumps({"kwargs": d.get("kwargs") or {}, "input_shape": list(d.get("input_shape") or [])},
                       sort_keys=True)
    return f"user-{path}-{hashlib.sha256(ident.encode()).hexdigest()[:8]}"


def model_overrides(cfg: Mapping | str) -> list[str]:
    """The command-line overrides that select this model again (``model=user model.path=... ...``)."""
    d = model_config(cfg) if isinstance(cfg, str) else _plain(cfg)
    out = [f"model={d.get('name')}"]
    if d.get("_target_") == _USER_TARGET:
        out.append(f"model.path={d['path']}")
        out.append(f"model.input_shape=[{','.join(str(int(v)) for v in d['input_shape'])}]")
        out += [f"+model.kwargs.{k}={json.dumps(v)}" for k, v in sorted((d.get("kwargs") or {}).items())]
    elif d.get("integer") and d.get("path"):
        out.append(f"model.path={d['path']}")
    return [shlex.quote(o) for o in out]


def train_command(cfg: Mapping | str, data_name: str) -> str:
    """The ``tinyhil train`` command that makes the checkpoint of this model on ``data_name``."""
    return f"tinyhil train {' '.join(model_overrides(cfg))} data={data_name} save_checkpoint=true"


def build_int_model(cfg: Mapping | str) -> IntModel:
    """The integer model an ``integer: true`` config describes (``model=tflite model.path=FILE.tflite``)."""
    d = model_config(cfg) if isinstance(cfg, str) else _plain(cfg)
    if not d.get("integer"):
        raise ConfigError(f"model {d.get('name')!r} is a float model; build it with build_model")
    if not d.get("path") or d.get("path") == "???":
        raise ConfigError(f"model={d.get('name')} needs model.path=FILE.tflite")
    kwargs = {k: v for k, v in d.items() if k not in _META_KEYS}
    model = import_object(str(d["_target_"]))(**kwargs)
    if not isinstance(model, IntModel):
        raise ConfigError(f"{d['_target_']} returned {type(model).__name__}, not an integer model")
    return model


def build_model(cfg: Mapping | str, **overrides: Any) -> nn.Module:
    """Instantiate the model a config describes; ``overrides`` replace config keys (e.g. ``num_classes``).

    Sets ``model.name`` from the config's ``name`` when the model has none. An integer model (``model=tflite``)
    is a ConfigError saying what it can run: it has no float weights to train, fine-tune or search over.
    """
    d = model_config(cfg) if isinstance(cfg, str) else _plain(cfg)
    if d.get("integer"):
        raise ConfigError(
            f"model={d.get('name')} ({d.get('path')}) is an int8 model that runs as it is: use it with "
            f"`tinyhil run experiment=int8 model={d.get('name')} model.path=...` or `tinyhil profile`; training, "
            "QAT, sensitivity and bit-width search need a float torch model (model=user for your own)"
        )
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
