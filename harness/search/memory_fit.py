"""The board's memory budget as the searches see it: ``fits(config)``, judged as the build judges the network.

A precision configuration changes the bytes of every weight array (packed at ``w_bits``) and of every activation
tensor (packed at its activation group's precision), so it changes the arena plan, the kernels' scratch and the
flash the model needs. :class:`BoardFit` prices a configuration with the firmware's own accounting: it builds
the integer model the export would produce *as far as memory goes* (the layer graph, every tensor at its
group's precision, weight arrays of the right shape; :func:`skeleton_model`), asks
:func:`harness.codegen.artifact.layer_estimate` for what :func:`~harness.codegen.artifact.layer_artifact` would
hand the fit check (the arena planner's plan, the C scratch functions, the weights' flash), and applies the
build's own :func:`harness.build.fit.check_fit` against the firmware linked once with every kernel the network's
operators have at any pair (:func:`~harness.build.fit.any_pair_footprint`: an upper bound, so that judging a
configuration never links). So a configuration the searches accept is one the build
accepts, and a raise of the Free Bits refiner never produces a network that fails only at build time.

Parameters that do not change sizes (weight values, multipliers) are placeholders; zero points follow the
activations (a ReLU's output at the bottom of its range), as the export sets them, since kernels may size their
scratch by them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from harness.build.fit import Footprint, any_pair_footprint, check_fit
from harness.build.sizes import min_stack_bytes
from harness.codegen.artifact import layer_estimate
from harness.config.board import BoardConfig, load_board_config, repo_root
from harness.errors import ConfigError, DoesNotFitError
from harness.graph.spec import INPUT, LayerSpec
from harness.ir.model import AddParams, IntLayer, IntModel, TensorSpec, qrange
from harness.memory.budget import param_bytes, peak_sram_bytes
from harness.memory.estimate import MemoryEstimate
from harness.precision.config import PrecisionConfig
from harness.precision.groups import activation_groups, group_bits

_UNIT_MULT = 1 << 30  # 0.5: any valid multiplier; sizes do not depend on it


def _unsigned(layers: Sequence[LayerSpec]) -> dict[str, bool]:
    """Per tensor: whether it holds a ReLU's output (zero point at the bottom of the range)."""
    out = {INPUT: False}
    for s in layers:
        relu = s.activation in ("relu", "relu6")
        out[s.name] = relu or (s.op == "avgpool" and out[s.inputs[0]])
    return out


def skeleton_model(
    layers: Sequence[LayerSpec], config: PrecisionConfig, *, output_bits: int = 8, name: str = "fit"
) -> IntModel:
    """The integer model of ``layers`` under ``config`` as far as memory goes (see the module docstring)."""
    layers = list(layers)
    groups = activation_groups(layers)
    gb = group_bits(groups, config, output_bits=output_bits)
    unsigned = _unsigned(layers)
    first = next(s for s in layers if INPUT in s.inputs)
    tensors: dict[str, TensorSpec] = {}

    def tensor(t: str, shape: tuple[int, int, int]) -> TensorSpec:
        bits = gb[groups.group_of[t]]
        zp = qrange(bits)[0] if unsigned[t] else 0
        return TensorSpec(t, tuple(shape), bits, scale=1.0, zero_point=zp)

    tensors[INPUT] = tensor(INPUT, first.in_shape)
    ils: list[IntLayer] = []
    for s in layers:
        out = tensors[s.name] = tensor(s.name, s.out_shape)
        lo, hi = qrange(out.bits)
        act_min = out.zero_point if s.activation in ("relu", "relu6") else lo
        common = {"kernel": tuple(s.kernel), "stride": s.stride, "padding": tuple(s.padding)}
        common |= {"act_min": act_min, "act_max": hi}
        if s.has_weights:
            cout = s.out_shape[2]
            arrays = {"weight": np.zeros(s.weight_shape, np.int8), "w_bits": config[s.name][1],
                      "bias": np.zeros(cout, np.int32), "multiplier": np.full(cout, _UNIT_MULT, np.int32),
                      "shift": np.zeros(cout, np.int32)}  # fmt: skip
        elif s.op == "add":
            arrays = {"add": AddParams(20, _UNIT_MULT, 0, _UNIT_MULT, 0, _UNIT_MULT, -20)}
        else:
            arrays = {"multiplier": np.array([_UNIT_MULT], np.int32), "shift": np.zeros(1, np.int32)}
        ils.append(IntLayer(s.name, s.op, list(s.inputs), s.name, **arrays, **common))
    return IntModel(tensors, ils, INPUT, layers[-1].name, name=name)


