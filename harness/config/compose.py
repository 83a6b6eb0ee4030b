"""Compose tinyhil's Hydra configs from Python (tests, notebooks, the CLI's up-front check), schemas included."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from harness import CONFIG_DIR
from harness.config.schema import register


def compose_config(command: str, overrides: Sequence[str] = (), *, hydra: bool = False) -> DictConfig:
    """The config ``tinyhil <command> <overrides>`` would run with (``configs/<command>.yaml``); ``hydra`` also
    returns Hydra's own node (run folder, sweep settings)."""
    register()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=command, overrides=list(overrides), return_hydra_config=hydra)


def group_config(group: str, name: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """One option of a config group (``configs/<group>/<name>.yaml`` over its schema) as a plain dict."""
    register()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=f"{group}/{name}", overrides=list(overrides))
    return OmegaConf.to_container(cfg[group], resolve=True)  # type: ignore[return-value]
