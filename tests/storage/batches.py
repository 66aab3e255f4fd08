"""Synthetic record batches for storage tests: a real v2 header with a correct CRC over an
opaque payload. Storage never decodes records, so the payload's content does not matter, and
filling it with a seeded pattern makes any byte the log damages or misplaces visible."""

from __future__ import annotations

import struct

from shoal.records.crc import crc32c

_HEADER = struct.Struct(">qiibIhiqqqhii")


def make_batch(
    records: int = 1,
    payload: int = 100,
    *,
    timestamp: int = 1_700_000_000_000,
    seed: int = 0,
    base_offset: int = 0,
) -> bytes:
    body = bytes((seed * 31 + i * 7) & 0xFF for i in range(payload))
    after_crc = (
        struct.pack(">hiqqqhii", 0, records - 1, timestamp, timestamp, -1, -1, -1, records) + body
    )
    length = 4 + 1 + 4 + len(after_crc)  # epoch + magic + crc + the rest
    crc = crc32c(after_crc)
    return struct.pack(">qiibI", base_offset, length, -1, 2, crc) + after_crc


def payload_of(batch: bytes) -> bytes:
    """The batch without baseOffset and partitionLeaderEpoch (the only bytes the log rewrites:
    the offsets it assigns and the partition's current leader epoch)."""
    return batch[8:12] + batch[16:]
