"""MobileNetV1 (Howard et al. 2017): a 3x3 stem and 13 depthwise-separable blocks, width 0.25-1.0."""

from __future__ import annotations

import torch
from torch import nn

from harness.models.common import ConvBNAct, make_divisible
from harness.models.mobilenetv2 import init_weights

# (output channels, stride) of the 13 depthwise-separable blocks, from the paper's Table 1
MBV1_SETTING: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)


class DepthwiseSeparable(nn.Module):
    """Depthwise 3x3 + ReLU, then pointwise 1x1 + ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, kernel: int = 3, act: str = "relu") -> None:
        super().__init__()
        self.dw = ConvBNAct(cin, cin, kernel, stride, groups=cin, act=act)
        self.pw = ConvBNAct(cin, cout, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class MobileNetV1(nn.Module):
    """MobileNetV1; names ``features.0.conv`` (stem), ``features.<i>.{dw,pw}.conv``, ``classifier``."""

    def __init__(self, width: float = 0.25, resolution: int = 128, num_classes: int = 1000,
                 in_channels: int = 3, dropout: float = 0.0, divisor: int = 8, act: str = "relu",
                 setting: tuple[tuple[int, int], ...] = MBV1_SETTING) -> None:
        super().__init__()
        self.input_shape = (in_channels, resolution, resolution)
        cin = make_divisible(32 * width, divisor)
        feats: list[nn.Module] = [ConvBNAct(in_channels, cin, 3, 2, act=act)]
        for c, s in setting:
            cout = make_divisible(c * width, divisor)
            feats.append(DepthwiseSeparable(cin, cout, s, act=act))
            cin = cout
        self.features = nn.Sequential(*feats)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(cin, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(self.dropout(torch.flatten(x, 1)))
