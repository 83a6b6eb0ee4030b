"""Receptive-field arithmetic for patch-based inference: pure integer functions, one axis at a time.

Ranges are half-open ``[lo, hi)`` in the coordinates of one tensor axis (rows or columns).
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.errors import ConfigError


def split_grains(size: int, n: int) -> tuple[tuple[int, int], ...]:
    """Cut ``[0, size)`` into ``n`` contiguous output grains.

    Split rule (``numpy.array_split``): every grain gets ``size // n`` pixels and the first ``size % n``
    grains one more, so grains differ by at most one pixel and the larger ones sit at the top/left.
    """
    if n < 1:
        raise ConfigError(f"the number of patches per side must be >= 1, got {n}")
    if n > size:
        raise ConfigError(f"cannot cut an axis of {size} pixels into {n} patches (at most {size})")
    base, extra = divmod(size, n)
    grains, lo = [], 0
    for i in range(n):
        hi = lo + base + (1 if i < extra else 0)
        grains.append((lo, hi))
        lo = hi
    return tuple(grains)


def input_extent(
    out_lo: int, out_hi: int, kernel: int, stride: int, pad_before: int, in_size: int
) -> tuple[int, int, int, int]:
    """Input rows a sliding-window layer reads to produce output rows ``[out_lo, out_hi)``.

    Returns ``(in_lo, in_hi, pad_lo, pad_hi)``: the window clipped to the real input ``[0, in_size)`` and the
    zero rows the kernel must add before/after it. The unclipped window is ``[out_lo*stride - pad_before,
    (out_hi-1)*stride - pad_before + kernel)``; only what falls outside the image becomes padding, so interior
    patches get none and border patches exactly the layer's own border padding.
    """
    if not 0 <= out_lo < out_hi:
        raise ConfigError(f"empty or negative output range [{out_lo}, {out_hi})")
    lo = out_lo * stride - pad_before
    hi = (out_hi - 1) * stride - pad_before + kernel
    in_lo, in_hi = max(lo, 0), min(hi, in_size)
    if in_lo >= in_hi:
        raise ConfigError(
            f"output range [{out_lo}, {out_hi}) reads only padding (kernel {kernel}, "
            f"stride {stride}, padding {pad_before}, input {in_size})"
        )
    return in_lo, in_hi, in_lo - lo, hi - in_hi


def receptive_field(grain: int, kernels_strides: Iterable[tuple[int, int]]) -> int:
    """Unclipped input side needed for ``grain`` output pixels of a chain of layers.

    ``kernels_strides`` lists ``(kernel, stride)`` from the first layer to the last; the recursion walks it
    backwards with ``r = stride * (r - 1) + kernel`` (for stride 1 that is ``r += kernel - 1``).
    """
    r = grain
    for k, s in reversed(list(kernels_strides)):
        r = s * (r - 1) + k
    return r


def out_size(in_size: int, kernel: int, stride: int, pad_lo: int, pad_hi: int) -> int:
    """Output length of a sliding window over ``in_size`` with the given padding (floor division)."""
    return (in_size + pad_lo + pad_hi - kernel) // stride + 1
