"""Packed storage of 2/4/8-bit tensors and weights (the convention of :mod:`harness.ir.model`).

The innermost dimension is a *row*; every row starts at a byte boundary. Inside a byte, element ``j`` of a row
sits at bit ``(j % (8 // bits)) * bits``: low bits first, two's complement. Unused bits at the end of a row are 0.

Worked example, ``bits = 2``, one row ``[1, -2, 0, -1, 1]``::

    two's complement (2 bits):  1 -> 01, -2 -> 10, 0 -> 00, -1 -> 11, 1 -> 01
    byte 0 = e0 | e1 << 2 | e2 << 4 | e3 << 6 = 0b11_00_10_01 = 0xC9
    byte 1 = e4 | 0 (padding)                 = 0b00_00_00_01 = 0x01
    pack(np.array([1, -2, 0, -1, 1]), 2) -> b"\\xc9\\x01"

and ``bits = 4``, row ``[-3, 5, 7]`` gives ``0x5D 0x07`` (``-3 = 0xD`` in the low nibble of byte 0).
"""

from __future__ import annotations

import numpy as np

from harness.errors import ConfigError
from harness.ir.model import BITS, IntLayer


def _check_bits(bits: int) -> int:
    if bits not in BITS:
        raise ConfigError(f"packing supports bit-widths {BITS}, got {bits!r}")
    return int(bits)


def row_bytes(row_len: int, bits: int) -> int:
    """Bytes of one packed row of ``row_len`` elements."""
    return (row_len * _check_bits(bits) + 7) // 8


def packed_nbytes(shape: tuple[int, ...], bits: int) -> int:
    """Bytes of a packed array of ``shape`` (innermost dimension = row)."""
    if len(shape) == 0:
        raise ConfigError("cannot pack a 0-d array")
    rows = int(np.prod(shape[:-1], dtype=np.int64)) if len(shape) > 1 else 1
    return rows * row_bytes(int(shape[-1]), bits)


def pack(values: np.ndarray, bits: int) -> bytes:
    """Pack signed integers (any shape, innermost dim = row) into bytes at ``bits`` per element.

    Raises ConfigError if a value does not fit in ``bits``-bit two's complement.
    """
    bits = _check_bits(bits)
    v = np.asarray(values)
    if v.ndim == 0:
        raise ConfigError("cannot pack a 0-d array")
    if v.size and not np.issubdtype(v.dtype, np.integer):
        raise ConfigError(f"pack() needs integer values, got dtype {v.dtype}")
    v = v.astype(np.int64)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if v.size and (v.min() < lo or v.max() > hi):
        raise ConfigError(
            f"values in [{v.min()}, {v.max()}] do not fit {bits}-bit two's complement [{lo}, {hi}]"
        )
    n = v.shape[-1]
    rows = v.reshape(-1, n)
    per = 8 // bits
    nb = (n + per - 1) // per
    # pad every row to whole bytes with zeros, then fold `per` fields into each byte
    padded = np.zeros((rows.shape[0], nb * per), dtype=np.int64)
    padded[:, :n] = rows & ((1 << bits) - 1)
    fields = padded.reshape(rows.shape[0], nb, per)
    shifts = np.arange(per, dtype=np.int64) * bits
    return (fields << shifts).sum(axis=2).astype(np.uint8).tobytes()


def unpack(buf: bytes | bytearray | memoryview | np.ndarray, shape: tuple[int, ...], bits: int) -> np.ndarray:
    """Inverse of :func:`pack`: returns an ``int8`` array of ``shape``. Padding bits are ignored."""
    bits = _check_bits(bits)
    shape = tuple(int(s) for s in shape)
    need = packed_nbytes(shape, bits)
    raw = (
        np.frombuffer(bytes(buf), dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf.astype(np.uint8)
    )
    raw = raw.reshape(-1)
    if raw.size < need:
        raise ConfigError(
            f"buffer of {raw.size} bytes is too short for shape {shape} at {bits} bits ({need} bytes)"
        )
    n = shape[-1]
    per = 8 // bits
    nb = (n + per - 1) // per
    rows = raw[:need].reshape(-1, nb).astype(np.int64)
    shifts = np.arange(per, dtype=np.int64) * bits
    fields = (rows[:, :, None] >> shifts) & ((1 << bits) - 1)
    fields = fields.reshape(rows.shape[0], nb * per)[:, :n]
    signed = fields - ((fields >> (bits - 1)) << bits)  # sign-extend
    return signed.astype(np.int8).reshape(shape)


def packed_weights(layer: IntLayer) -> bytes:
    """A layer's weights packed at ``w_bits`` (rows = innermost dimension, byte-aligned); b"" without weights."""
    if layer.weight is None:
        return b""
    return pack(np.asarray(layer.weight), layer.w_bits)
