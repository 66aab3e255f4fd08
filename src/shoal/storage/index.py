"""Sparse offset and time indexes of one segment.

Both live in memory (two ``array``s each, searched with ``bisect``) and are saved to files of
fixed-size big-endian entries, the layout Kafka uses::

    offset index entry (8 bytes):  relative offset u32 | file position u32
    time index entry  (12 bytes):  max timestamp so far i64 | relative offset u32

An index file is a cache, never the truth. It is written whole when a segment is sealed (and at a
clean shutdown), followed by a CRC-32C of its entries; on load a file whose CRC fails or whose
entries are not strictly increasing inside the segment is thrown away and the segment rebuilds
its indexes from the log itself. So a torn, stale, zeroed or deleted index costs a scan, never
data.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_right
from typing import Final

from shoal.invariant import invariant

OFFSET_ENTRY: Final = struct.Struct(">II")
TIME_ENTRY: Final = struct.Struct(">qI")
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
        return b"".join(
            OFFSET_ENTRY.pack(r, p) for r, p in zip(self._relative, self._positions, strict=True)
        )

    @classmethod
    def decode(cls, base_offset: int, data: bytes, size_limit: int) -> OffsetIndex | None:
        """The index in ``data``, or None if any entry is malformed or beyond the segment."""
        if len(data) % OFFSET_ENTRY.size:
            return None
        index = cls(base_offset)
        for relative, position in OFFSET_ENTRY.iter_unpack(data):
            if position >= size_limit or relative > MAX_RELATIVE:
                return None
            if index._relative and (
                relative <= index._relative[-1] or position <= index._positions[-1]
            ):
                return None
            if not index._relative and (relative == 0) != (position == 0):
                return None  # a segment's first batch sits at position 0 with the base offset
            index._relative.append(relative)
            index._positions.append(position)
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
        return b"".join(
            TIME_ENTRY.pack(t, r) for t, r in zip(self._timestamps, self._relative, strict=True)
        )

    @classmethod
    def decode(cls, base_offset: int, data: bytes, next_offset: int) -> TimeIndex | None:
        """The index in ``data``, or None if any entry is malformed or beyond the segment."""
        if len(data) % TIME_ENTRY.size:
            return None
        index = cls(base_offset)
        limit = next_offset - base_offset
        for timestamp, relative in TIME_ENTRY.iter_unpack(data):
            if relative >= limit:
                return None
            if index._timestamps and (
                timestamp <= index._timestamps[-1] or relative <= index._relative[-1]
            ):
                return None
            index._timestamps.append(timestamp)
            index._relative.append(relative)
        return index