@dataclass
class BoardFit:
    """``fits(config)`` for one network on one board (see the module docstring); also callable as a function.

    Results are cached by what sizes depend on: every activation group's precision and every weight precision.
    """

    layers: tuple[LayerSpec, ...]
    board: BoardConfig
    output_bits: int = 8
    variant: str = "opt"

    def __post_init__(self) -> None:
        self.layers = tuple(self.layers)
        self._groups = activation_groups(self.layers)
        self._cache: dict[tuple, tuple[MemoryEstimate, str]] = {}
        self._firmware: Footprint | None = None

    @property
    def firmware(self) -> Footprint:
        """The firmware besides the model's data, every kernel the network may run linked in (linked once)."""
        if self._firmware is None:
            self._firmware = any_pair_footprint(self.board, {s.op for s in self.layers})
        return self._firmware

    def _key(self, config: PrecisionConfig) -> tuple:
        gb = group_bits(self._groups, config, output_bits=self.output_bits)
        return tuple(gb), tuple(config[n][1] for n in self._groups.weighted)

    def judge(self, config: PrecisionConfig) -> tuple[MemoryEstimate, str]:
        """``(estimate, why)``: what the build would need, and ``""`` when it fits the board (else the build's own
        one-line reason)."""
        k = self._key(config)
        if k not in self._cache:
            est = layer_estimate(
                skeleton_model(self.layers, config, output_bits=self.output_bits), variant=self.variant
            )
            try:
                check_fit(self.board, est, self.firmware)
                why = ""
            except DoesNotFitError as e:
                why = str(e)
            self._cache[k] = (est, why)
        return self._cache[k]

    def need(self, config: PrecisionConfig) -> MemoryEstimate:
        return self.judge(config)[0]

    def why(self, config: PrecisionConfig) -> str:
        """Why ``config`` does not fit (empty when it does)."""
        return self.judge(config)[1]

    def __call__(self, config: PrecisionConfig) -> bool:
        return not self.judge(config)[1]


def chip_limits(cfg: BoardConfig, profile: Any) -> BoardConfig:
    """``cfg`` with its flash and SRAM no larger than the real chip a timing profile places them in (an emulated
    board stands for that chip: ``timing=stm32h743`` has 2 MB of flash and 512 KB of AXI SRAM for .data/.bss, the
    stack in the DTCM, where the emulated board has 4 MB each)."""
    code, data, stack = (profile.memory(r) for r in ("code", "data", "stack"))
    flash = min(cfg.flash.size, code.size) if code.size is not None else cfg.flash.size
    sram = cfg.sram.size
    if data.size is not None:
        script = repo_root() / cfg.linker_script
        own_stack = min_stack_bytes(script) if stack.name != data.name and script.is_file() else 0
        sram = min(sram, data.size + own_stack)  # check_fit counts the stack in the SRAM
    return replace(cfg, flash=replace(cfg.flash, size=flash), sram=replace(cfg.sram, size=sram))


def board_fit(layers: Sequence[LayerSpec], board: Any, *, output_bits: int = 8) -> BoardFit:
    """The memory judge of ``layers`` on ``board``: a :class:`~harness.boards.Board` (an emulated board with a
    timing profile is held to the real chip's memories, :func:`chip_limits`), a BoardConfig, or a board name."""
    cfg = load_board_config(getattr(board, "cfg", board))
    profile = getattr(getattr(board, "cycles", None), "profile", None)
    return BoardFit(tuple(layers), chip_limits(cfg, profile) if profile is not None else cfg, output_bits)


def excess(fit: BoardFit, config: PrecisionConfig) -> tuple[int, int]:
    """``(SRAM bytes, flash bytes)`` by which ``config`` exceeds the board (0 where it fits), by the terms of
    :func:`~harness.build.fit.check_fit`."""
    est, cfg, fw = fit.need(config), fit.board, fit.firmware
    script = repo_root() / cfg.linker_script
    stack = min_stack_bytes(script) if script.is_file() else 0
    sram = est.arena + est.scratch + fw.sram + stack - cfg.sram.size
    flash = est.weights + fw.flash - cfg.flash.size
    return max(0, sram), max(0, flash)


def within_budget(
    solve: Callable[[dict], PrecisionConfig],
    fit: BoardFit,
    *,
    sram_bytes: int | None = None,
    flash_bytes: int | None = None,
    tries: int = 8,
) -> PrecisionConfig:
    """A budgeted search's answer that the board accepts.

    ``solve({"sram_bytes": .., "flash_bytes": ..})`` runs a search whose own accounting (live activation bytes,
    parameter bytes: :mod:`harness.memory.budget`) approximates the build's; when its answer does not fit, the
    limit it broke is lowered by the excess the build's accounting found (scratch, runtime, stack and the arena
    plan's fragmentation included) and the search runs again. ConfigError after ``tries`` answers that do not fit.
    """
    limits = {"sram_bytes": sram_bytes, "flash_bytes": flash_bytes}
    layers = list(fit.layers)
    for _ in range(tries):
        config = solve({k: v for k, v in limits.items() if v is not None})
        over_sram, over_flash = excess(fit, config)
        if not over_sram and not over_flash:
            return config
        if over_sram:
            live = peak_sram_bytes(layers, config, output_bits=fit.output_bits)
            limits["sram_bytes"] = min(limits["sram_bytes"] or live, live) - over_sram
        if over_flash:
            pb = param_bytes(layers, config)
            limits["flash_bytes"] = min(limits["flash_bytes"] or pb, pb) - over_flash
        if any(v is not None and v <= 0 for v in limits.values()):
            break
    raise ConfigError(
        f"no configuration the search finds fits {fit.board.name} within {tries} tries "
        f"({fit.why(config)}); lower the budget's precisions or use a board with more memory"
    )
