"""Reading the "consumer" protocol's member metadata and assignments (the opaque bytes of
JoinGroup and SyncGroup when protocol_type is "consumer").

Only the leading fields are read; every version starts the same way::

    Subscription: version int16 | topics [int32 count, (int16 len, utf-8)...] | ...
    Assignment:   version int16 | [int32 count, (topic string, [int32 count, int32...])...] | ...

The coordinator needs them for OffsetDelete (is the group subscribed to the topic?) and for
describing who owns which partition. Malformed bytes give an empty answer: they belong to the
client, and a broker must not fail on them.
"""

from __future__ import annotations

import struct
from typing import Final

_I16: Final = struct.Struct(">h")
_I32: Final = struct.Struct(">i")
ITEMS_MAX: Final = 1_000_000
"""A count above this is not a real subscription: treat the bytes as unreadable."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def i16(self) -> int:
        (value,) = _I16.unpack_from(self.data, self.pos)
        self.pos += 2
        return int(value)

    def i32(self) -> int:
        (value,) = _I32.unpack_from(self.data, self.pos)
        self.pos += 4
        return int(value)

    def count(self) -> int:
        n = self.i32()
        if not 0 <= n <= ITEMS_MAX:
            raise ValueError(f"bad count {n}")
        return n

    def string(self) -> str:
        n = self.i16()
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError("bad string length")
        value = self.data[self.pos : self.pos + n].decode()
        self.pos += n
        return value


def subscribed_topics(metadata: bytes) -> set[str]:
    try:
        reader = _Reader(metadata)
        reader.i16()
        return {reader.string() for _ in range(reader.count())}
    except (struct.error, ValueError, UnicodeDecodeError):
        return set()


def assigned_partitions(assignment: bytes) -> dict[str, list[int]]:
    try:
        reader = _Reader(assignment)
        reader.i16()
        result: dict[str, list[int]] = {}
        for _ in range(reader.count()):
            topic = reader.string()
            result[topic] = [reader.i32() for _ in range(reader.count())]
        return result
    except (struct.error, ValueError, UnicodeDecodeError):
        return {}
