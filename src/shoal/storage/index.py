"""Sparse offset and time indexes of one segment.

Both live in memory (two ``array``s each, searched with ``bisect``) and are saved as columns,
so that a million entries convert in one call rather than one Python step each (all big-endian)::

    offset index:  count u32 | relative offsets u32 x count | file positions u32 x count
    time index:    count u32 | max timestamps so far i64 x count | relative offsets u32 x count

(Kafka stores the same pairs row by row; the files are shoal's own and never read by Kafka.)

An index file is a cache, never the truth. It is written whole when a segment is sealed (and at a
clean shutdown), followed by a CRC-32C of its entries; on load a file whose CRC fails or whose
entries are not strictly increasing inside the segment is thrown away and the segment rebuilds
its indexes from the log itself. So a torn, stale, zeroed or deleted index costs a scan, never
data.
"""

from __future__ import annotations

import operator
import struct
import sys
from array import array
from bisect import bisect_right
from typing import Final

from shoal.invariant import invariant

MAX_RELATIVE: Final = 2**31 - 1
"""Offsets in a segment stay within a signed 32-bit delta of its base, as in Kafka."""


class OffsetIndex:
    """Maps an offset to the file position of the batch that starts at or before it."""

    __slots__ = ("_positions", "_relative", "base_offset")

    def __init__(self, base_offset: int) -> None:
        self.base_offset = base_offset
        self._relative = array("I")
        self._positions = array("I")

    def __len__(self) -> int:
        return len(self._relative)

    def append(self, offset: int, position: int) -> None:
        relative = offset - self.base_offset
        invariant(0 <= relative <= MAX_RELATIVE, f"offset {offset} outside segment")
        if self._relative:
            invariant(relative > self._relative[-1], "offset index entries must increase")
            invariant(position > self._positions[-1], "offset index positions must increase")
        self._relative.append(relative)
        self._positions.append(position)

    def last(self) -> tuple[int, int] | None:
        if not self._relative:
            return None
        return self.base_offset + self._relative[-1], self._positions[-1]

    def floor(self, offset: int) -> tuple[int, int]:
        """The last entry at or below ``offset`` as ``(offset, position)``, else the start."""
        i = bisect_right(self._relative, offset - self.base_offset)
        if i == 0:
            return self.base_offset, 0
        return self.base_offset + self._relative[i - 1], self._positions[i - 1]

    def floor_by_position(self, position: int) -> tuple[int, int]:
        """The last entry whose position is at or below ``position``, else the start."""
        i = bisect_right(self._positions, position)
        if i == 0:
            return self.base_offset, 0
        return self.base_offset + self._relative[i - 1], self._positions[i - 1]

    def truncate_from_position(self, position: int) -> None:
        """Drop the entries at or past ``position`` (after the log was cut there)."""
        i = bisect_right(self._positions, position - 1) if position > 0 else 0
        del self._relative[i:]
        del self._positions[i:]

    def encode(self) -> bytes:
        return _COUNT.pack(len(self._relative)) + _big_endian(self._relative, self._positions)

    @classmethod
    def decode(cls, base_offset: int, data: bytes, size_limit: int) -> OffsetIndex | None:
        """The index in ``data``, or None if any entry is malformed or beyond the segment."""
        columns = _columns(data, ("I", "I"))
        if columns is None:
            return None
        relative, positions = columns
        if relative and (
            positions[-1] >= size_limit
            or relative[-1] > MAX_RELATIVE
            or (relative[0] == 0) != (positions[0] == 0)  # the first batch sits at position 0
            or not _strictly_increasing(relative)
            or not _strictly_increasing(positions)
        ):
            return None
        index = cls(base_offset)
        index._relative, index._positions = relative, positions
        return index


class TimeIndex:
    """Maps a timestamp to the offset after which every batch's max timestamp is at least it."""

    __slots__ = ("_relative", "_timestamps", "base_offset")

    def __init__(self, base_offset: int) -> None:
        self.base_offset = base_offset
        self._timestamps = array("q")
        self._relative = array("I")

    def __len__(self) -> int:
        return len(self._timestamps)

    def append(self, timestamp: int, offset: int) -> None:
        relative = offset - self.base_offset
        invariant(0 <= relative <= MAX_RELATIVE, f"offset {offset} outside segment")
        if self._timestamps:
            invariant(timestamp > self._timestamps[-1], "time index timestamps must increase")
            invariant(relative > self._relative[-1], "time index offsets must increase")
        self._timestamps.append(timestamp)
        self._relative.append(relative)

    def last(self) -> tuple[int, int] | None:
        if not self._timestamps:
            return None
        return self._timestamps[-1], self.base_offset + self._relative[-1]

    def offset_before(self, timestamp: int) -> int | None:
        """The last indexed offset whose batches all have timestamps below ``timestamp``.

        An entry ``(t, o)`` says the largest timestamp of the batches up to and including the
        one at ``o`` is ``t``; if ``t < timestamp`` a search can start after ``o``.
        """
        i = bisect_right(self._timestamps, timestamp - 1)
        if i == 0:
            return None
        return self.base_offset + self._relative[i - 1]

    def truncate_from_offset(self, offset: int) -> None:
        i = bisect_right(self._relative, offset - self.base_offset - 1)
        del self._timestamps[i:]
        del self._relative[i:]

    def encode(self) -> bytes:
        return _COUNT.pack(len(self._timestamps)) + _big_endian(self._timestamps, self._relative)

    @classmethod
    def decode(cls, base_offset: int, data: bytes, next_offset: int) -> TimeIndex | None:
        """The index in ``data``, or None if any entry is malformed or beyond the segment."""
        columns = _columns(data, ("q", "I"))
        if columns is None:
            return None
        timestamps, relative = columns
        if relative and (
            relative[-1] >= next_offset - base_offset
            or not _strictly_increasing(timestamps)
            or not _strictly_increasing(relative)
        ):
            return None
        index = cls(base_offset)
        index._timestamps, index._relative = timestamps, relative
        return index


_COUNT: Final = struct.Struct(">I")
_SWAP: Final = sys.byteorder == "little"


def _big_endian(*columns: array[int]) -> bytes:
    out = bytearray()
    for column in columns:
        copy = array(column.typecode, column)
        if _SWAP:
            copy.byteswap()
        out += copy.tobytes()
    return bytes(out)


def _columns(data: bytes, typecodes: tuple[str, ...]) -> tuple[array[int], ...] | None:
    """Split ``data`` (count, then one column per typecode) into arrays; None if malformed."""
    if len(data) < _COUNT.size:
        return None
    (count,) = _COUNT.unpack_from(data)
    sizes = [array(code).itemsize * count for code in typecodes]
    if len(data) != _COUNT.size + sum(sizes):
        return None
    columns, position = [], _COUNT.size
    for code, size in zip(typecodes, sizes, strict=True):
        column = array(code)
        column.frombytes(data[position : position + size])
        if _SWAP:
            column.byteswap()
        columns.append(column)
        position += size
    return tuple(columns)


def _strictly_increasing(values: array[int]) -> bool:
    return all(map(operator.lt, values, values[1:]))
