"""Load a task from its config (``configs/data/*.yaml``): source, deterministic subset sizes, normalisation.

Config keys: ``name`` (one of :data:`SOURCES`), ``n_train``/``n_test`` (null = all), ``seed`` (subset draw),
``mean``/``std`` (pixel normalisation), ``augment`` (shift/flip during training), ``test_fraction``/``split_seed``
for sets that ship without a test split.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness import CONFIG_DIR
from harness.config.schema import DataSchema
from harness.data import sources
from harness.data.base import DataSplits
from harness.errors import ConfigError

SOURCES: dict[str, Callable[..., DataSplits]] = {
    "fashion_mnist": lambda **kw: sources.fashion_mnist(),
    "mnist5k": sources.mnist5k,
    "digits": sources.digits,
    "lfw_person": sources.lfw_person,
}


def data_config(cfg: Mapping[str, Any] | str) -> dict[str, Any]:
    """A data config as a plain dict over :class:`~harness.config.schema.DataSchema`'s defaults; a name loads
    ``configs/data/<name>.yaml``."""
    if isinstance(cfg, str):
        path = CONFIG_DIR / "data" / f"{cfg}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown data set {cfg!r}; known: {', '.join(SOURCES)}")
        cfg = OmegaConf.load(path)
    raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    raw.pop("defaults", None)
    try:
        typed = OmegaConf.merge(OmegaConf.structured(DataSchema), raw)
        return OmegaConf.to_container(typed, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        raise ConfigError(f"data config: {getattr(e, 'full_key', '')}: {str(e).splitlines()[0]}") from None


def load_data(cfg: Mapping[str, Any] | str) -> DataSplits:
    """Load the data set a config (or a name) names and draw its subsets."""
    d = data_config(cfg)
    name = d["name"]
    if name not in SOURCES:
        raise ConfigError(f"unknown data set {name!r}; known: {', '.join(SOURCES)}")
    split_kw = {k: d[k] for k in ("test_fraction", "split_seed") if d[k] is not None}
    data = SOURCES[name](**split_kw)
    seed = int(d["seed"])
    data.train = data.train.subset(d["n_train"], seed)
    data.test = data.test.subset(d["n_test"], seed + 1)
    data.mean = float(d["mean"])
    data.std = float(d["std"])
    data.meta = {"seed": seed, "n_train": len(data.train), "n_test": len(data.test),
                 "augment": bool(d["augment"]), "flip": bool(d["flip"])}
    return data
