"""MobileNetV2 (Sandler et al. 2018) with width multiplier, any input resolution/channels, any class count.

Channel counts follow the original (TF-slim) rounding to multiples of 8; the last 1x1 conv keeps 1280
channels for width < 1 as in the paper. Module names are stable and readable: ``features.<i>.conv`` (stem),
``features.<i>.{expand,dw,project}.conv`` (blocks), ``features.<last>.conv`` (head), ``classifier``.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.models.common import ConvBNAct, make_divisible

# (expansion t, output channels c, repeats n, first stride s), from the paper's Table 2
MBV2_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (kxk) -> linear project (1x1), with a residual add when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: float, kernel: int = 3,
                 divisor: int = 8) -> None:
        super().__init__()
        hidden = cin if expand == 1 else make_divisible(cin * expand, divisor)
        self.use_res = stride == 1 and cin == cout
        if expand != 1:
            self.expand = ConvBNAct(cin, hidden, 1, act="relu6")
        self.dw = ConvBNAct(hidden, hidden, kernel, stride, groups=hidden, act="relu6")
        self.project = ConvBNAct(hidden, cout, 1, act=None)
        self.has_expand = expand != 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.has_expand else x
        y = self.project(self.dw(y))
        return x + y if self.use_res else y


class MobileNetV2(nn.Module):
    """MobileNetV2; ``input_shape`` is (C, H, W) and is recorded for tracing/accounting."""

    def __init__(self, width: float = 1.0, resolution: int = 224, num_classes: int = 1000,
                 in_channels: int = 3, dropout: float = 0.2, divisor: int = 8,
                 setting: tuple[tuple[int, int, int, int], ...] = MBV2_SETTING,
                 last_channel: int = 1280) -> None:
        super().__init__()
        self.input_shape = (in_channels, resolution, resolution)
        cin = make_divisible(32 * width, divisor)
        last = make_divisible(last_channel * max(1.0, width), divisor)
        feats: list[nn.Module] = [ConvBNAct(in_channels, cin, 3, 2, act="relu6")]
        for t, c, n, s in setting:
            cout = make_divisible(c * width, divisor)
            for i in range(n):
                feats.append(InvertedResidual(cin, cout, s if i == 0 else 1, t, divisor=divisor))
                cin = cout
        feats.append(ConvBNAct(cin, last, 1, act="relu6"))
        self.features = nn.Sequential(*feats)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(last, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(self.dropout(torch.flatten(x, 1)))


def init_weights(model: nn.Module) -> None:
    """He init for convs, unit BN, small normal for the classifier (the torchvision recipe)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
