"""DS-CNN (Zhang et al. 2017, "Hello Edge"), the small variant used by MLPerf Tiny keyword spotting.

A 10x4 stride-2 conv with 64 filters, four depthwise-separable blocks of 64, global average pool, dense. The
default input is the KWS MFCC shape (1, 49, 10); any (C, H, W) works for image tasks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from harness.models.common import ConvBNAct
from harness.models.mobilenetv1 import DepthwiseSeparable
from harness.models.mobilenetv2 import init_weights


class DSCNN(nn.Module):
    """DS-CNN; names ``stem.conv``, ``blocks.<i>.{dw,pw}.conv``, ``classifier``."""

    def __init__(self, resolution: int | Sequence[int] = (49, 10), num_classes: int = 12, in_channels: int = 1,
                 filters: int = 64, blocks: int = 4, stem_kernel: Sequence[int] = (10, 4), stem_stride: int = 2,
                 dropout: float = 0.2) -> None:
        super().__init__()
        h, w = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
        self.input_shape = (in_channels, int(h), int(w))
        self.stem = ConvBNAct(in_channels, filters, tuple(stem_kernel), stem_stride, act="relu")
        self.blocks = nn.Sequential(*[DepthwiseSeparable(filters, filters, 1) for _ in range(blocks)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(filters, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.blocks(self.stem(x)))
        return self.classifier(self.dropout(torch.flatten(x, 1)))
