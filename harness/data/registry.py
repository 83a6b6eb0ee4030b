"""Load a task from its config (``configs/data/*.yaml``): source, deterministic subset sizes, normalisation.

Config keys: ``name`` (one of :data:`SOURCES`), ``n_train``/``n_test`` (null = all), ``seed`` (subset draw),
``mean``/``std`` (pixel normalisation), ``augment`` (shift/flip during training), ``test_fraction``/``split_seed``
for sets that ship without a test split.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.data import sources
from harness.data.base import DataSplits
from harness.errors import ConfigError

SOURCES: dict[str, Callable[..., DataSplits]] = {
    "fashion_mnist": lambda **kw: sources.fashion_mnist(),
    "mnist5k": sources.mnist5k,
    "digits": sources.digits,
    "lfw_person": sources.lfw_person,
}


def load_data(cfg: Mapping[str, Any] | str) -> DataSplits:
    """Load the data set a config names and draw its subsets."""
    if isinstance(cfg, str):
        cfg = {"name": cfg}
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    name = cfg.get("name")
    if name not in SOURCES:
        raise ConfigError(f"unknown data set {name!r}; known: {', '.join(SOURCES)}")
    split_kw = {k: cfg[k] for k in ("test_fraction", "split_seed") if cfg.get(k) is not None}
    data = SOURCES[name](**split_kw)
    seed = int(cfg.get("seed", 0))
    data.train = data.train.subset(cfg.get("n_train"), seed)
    data.test = data.test.subset(cfg.get("n_test"), seed + 1)
    data.mean = float(cfg.get("mean", data.mean))
    data.std = float(cfg.get("std", data.std))
    data.meta = {"seed": seed, "n_train": len(data.train), "n_test": len(data.test),
                 "augment": bool(cfg.get("augment", False)), "flip": bool(cfg.get("flip", True))}
    return data
