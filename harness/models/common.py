"""Building blocks shared by the zoo: channel rounding and the fused Conv-BN-activation unit."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` as the original MobileNet code does.

    Rounds to the nearest multiple but never goes more than 10 % below ``v`` (so narrow layers do not
    lose a whole step of capacity).
    """
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _act(name: str | None) -> nn.Module | None:
    if name is None:
        return None
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    raise ValueError(f"unknown activation {name!r}")


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) + BatchNorm2d + optional ReLU/ReLU6: the unit that deploys as one fused kernel.

    Children are named ``conv``, ``bn``, ``act`` so the quantizable layer is ``<prefix>.conv``.
    """

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int] = 3, stride: int = 1,
                 groups: int = 1, act: str | None = "relu6") -> None:
        k = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
        pad = ((k[0] - 1) // 2, (k[1] - 1) // 2)
        layers: list[tuple[str, nn.Module]] = [
            ("conv", nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False)),
            ("bn", nn.BatchNorm2d(cout)),
        ]
        a = _act(act)
        if a is not None:
            layers.append(("act", a))
        super().__init__(OrderedDict(layers))
