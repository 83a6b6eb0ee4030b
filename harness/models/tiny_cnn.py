"""A very small CNN for fast tests: every op kind tinyhil deploys, a few thousand parameters."""

from __future__ import annotations

import torch
from torch import nn

from harness.models.common import ConvBNAct
from harness.models.mobilenetv2 import init_weights


class TinyCNN(nn.Module):
    """conv3x3 -> depthwise s2 -> pointwise -> pointwise + residual add -> global pool -> fc."""

    def __init__(self, resolution: int = 8, num_classes: int = 10, in_channels: int = 1, channels: int = 16,
                 stem: int = 8) -> None:
        super().__init__()
        self.input_shape = (in_channels, resolution, resolution)
        self.stem = ConvBNAct(in_channels, stem, 3, 1, act="relu")
        self.dw = ConvBNAct(stem, stem, 3, 2, groups=stem, act="relu")
        self.pw = ConvBNAct(stem, channels, 1, act="relu")
        self.res = ConvBNAct(channels, channels, 1, act=None)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(self.stem(x)))
        y = self.relu(y + self.res(y))
        return self.classifier(torch.flatten(self.pool(y), 1))
