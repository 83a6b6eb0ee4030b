"""Packed storage: rows byte-aligned, element j at bit (j % (8 // bits)) * bits, two's complement."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.ir.packing import pack, packed_nbytes, row_bytes, unpack


def test_worked_example_2bit():
    assert pack(np.array([1, -2, 0, -1, 1]), 2) == bytes([0xC9, 0x01])


def test_worked_example_4bit():
    assert pack(np.array([-3, 5, 7]), 4) == bytes([0x5D, 0x07])


def test_8bit_is_plain_int8():
    v = np.array([[-128, 127, 0], [1, -1, 5]])
    assert pack(v, 8) == v.astype(np.int8).tobytes()


def test_every_row_starts_at_a_byte_boundary():
    v = np.array([[1, 1, 1], [-1, -1, -1]])  # 3 x 2 bits = 6 bits per row -> 1 byte each
    assert pack(v, 2) == bytes([0b010101, 0b111111])
    assert packed_nbytes((5, 7, 3), 4) == 5 * 7 * 2
    assert row_bytes(9, 2) == 3


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (2, 3, 4, 9), (4, 1, 1, 1), (3, 3, 17)])
def test_round_trip(bits, shape):
    rng = np.random.default_rng(bits * 100 + len(shape))
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    v = rng.integers(lo, hi + 1, size=shape)
    buf = pack(v, bits)
    assert len(buf) == packed_nbytes(shape, bits)
    assert (unpack(buf, shape, bits) == v).all()


@pytest.mark.parametrize("bits", [2, 4])
def test_padding_bits_are_zero(bits):
    per = 8 // bits
    v = -np.ones((4, per + 1), dtype=np.int64)  # all ones, one element into the second byte
    buf = np.frombuffer(pack(v, bits), dtype=np.uint8).reshape(4, 2)
    assert (buf[:, 1] == (1 << bits) - 1).all()


def test_unpack_ignores_padding_bits():
    assert unpack(bytes([0xFF]), (3,), 2).tolist() == [-1, -1, -1]


def test_out_of_range_values_are_rejected():
    with pytest.raises(ConfigError, match="do not fit 4-bit"):
        pack(np.array([8]), 4)
    with pytest.raises(ConfigError, match="do not fit 2-bit"):
        pack(np.array([-3]), 2)


def test_bad_bits_and_short_buffer_are_rejected():
    with pytest.raises(ConfigError, match="bit-widths"):
        pack(np.array([1]), 3)
    with pytest.raises(ConfigError, match="too short"):
        unpack(b"\x00", (2, 3), 4)
