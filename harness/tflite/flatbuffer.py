"""A minimal read-only FlatBuffers reader: tables, vectors, strings and scalars, enough for a ``.tflite`` file.

FlatBuffers store a root offset (u32) at byte 0 pointing at the root table. A table begins with an i32 offset
back to its vtable (``vtable = table - soffset``); the vtable lists the vtable's size, the table's size and one
u16 offset per field (0: the field is absent and has its default). Scalars sit inline at ``table + offset``;
tables, vectors and strings are referenced by a u32 offset relative to where that offset is stored. A vector is
a u32 length followed by its elements (offsets, for vectors of tables or strings). Everything is little-endian.
"""

from __future__ import annotations

import struct

import numpy as np

from harness.errors import ConfigError


class Table:
    """One table of a FlatBuffer: read field ``slot`` (its index in the schema) as a scalar, table or vector."""

    __slots__ = ("_vt", "_vt_len", "buf", "pos")

    def __init__(self, buf: bytes, pos: int):
        self.buf = buf
        self.pos = pos
        if pos < 0 or pos + 4 > len(buf):
            raise ConfigError(f"corrupt flatbuffer: table at {pos} outside the file ({len(buf)} bytes)")
        (soff,) = struct.unpack_from("<i", buf, pos)
        self._vt = pos - soff
        if self._vt < 0 or self._vt + 4 > len(buf):
            raise ConfigError("corrupt flatbuffer: vtable outside the file")
        (self._vt_len,) = struct.unpack_from("<H", buf, self._vt)

    def _field(self, slot: int) -> int:
        """Byte offset of field ``slot`` inside the table, 0 when absent."""
        entry = 4 + 2 * slot
        if entry + 2 > self._vt_len:
            return 0
        return struct.unpack_from("<H", self.buf, self._vt + entry)[0]

    def has(self, slot: int) -> bool:
        return self._field(slot) != 0

    def scalar(self, slot: int, fmt: str, default=0):
        """A scalar field (``fmt``: a struct format such as ``'<i'``, ``'<B'``, ``'<f'``)."""
        off = self._field(slot)
        if not off:
            return default
        return struct.unpack_from(fmt, self.buf, self.pos + off)[0]

    def _target(self, slot: int) -> int | None:
        off = self._field(slot)
        if not off:
            return None
        at = self.pos + off
        return at + struct.unpack_from("<I", self.buf, at)[0]

    def table(self, slot: int) -> Table | None:
        at = self._target(slot)
        return None if at is None else Table(self.buf, at)

    def _vector(self, slot: int) -> tuple[int, int] | None:
        """(first element position, length) of a vector field."""
        at = self._target(slot)
        if at is None:
            return None
        (n,) = struct.unpack_from("<I", self.buf, at)
        return at + 4, n

    def string(self, slot: int, default: str = "") -> str:
        v = self._vector(slot)
        if v is None:
            return default
        start, n = v
        return self.buf[start : start + n].decode("utf-8", errors="replace")

    def array(self, slot: int, dtype: str) -> np.ndarray:
        """A vector of scalars as a numpy array (``dtype`` such as ``'<i4'``); empty when absent."""
        v = self._vector(slot)
        dt = np.dtype(dtype)
        if v is None:
            return np.zeros(0, dtype=dt)
        start, n = v
        if start + n * dt.itemsize > len(self.buf):
            raise ConfigError("corrupt flatbuffer: vector runs past the end of the file")
        return np.frombuffer(self.buf, dtype=dt, count=n, offset=start).copy()

    def tables(self, slot: int) -> list[Table]:
        """A vector of tables."""
        v = self._vector(slot)
        if v is None:
            return []
        start, n = v
        out = []
        for i in range(n):
            at = start + 4 * i
            out.append(Table(self.buf, at + struct.unpack_from("<I", self.buf, at)[0]))
        return out


def root(buf: bytes, identifier: bytes | None = None) -> Table:
    """The root table of ``buf``; ConfigError when the file is too short or its identifier differs."""
    if len(buf) < 8:
        raise ConfigError(f"not a flatbuffer: {len(buf)} bytes")
    if identifier is not None and buf[4:8] != identifier:
        raise ConfigError(f"not a {identifier.decode()} flatbuffer (file identifier {buf[4:8]!r})")
    (pos,) = struct.unpack_from("<I", buf, 0)
    return Table(buf, pos)
