"""Choosing bit-widths: starting points (hardware-agnostic or budgeted) and the Free Bits refiner.

``make_start(method_cfg, layers, **context)`` builds the starting
:class:`~harness.precision.config.PrecisionConfig` named by ``method_cfg["name"]`` (the Hydra ``method`` group):
``uniform``, ``bitops``, ``file``, and the methods other modules register (``quantune``, ``quantmcu``). A
method module registers itself with ``@register_start("name")`` on a function ``fn(params: dict, layers:
list[LayerSpec], context: dict) -> PrecisionConfig``, where ``params`` is the method config without ``name``
and ``context`` carries what the caller has (``table``, ``model``, ``data``, ``fits``, ...). An unregistered name
imports the modules of this package whose names start with it (``quantune`` -> ``harness.search.quantune*``)
and looks again.

Every start is passed through :func:`~harness.precision.groups.harmonize`, so a method that chose each
layer's input bits independently still yields a consistent configuration (raised layers are listed in
``meta["harmonized"]``). With ``fits`` in the context (the board's memory budget,
:class:`~harness.search.memory_fit.BoardFit`), a start that does not fit is refused with the build's own reason
(DoesNotFitError) before anything is built; the BitOPs search tightens its own memory limits until its answer
fits (:func:`~harness.search.memory_fit.within_budget`).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.config.schema import method_defaults
from harness.errors import ConfigError, DoesNotFitError
from harness.graph.spec import LayerSpec
from harness.precision.config import PrecisionConfig
from harness.precision.groups import activation_groups, harmonize
from harness.search.bitops_budget import bitops_search
from harness.search.bitops_budget import check_params as bitops_check
from harness.search.memory_fit import BoardFit, within_budget
from harness.search.uniform import uniform_config

StartFn = Callable[[dict, list[LayerSpec], dict], PrecisionConfig]
CheckFn = Callable[[dict], None]
_REGISTRY: dict[str, StartFn] = {}
_CHECKS: dict[str, CheckFn] = {}


def register_start(name: str, check: CheckFn | None = None) -> Callable[[StartFn], StartFn]:
    """Decorator: make ``fn`` the starting-point method ``name``; ``check(params)`` validates its options
    before any work starts (ConfigError naming the option)."""

    def deco(fn: StartFn) -> StartFn:
        _REGISTRY[name] = fn
        if check is not None:
            _CHECKS[name] = check
        return fn

    return deco


def register_check(name: str, check: CheckFn) -> None:
    """The option check of method ``name`` (for methods an experiment drives itself, e.g. QuantMCU)."""
    _CHECKS[name] = check


def check_method(method_cfg: Mapping | Any) -> None:
    """ConfigError when the method is unknown or one of its options is invalid: run before any profiling,
    training or measuring, so a bad option never costs the work that precedes its use."""
    params = _plain(method_cfg)
    name = params.pop("name", None)
    if not name:
        raise ConfigError("method config needs a 'name' (uniform, bitops, file, quantune, quantmcu)")
    if name not in _REGISTRY and name not in _CHECKS and str(name).isidentifier():
        _discover(str(name))
    if name not in _REGISTRY and name not in _CHECKS:
        raise ConfigError(f"unknown search method {name!r}; available: {available_starts()}")
    if name in _CHECKS:
        _CHECKS[name](params)


def available_starts() -> list[str]:
    return sorted(_REGISTRY)


def _plain(cfg: Any) -> dict:
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"method config must be a mapping with a 'name', got {cfg!r}")
    return dict(cfg)


def _take(params: dict, method: str) -> dict[str, Any]:
    """Method parameters over the method schema's defaults (harness.config.schema, the one place they live);
    unknown keys are a ConfigError (catches typos in plain mappings that bypassed Hydra)."""
    allowed = {k: v for k, v in method_defaults(method).items() if k != "name"}
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"method {method!r} does not take {unknown}; it takes {sorted(allowed)}")
    return {**allowed, **params}


def _discover(name: str) -> None:
    """Import the modules of this package named after a method (``quantune`` finds ``quantune.py``,
    ``quantunev2.py``, ...), so that their ``@register_start`` runs."""

    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith(name):
            try:
                importlib.import_module(f"{__name__}.{mod.name}")
            except ModuleNotFoundError as e:
                raise ConfigError(
                    f"search method {name!r}: module {mod.name!r} needs {e.name!r}: {e}"
                ) from None


def make_start(method_cfg: Mapping | Any, layers: Sequence[LayerSpec], **context: Any) -> PrecisionConfig:
    """The starting configuration for ``method_cfg`` (a mapping or DictConfig with ``name``)."""

    params = _plain(method_cfg)
    name = params.pop("name", None)
    if not name:
        raise ConfigError("method config needs a 'name' (uniform, bitops, file, quantune, quantmcu)")
    if name not in _REGISTRY and str(name).isidentifier():
        _discover(str(name))
    if name not in _REGISTRY:
        raise ConfigError(f"unknown search method {name!r}; available: {available_starts()}")
    layers = list(layers)
    cfg = _REGISTRY[name](params, layers, dict(context))
    if not isinstance(cfg, PrecisionConfig):
        raise ConfigError(f"search method {name!r} returned {type(cfg).__name__}, not a PrecisionConfig")
    cfg = harmonize(activation_groups(layers), cfg)
    cfg.meta.setdefault("method", name)
    fits = context.get("fits")
    if fits is not None and not fits(cfg):
        why = fits.why(cfg) if isinstance(fits, BoardFit) else "it exceeds the memory budget"
        raise DoesNotFitError(f"the start of method {name!r} does not fit: {why}")
    return cfg


def _check_uniform(params: dict) -> None:
    p = _take(params, "uniform")
    for key in ("a_bits", "w_bits", "input_bits"):
        if p[key] not in (2, 4, 8):
            raise ConfigError(f"method.{key} must be 2, 4 or 8, got {p[key]}")


def _check_file(params: dict) -> None:
    p = _take(params, "file")
    if not p["path"]:
        raise ConfigError("method 'file' needs method.path: a saved precision configuration (.json/.yaml)")
    if not Path(p["path"]).is_file():
        raise ConfigError(f"method.path {p['path']} does not exist (a previous run's final_config.json?)")


@register_start("uniform", check=_check_uniform)
def _start_uniform(params: dict, layers: list[LayerSpec], context: dict) -> PrecisionConfig:
    p = _take(params, "uniform")
    return uniform_config(layers, p["a_bits"], p["w_bits"], input_bits=p["input_bits"])


@register_start("bitops", check=lambda params: bitops_check(**_take(params, "bitops")) and None)
def _start_bitops(params: dict, layers: list[LayerSpec], context: dict) -> PrecisionConfig:
    p = _take(params, "bitops")
    fits = context.get("fits")
    if not isinstance(fits, BoardFit):
        return bitops_search(layers, table=context.get("table"), **p)
    sram, flash = p.pop("sram_bytes"), p.pop("flash_bytes")
    return within_budget(
        lambda lim: bitops_search(layers, table=context.get("table"), **p, **lim),
        fits,
        sram_bytes=sram,
        flash_bytes=flash,
    )


@register_start("file", check=_check_file)
def _start_file(params: dict, layers: list[LayerSpec], context: dict) -> PrecisionConfig:
    p = _take(params, "file")
    if not p["path"]:
        raise ConfigError("method 'file' needs a 'path' to a saved precision configuration (.json/.yaml)")
    return PrecisionConfig.load(p["path"])


__all__ = [
    "CheckFn", "StartFn", "available_starts", "check_method", "make_start", "register_check", "register_start",
]
