"""The cleaner's offset map: the latest offset of each key in the dirty part of a log.

Bounded like Kafka's ``SkimpyOffsetMap``: its size is given in bytes
(``log.cleaner.dedupe.buffer.size``) and counted as Kafka counts it, 24 bytes an entry (a
16-byte digest of the key and an 8-byte offset), filled to at most ``load_factor`` of that
(``log.cleaner.io.buffer.load.factor``). Keys are stored as their digest, never whole, so that
memory does not grow with key size; two keys with the same 128-bit BLAKE2b digest would be
confused, as two keys with the same MD5 are in Kafka.

The Python dict costs more than 24 bytes an entry (about 150 with the digest object), so the
process uses a few times the configured bytes; the bound still holds, only its unit is Kafka's.
"""

from __future__ import annotations

import hashlib
from typing import Final

from shoal.invariant import invariant

ENTRY_BYTES: Final = 24
"""A 16-byte key digest plus an 8-byte offset, as Kafka counts a map slot."""
DIGEST_BYTES: Final = 16
LOAD_FACTOR_DEFAULT: Final = 0.9
"""Kafka's log.cleaner.io.buffer.load.factor default."""


def key_digest(key: bytes) -> bytes:
    return hashlib.blake2b(key, digest_size=DIGEST_BYTES).digest()


class OffsetMap:
    """Key digest -> latest offset, holding at most :attr:`capacity` keys."""

    __slots__ = ("_offsets", "capacity", "latest_offset")

    def __init__(self, memory_bytes: int, *, load_factor: float = LOAD_FACTOR_DEFAULT) -> None:
        invariant(0 < load_factor <= 1, "load factor must be in (0, 1]")
        self.capacity = int(memory_bytes // ENTRY_BYTES * load_factor)
        invariant(self.capacity >= 1, f"an offset map of {memory_bytes} bytes holds no key")
        self._offsets: dict[bytes, int] = {}
        self.latest_offset = -1
        """The last offset put: records past it were not mapped and are kept by a clean."""

    def __len__(self) -> int:
        return len(self._offsets)

    def room_for(self, keys: int) -> bool:
        """Whether ``keys`` more distinct keys would still fit (counting each as new)."""
        return len(self._offsets) + keys <= self.capacity

    def put(self, key: bytes, offset: int) -> None:
        invariant(offset > self.latest_offset, "offsets are put in increasing order")
        digest = key_digest(key)
        invariant(
            digest in self._offsets or len(self._offsets) < self.capacity,
            "put into a full offset map (check room_for first)",
        )
        self._offsets[digest] = offset
        self.latest_offset = offset

    def advance(self, offset: int) -> None:
        """Record that everything up to ``offset`` was mapped (a batch without keys)."""
        if offset > self.latest_offset:
            self.latest_offset = offset

    def get(self, key: bytes) -> int:
        """The latest offset of ``key``, or -1 if it was not seen."""
        return self._offsets.get(key_digest(key), -1)

    def clear(self) -> None:
        self._offsets.clear()
        self.latest_offset = -1
