"""The two inference passes: a float pass and a quantized pass over the same calibration images, observed by
hooks on every unfused op (Conv2d, BatchNorm2d, ReLU/ReLU6, Linear).

The calibration images go through in chunks; each chunk is inferred once by the float model, whose op inputs
and outputs are kept, then once by the quantized model, whose op inputs and outputs are compared with the kept
ones on the fly (running :class:`~harness.search.quantune.metrics.NoiseStats`). Every image is therefore
inferred exactly twice, and only one chunk of float activations is held at a time. With ``chunk_size`` >= the
number of images, that is two forward calls in all.

An op's *input* is observed before the op runs (a forward pre-hook, so an in-place ReLU cannot overwrite it)
and, in the quantized model, before any input quantizer inside the op: its noise is what earlier layers left,
and the op's output noise additionally holds what quantizing this op (its input and weights) adds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from harness.errors import ConfigError
from harness.search.quantune.metrics import NoiseStats
from harness.search.quantune.units import UnfusedOp


@dataclass
class OpNoise:
    """Noise at the input and output of one unfused op, accumulated over the calibration set."""

    op: UnfusedOp
    inp: NoiseStats = field(default_factory=NoiseStats)
    out: NoiseStats = field(default_factory=NoiseStats)


@dataclass
class TwoPassResult:
    ops: list[OpNoise]
    forward_calls: int  # calls of the float model plus calls of the quantized model
    images: int
    passes: int = 2  # inference passes over the calibration set (each image: once float, once quantized)


def _tensor(v) -> torch.Tensor:
    t = v[0] if isinstance(v, (tuple, list)) else v
    if not isinstance(t, torch.Tensor):
        raise ConfigError(f"an observed op produced {type(t).__name__}, not a tensor")
    return t


class _Observer:
    """Hooks on one model: keeps (mode 'keep') or compares against (mode 'compare') op inputs/outputs."""

    def __init__(self, model: nn.Module, ops: Sequence[UnfusedOp], what: str, clone: bool = True) -> None:
        modules = dict(model.named_modules())
        by_module: dict[str, list[UnfusedOp]] = {}
        for op in ops:
            if op.module not in modules:
                raise ConfigError(
                    f"the {what} model has no module {op.module!r}; the quantizer must keep the "
                    "float model's module names (and keep BN/ReLU as separate modules)"
                )
            by_module.setdefault(op.module, []).append(op)
        self.calls = 0
        self.clone = clone
        self.kept: dict[tuple[str, str], torch.Tensor] = {}
        self.versions: dict[tuple[str, str], int] = {}
        self.noise: dict[str, OpNoise] = {op.key: OpNoise(op) for op in ops}
        self.mode = "keep"
        self.reference: dict[tuple[str, str], torch.Tensor] = {}
        self._count: dict[str, int] = {}
        self._last: tuple[torch.Tensor, torch.Tensor, NoiseStats] | None = None
        self._handles = [model.register_forward_pre_hook(self._root)]
        for name, lst in by_module.items():
            mod = modules[name]
            self._handles.append(mod.register_forward_pre_hook(self._pre(name, lst)))
            self._handles.append(mod.register_forward_hook(self._post(name, lst)))

    def _root(self, module, args) -> None:
        self.calls += 1
        self._count = {}
        self._last = None

    def _op(self, name: str, ops: list[UnfusedOp], advance: bool) -> UnfusedOp:
        i = self._count.get(name, 0)
        if advance:
            self._count[name] = i + 1
        if i >= len(ops):
            raise ConfigError(f"module {name!r} ran more often in one forward pass than when it was traced")
        return ops[i]

    def _see(self, op: UnfusedOp, where: str, t: torch.Tensor) -> None:
        # no detach(): the passes run under no_grad, and the same tensor object must be recognised when an op's
        # output arrives again as the next op's input
        if self.mode == "keep":
            self.kept[(op.key, where)] = t.clone() if self.clone else t
            self.versions[(op.key, where)] = t._version
        else:
            ref = self.reference.get((op.key, where))
            if ref is None:
                raise ConfigError(f"op {op.key!r} ran in the quantized pass but not in the float pass")
            stats = self.noise[op.key].inp if where == "in" else self.noise[op.key].out
            # an op's output is usually the next op's input: the same pair of tensors, measured once
            if self._last is not None and self._last[0] is ref and self._last[1] is t:
                one = self._last[2]
            else:
                one = NoiseStats.of(ref, t)
                self._last = (ref, t, one)
            stats.signal += one.signal
            stats.noise += one.noise
            stats.count += one.count

    def _pre(self, name: str, ops: list[UnfusedOp]):
        def hook(module, args):
            self._see(self._op(name, ops, advance=False), "in", _tensor(args))

        return hook

    def _post(self, name: str, ops: list[UnfusedOp]):
        def hook(module, args, output):
            self._see(self._op(name, ops, advance=True), "out", _tensor(output))

        return hook

    def check_unmodified(self) -> None:
        """Kept references must not have been changed in place after they were seen."""
        if self.clone:
            return
        for k, t in self.kept.items():
            if t._version != self.versions[k]:
                raise ConfigError(
                    f"the {k[1]}put of op {k[0]!r} was modified in place later in the float pass; "
                    "run the two passes with clone=True (or on a model without in-place ops)"
                )

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


@torch.no_grad()
def two_pass(
    float_model: nn.Module,
    quant_model: nn.Module,
    images: torch.Tensor,
    ops: Sequence[UnfusedOp],
    chunk_size: int | None = None,
    clone: bool = True,
) -> TwoPassResult:
    """Infer ``images`` once with each model and return the noise at every op's input and output.

    ``clone``: copy the float pass's tensors as they are seen (safe with in-place ops such as
    ``ReLU(inplace=True)``); ``False`` keeps references, for models known to have no in-place ops (checked)."""
    if images.ndim < 2 or len(images) == 0:
        raise ConfigError(f"calibration images must be a non-empty batch, got shape {tuple(images.shape)}")
    chunk = len(images) if chunk_size is None else int(chunk_size)
    if chunk <= 0:
        raise ConfigError(f"chunk_size must be positive, got {chunk_size}")
    modes = (float_model.training, quant_model.training)
    float_model.eval()
    quant_model.eval()
    ref = _Observer(float_model, ops, "float", clone)
    cmp = _Observer(quant_model, ops, "quantized")
    cmp.mode = "compare"
    try:
        for i in range(0, len(images), chunk):
            x = images[i : i + chunk]
            ref.kept, ref.versions = {}, {}
            float_model(x)
            ref.check_unmodified()
            cmp.reference = ref.kept
            quant_model(x)
            missing = {k for k, _ in ref.kept} - {k for k, o in cmp.noise.items() if o.out.count}
            if missing:
                raise ConfigError(
                    f"ops {sorted(missing)[:5]} ran in the float pass but not in the quantized pass"
                )
    finally:
        ref.remove()
        cmp.remove()
        float_model.train(modes[0])
        quant_model.train(modes[1])
    return TwoPassResult([cmp.noise[op.key] for op in ops], ref.calls + cmp.calls, len(images))
