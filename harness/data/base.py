"""Image sets held as uint8 arrays, deterministic subsets, and the conversion to a model's input tensor.

Images stay at their native size as ``uint8`` (N, C, H, W); they are resized to the model's resolution and
given the model's channel count batch by batch (a 60k x 3 x 96 x 96 float copy would not fit in memory).
Pixels map to ``(x / 255 - mean) / std``; the default mean = std = 0.5 gives [-1, 1], which a signed int8
input quantizer covers without waste.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from harness.errors import ConfigError


@dataclass
class ImageSet:
    """Images ``x`` (N, C, H, W) uint8 and integer labels ``y`` (N,)."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if self.x.ndim != 4 or self.x.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.x.dtype} {self.x.shape}")
        if len(self.x) != len(self.y):
            raise ValueError(f"{len(self.x)} images but {len(self.y)} labels")
        self.y = self.y.astype(np.int64)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, n: int | None, seed: int = 0) -> ImageSet:
        """``n`` images drawn without replacement by ``seed`` (all of them, shuffled, if ``n`` is None)."""
        idx = np.random.default_rng(seed).permutation(len(self))
        if n is not None:
            if n <= 0 or n > len(self):
                raise ConfigError(f"asked for {n} images from a set of {len(self)}")
            idx = np.sort(idx[:n])
        return ImageSet(self.x[idx], self.y[idx])


@dataclass
class DataSplits:
    """A named task: train and test sets plus what a model needs to know about them."""

    name: str
    train: ImageSet
    test: ImageSet
    classes: list[str]
    mean: float = 0.5
    std: float = 0.5
    meta: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def native_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.train.x.shape[1:])  # type: ignore[return-value]


def split_train_test(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Split a set that ships without a test split; stratified so every class appears in both parts."""
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test_idx.append(idx[: max(1, round(len(idx) * test_fraction))])
    mask = np.zeros(len(y), bool)
    mask[np.concatenate(test_idx)] = True
    return ImageSet(x[~mask], y[~mask]), ImageSet(x[mask], y[mask])


def to_model_input(x: np.ndarray | torch.Tensor, input_shape: Sequence[int], mean: float = 0.5,
                   std: float = 0.5) -> torch.Tensor:
    """uint8 (N, C, H, W) images -> float tensor of the model's (C, H, W): resized (bilinear), channels
    replicated (gray -> RGB) or averaged (RGB -> gray), normalised."""
    c, h, w = (int(s) for s in input_shape)
    t = torch.as_tensor(x).float().div_(255.0)
    if t.shape[2:] != (h, w):
        t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False,
                          antialias=bool(t.shape[2] > h or t.shape[3] > w))
    if t.shape[1] != c:
        if t.shape[1] == 1:
            t = t.expand(-1, c, -1, -1)
        elif c == 1:
            t = t.mean(1, keepdim=True)
        else:
            raise ConfigError(f"cannot turn {t.shape[1]}-channel images into {c} channels")
    return (t - mean) / std


def augment_batch(x: np.ndarray, rng: np.random.Generator, pad: int = 2, flip: bool = True) -> np.ndarray:
    """Random shift (pad and crop at native size) and horizontal flip, applied to uint8 images."""
    n, _, h, w = x.shape
    out = np.empty_like(x)
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dy, dx = rng.integers(0, 2 * pad + 1, n), rng.integers(0, 2 * pad + 1, n)
    flips = rng.random(n) < 0.5 if flip else np.zeros(n, bool)
    for i in range(n):
        img = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = img[:, :, ::-1] if flips[i] else img
    return out


def batches(data: ImageSet, input_shape: Sequence[int], batch_size: int = 128, shuffle: bool = False,
            seed: int = 0, augment: bool = False, mean: float = 0.5, std: float = 0.5,
            flip: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (inputs, labels) batches in the model's input format; deterministic for a given ``seed``."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data)) if shuffle else np.arange(len(data))
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        x = data.x[idx]
        if augment:
            x = augment_batch(x, rng, flip=flip)
        yield to_model_input(x, input_shape, mean, std), torch.from_numpy(data.y[idx])
