"""An MCUNet-style inverted-residual network: MobileNetV2 blocks with a kernel size and an expansion per block.

MCUNet's TinyNAS picks, per block, a depthwise kernel from {3, 5, 7} and an expansion from {3, 4, 6}; the
lists below describe such a searched network (the default resembles the published VWW/ImageNet models in
shape, it is not their exact weights or choices).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from harness.errors import ConfigError
from harness.models.common import ConvBNAct, make_divisible
from harness.models.mobilenetv2 import InvertedResidual, init_weights

# (output channels, repeats, first stride) per stage
MCUNET_STAGES: tuple[tuple[int, int, int], ...] = ((16, 2, 2), (24, 3, 2), (40, 3, 2), (48, 2, 1),
                                                   (96, 3, 2), (160, 1, 1))
MCUNET_KERNELS: tuple[int, ...] = (7, 3, 5, 5, 3, 7, 5, 3, 5, 3, 5, 7, 3, 7)
MCUNET_EXPANSIONS: tuple[int, ...] = (4, 3, 6, 3, 4, 6, 4, 3, 6, 4, 6, 6, 4, 6)


class MCUNet(nn.Module):
    """Stem conv, a t=1 first block, then the searched blocks; names ``blocks.<i>.{expand,dw,project}.conv``."""

    def __init__(self, width: float = 1.0, resolution: int = 96, num_classes: int = 10, in_channels: int = 3,
                 stem: int = 16, first: int = 8, stages: Sequence[Sequence[int]] = MCUNET_STAGES,
                 kernels: Sequence[int] = MCUNET_KERNELS, expansions: Sequence[float] = MCUNET_EXPANSIONS,
                 head: int | None = None, dropout: float = 0.0, divisor: int = 8) -> None:
        super().__init__()
        n_blocks = sum(int(s[1]) for s in stages)
        if len(kernels) != n_blocks or len(expansions) != n_blocks:
            raise ConfigError(f"mcunet: {n_blocks} blocks in stages but {len(kernels)} kernels and "
                              f"{len(expansions)} expansions")
        if any(k % 2 == 0 for k in kernels):
            raise ConfigError(f"mcunet: kernels must be odd, got {list(kernels)}")
        self.input_shape = (in_channels, resolution, resolution)
        cin = make_divisible(stem * width, divisor)
        self.stem = ConvBNAct(in_channels, cin, 3, 2, act="relu6")
        blocks: list[nn.Module] = [InvertedResidual(cin, make_divisible(first * width, divisor), 1, 1)]
        cin = make_divisible(first * width, divisor)
        i = 0
        for c, n, s in stages:
            cout = make_divisible(c * width, divisor)
            for j in range(int(n)):
                blocks.append(InvertedResidual(cin, cout, int(s) if j == 0 else 1, expansions[i], int(kernels[i]),
                                               divisor))
                cin, i = cout, i + 1
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNAct(cin, make_divisible(head * width, divisor), 1, act="relu6") if head else None
        cin = make_divisible(head * width, divisor) if head else cin
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(cin, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        if self.head is not None:
            x = self.head(x)
        x = self.pool(x)
        return self.classifier(self.dropout(torch.flatten(x, 1)))
