"""Exact BatchNorm folding (inference-mode BN) into the preceding convolution."""

from __future__ import annotations

import torch
from torch import nn


def fold_bn(weight: torch.Tensor, bias: torch.Tensor | None, mean: torch.Tensor, var: torch.Tensor,
            gamma: torch.Tensor | None, beta: torch.Tensor | None, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Folded ``(weight, bias)`` such that ``conv(x, w', b') == bn(conv(x, w, b))`` in eval mode.

    ``w' = w * g / sqrt(var + eps)`` per output channel (dim 0) and ``b' = (b - mean) * g / sqrt(var + eps) + beta``.
    Computed in float64 and returned in the weight's dtype.
    """
    dt = weight.dtype
    w, m, v = weight.double(), mean.double(), var.double()
    g = gamma.double() if gamma is not None else torch.ones_like(m)
    be = beta.double() if beta is not None else torch.zeros_like(m)
    b = bias.double() if bias is not None else torch.zeros_like(m)
    k = g / torch.sqrt(v + eps)
    w_f = w * k.reshape(-1, *([1] * (w.dim() - 1)))
    b_f = (b - m) * k + be
    return w_f.to(dt), b_f.to(dt)


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Folded weight and bias of a conv followed by ``bn`` (``bn`` None: the conv's own, bias zero if absent)."""
    w = conv.weight.detach()
    b = conv.bias.detach() if conv.bias is not None else None
    if bn is None:
        return w.clone(), (b.clone() if b is not None else torch.zeros(w.shape[0], dtype=w.dtype))
    if not bn.track_running_stats or bn.running_mean is None:
        raise ValueError("cannot fold a BatchNorm without running statistics")
    return fold_bn(w, b, bn.running_mean, bn.running_var, bn.weight.detach() if bn.affine else None,
                   bn.bias.detach() if bn.affine else None, bn.eps)
