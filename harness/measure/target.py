"""What identifies a measurement target: the board, its timer, the kernel build and the compiler flags.

Counts of two targets are never compared (see :class:`~harness.table.lut.Target`). The firmware hash covers the
code that runs a layer, not the model: the runtime and kernel sources, the board support code, the build script,
the compiler version and any extra flags. Two images that differ only in their generated model (a profiling batch
and the deployed network) therefore share one target, which is what lets the profiled table price the network.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from harness.build.project import firmware_key
from harness.config.board import BoardConfig, load_board_config, repo_root
from harness.synth.batch import BATCH_MODEL_VERSION
from harness.table.lut import Target

_OPT_RE = re.compile(r'"(-O[0-3sgz]|-Ofast)"')


def firmware_hash(board: BoardConfig | str, build_flags: Iterable[str] = ()) -> str:
    """12 hex digits naming the kernel build on ``board`` (sources, build script, compiler, flags) and the
    version of the profiling batch model (:data:`harness.synth.batch.BATCH_MODEL_VERSION`), whose layer
    parameters select the kernels' specialisations: a table profiled with another version is measured again."""
    key = firmware_key(load_board_config(board), tuple(build_flags))
    return hashlib.sha256(f"{key}\0batch-model {BATCH_MODEL_VERSION}".encode()).hexdigest()[:12]


def compiler_flags(board: BoardConfig | str, build_flags: Iterable[str] = ()) -> str:
    """The flags that shape the kernels' code: CPU flags, optimisation level of the build script, extras."""
    cfg = load_board_config(board)
    main = repo_root() / "firmware" / "platform" / "builder" / "main.py"
    opt = _OPT_RE.search(main.read_text()) if main.is_file() else None
    return " ".join([*cfg.cpu_flags, opt.group(1) if opt else "-O?", *build_flags])


def measurement_target(board: BoardConfig | str, build_flags: Iterable[str] = ()) -> Target:
    """The :class:`Target` every count measured on ``board`` with this firmware is filed under."""
    cfg = load_board_config(board)
    flags = tuple(build_flags)
    timer = f"{cfg.timer.source}:{cfg.timer.model}" if cfg.timer.model else cfg.timer.source  # profile + model
    return Target(cfg.name, timer, firmware_hash(cfg, flags), compiler_flags(cfg, flags))


def timer_keys(target: Target) -> dict:
    """Summary keys saying what a target's counts are: the timer (``qemu-cycles``, ``qemu-icount``,
    ``dwt-cycles``) and, for emulated cycles, the timing profile and cycle-model version the target carries."""
    source, _, model = str(target.timer).partition(":")
    keys: dict = {"timer": source}
    if model:
        profile, _, version = model.partition("/")
        keys.update(timing_profile=profile, timing_model_version=version)
    return keys


def table_path(board: BoardConfig | str, root: str | Path = "results/lut") -> Path:
    """Where the board's latency table lives: ``<root>/<board>`` (``.parquet`` and ``.csv``)."""
    cfg = load_board_config(board)
    return Path(root) / cfg.name
