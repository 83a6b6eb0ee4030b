"""Declared quantizers (brevitas-style): a layer gets a weight quantizer, a tensor gets an activation quantizer;
the bit-width is a swappable attribute and the numerics live in :mod:`harness.quant.numerics`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from harness.errors import ConfigError
from harness.precision.config import ALLOWED_BITS
from harness.quant import numerics as N


@dataclass(frozen=True)
class WeightQuantPolicy:
    """How weights are quantized: per-channel symmetric, scales by ``max`` or ``mse`` clipping."""

    method: str = "max"


@dataclass(frozen=True)
class ActQuantPolicy:
    """How activation ranges are found: ``minmax`` or ``percentile`` calibration, optionally learned in QAT."""

    calibration: str = "minmax"  # minmax | percentile
    percentile: float = 99.99
    learn_clip: bool = False  # PACT: make lo/hi trainable parameters during QAT
    max_samples: int = 200_000  # values kept per tensor for percentile calibration


DEFAULT_WEIGHT_POLICY = WeightQuantPolicy()
DEFAULT_ACT_POLICY = ActQuantPolicy()


def _check_bits(bits: int) -> int:
    if int(bits) not in ALLOWED_BITS:
        raise ConfigError(f"bit-width {bits} not in {ALLOWED_BITS}")
    return int(bits)


class WeightQuant(nn.Module):
    """Per-output-channel symmetric weight quantizer; ``enabled=False`` passes the float weight through."""

    def __init__(self, bits: int = 8, policy: WeightQuantPolicy = DEFAULT_WEIGHT_POLICY) -> None:
        super().__init__()
        self.bits = _check_bits(bits)
        self.policy = policy
        self.enabled = True

    def scale(self, w: torch.Tensor) -> torch.Tensor:
        return N.weight_scales(w, self.bits, self.policy.method)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return w
        return N.fake_quant_weight(w, self.scale(w), self.bits)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, method={self.policy.method}, enabled={self.enabled}"


class ActQuant(nn.Module):
    """Quantizer of one activation tensor: range ``[lo, hi]`` (``lo`` fixed at 0 when ``unsigned``).

    Modes: ``observe`` records the range of what passes (float pass-through); otherwise, once calibrated and
    enabled, it fake-quantizes to ``bits``.
    """

    def __init__(self, bits: int = 8, unsigned: bool = False, policy: ActQuantPolicy = DEFAULT_ACT_POLICY) -> None:
        super().__init__()
        self.bits = _check_bits(bits)
        self.unsigned = unsigned
        self.policy = policy
        self.enabled = True
        self.observing = False
        self.lo = nn.Parameter(torch.zeros(()), requires_grad=False)
        self.hi = nn.Parameter(torch.ones(()), requires_grad=False)
        self.register_buffer("calibrated", torch.zeros((), dtype=torch.bool))
        self._samples: list[torch.Tensor] = []
        self._min, self._max = float("inf"), float("-inf")

    # -- calibration ------------------------------------------------------------------------------------------
    def start_observing(self) -> None:
        self.observing, self._samples, self._min, self._max = True, [], float("inf"), float("-inf")

    def _observe(self, x: torch.Tensor) -> None:
        xd = x.detach().float()
        self._min, self._max = min(self._min, float(xd.min())), max(self._max, float(xd.max()))
        if self.policy.calibration == "percentile":
            flat = xd.flatten()
            keep = max(1, self.policy.max_samples // 16)
            if flat.numel() > keep:  # a fixed stride keeps it deterministic
                flat = flat[:: flat.numel() // keep]
            self._samples.append(flat.cpu())

    def finish_observing(self) -> None:
        """Set ``[lo, hi]`` from what was observed."""
        self.observing = False
        if self._min == float("inf"):
            raise ConfigError("an activation quantizer saw no data during calibration")
        lo, hi = self._min, self._max
        if self.policy.calibration == "percentile" and self._samples:
            s = torch.cat(self._samples).numpy()
            p = self.policy.percentile
            lo, hi = float(np.percentile(s, 100 - p)), float(np.percentile(s, p))
        elif self.policy.calibration not in ("minmax", "percentile"):
            raise ConfigError(f"unknown calibration {self.policy.calibration!r} (minmax | percentile)")
        self.set_range(0.0 if self.unsigned else lo, hi)
        self._samples = []

    def set_range(self, lo: float, hi: float) -> None:
        with torch.no_grad():
            self.lo.fill_(min(0.0, float(lo)))
            self.hi.fill_(max(float(hi), 1e-6))
            self.calibrated.fill_(True)
        self.lo.requires_grad_(self.policy.learn_clip and not self.unsigned)
        self.hi.requires_grad_(self.policy.learn_clip)

    # -- integer parameters -----------------------------------------------------------------------------------
    def qparams(self) -> tuple[float, int]:
        """``(scale, zero_point)`` of the integer tensor."""
        s, zp = N.act_qparams(self.lo.detach(), self.hi.detach(), self.bits)
        return float(s), int(zp)

    def scale_tensor(self) -> torch.Tensor:
        return N.act_qparams(self.lo.detach(), self.hi.detach(), self.bits)[0]

    @property
    def active(self) -> bool:
        return self.enabled and not self.observing and bool(self.calibrated)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:
            self._observe(x)
            return x
        if not self.active:
            return x
        lo = self.lo if not self.unsigned else self.lo.detach()
        return N.fake_quant_act(x, lo, self.hi, self.bits)

    def extra_repr(self) -> str:
        return (f"bits={self.bits}, unsigned={self.unsigned}, range=[{float(self.lo):.4g}, {float(self.hi):.4g}], "
                f"calibration={self.policy.calibration}, learn_clip={self.policy.learn_clip}")
