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


# -- KIP-848 mixed groups (issue 16, slice K) ------------------------------------------------
#
# A classic member of a consumer group tells its subscription, and (Subscription v1+) the
# partitions it still owns, in JoinGroup; it learns its assignment from SyncGroup, which the
# coordinator then writes itself:
#
#   Subscription v1+: ... | user_data [int32 len, bytes] | owned [int32 count, (topic string,
#                     [int32 count, int32...])...] | (v2+ generation, v3+ rack: not read)
#   Assignment v0:    version int16 (0) | [int32 count, (topic string, [int32 count,
#                     int32...])...] | user_data int32 (-1: null)


def owned_partitions(metadata: bytes) -> dict[str, list[int]] | None:
    """The partitions a Subscription says its member owns; None when the version has no such
    field (v0) or the bytes are unreadable."""
    try:
        reader = _Reader(metadata)
        version = reader.i16()
        if version < 1:
            return None
        for _ in range(reader.count()):
            reader.string()
        user_data = reader.i32()
        if user_data > 0:
            reader.pos += user_data
        owned: dict[str, list[int]] = {}
        for _ in range(reader.count()):
            topic = reader.string()
            owned[topic] = [reader.i32() for _ in range(reader.count())]
        return owned
    except (struct.error, ValueError, UnicodeDecodeError):
        return None


def encode_assignment(assignment: dict[str, list[int]]) -> bytes:
    """An Assignment v0 without user data: what every consumer protocol version reads."""
    out = bytearray(_I16.pack(0))
    out += _I32.pack(len(assignment))
    for topic, partitions in sorted(assignment.items()):
        name = topic.encode()
        out += _I16.pack(len(name)) + name
        out += _I32.pack(len(partitions))
        for p in sorted(partitions):
            out += _I32.pack(p)
    out += _I32.pack(-1)
    return bytes(out)
