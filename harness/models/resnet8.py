"""ResNet-8 as in the MLPerf Tiny image-classification benchmark (CIFAR-10 shape, ~78 k parameters).

Stem 3x3/16, three residual stacks of 16, 32, 64 filters (the last two halve the resolution and use a strided
1x1 conv without BN on the shortcut, as the reference Keras model does), global average pool, dense.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.models.common import ConvBNAct
from harness.models.mobilenetv2 import init_weights


class ResidualStack(nn.Module):
    """conv3x3-BN-ReLU, conv3x3-BN, add shortcut, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(cin, cout, 3, stride, act="relu")
        self.conv2 = ConvBNAct(cout, cout, 3, 1, act=None)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride) if (stride != 1 or cin != cout) else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.shortcut(x) if self.shortcut is not None else x
        return self.relu(s + self.conv2(self.conv1(x)))


class ResNet8(nn.Module):
    """MLPerf Tiny ResNet-8; names ``stem.conv``, ``stack<i>.{conv1,conv2}.conv``, ``stack<i>.shortcut``."""

    def __init__(self, resolution: int = 32, num_classes: int = 10, in_channels: int = 3,
                 filters: tuple[int, int, int] = (16, 32, 64)) -> None:
        super().__init__()
        self.input_shape = (in_channels, resolution, resolution)
        f1, f2, f3 = filters
        self.stem = ConvBNAct(in_channels, f1, 3, 1, act="relu")
        self.stack1 = ResidualStack(f1, f1, 1)
        self.stack2 = ResidualStack(f1, f2, 2)
        self.stack3 = ResidualStack(f2, f3, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(f3, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stack3(self.stack2(self.stack1(self.stem(x))))
        return self.classifier(torch.flatten(self.pool(x), 1))
