"""A browse/export page holds a bounded number of decoded bytes, whatever the compression
ratio of what it reads (a zstd batch of one huge zero record is a few KB on disk)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from shoal.records import Compression, SimpleRecord, build_batch
from shoal.server.admin.encoding import encode_bytes
from shoal.server.admin.messages import export_pages
from shoal.server.admin.scan import (
    PAGE_DECODED_BYTES_MAX,
    READ_CHUNK_BYTES,
    ScanFilters,
    scan_partition,
)
from shoal.storage import PartitionLog
from tests.storage.support import Harness

BOMB_VALUE_BYTES = 4 * 1024 * 1024 + 1  # just over 4 MiB: 7 fit in 32 MiB, an 8th does not
BOMBS = 12
VALUE_BYTES = 100_000


@pytest.fixture
def bombed() -> Iterator[PartitionLog]:
    h = Harness()
    h.open()
    plog = h.log()
    for i in range(BOMBS):
        plog.append(
            build_batch(
                [SimpleRecord(value=bytes(BOMB_VALUE_BYTES), timestamp=1_000 + i)],
                compression=Compression.ZSTD,
            )
        )
    yield plog
    h.close()


def test_a_page_stops_at_its_decoded_byte_cap_and_the_cursor_moves_on(
    bombed: PartitionLog,
) -> None:
    fit = PAGE_DECODED_BYTES_MAX // BOMB_VALUE_BYTES
    first = scan_partition(bombed, 0, 500, ScanFilters())
    assert [r.offset for r in first.records] == list(range(fit))
    assert first.next_offset == fit
    second = scan_partition(bombed, first.next_offset, 500, ScanFilters())
    assert [r.offset for r in second.records] == list(range(fit, BOMBS))
    assert second.next_offset == BOMBS


def test_a_record_larger_than_the_cap_still_comes_alone(bombed: PartitionLog) -> None:
    scan = scan_partition(bombed, 3, 500, ScanFilters(), max_bytes=1024)
    assert [r.offset for r in scan.records] == [3]
    assert scan.next_offset == 4


def test_long_values_are_cut_short_with_their_size() -> None:
    assert encode_bytes(b"abcdef", 4) == {
        "encoding": "utf-8",
        "data": "abcd",
        "truncated": True,
        "size": 6,
    }
    assert encode_bytes(b"abc", 4) == {"encoding": "utf-8", "data": "abc"}
    # A cut inside a multi-byte character drops the partial character: still text.
    assert encode_bytes("aé".encode() * 3, 5) == {
        "encoding": "utf-8",
        "data": "aéa",
        "truncated": True,
        "size": 9,
    }
    assert encode_bytes(b"\xff\x00\x01\x02\x03", 2) == {
        "encoding": "base64",
        "data": "/wA=",
        "truncated": True,
        "size": 5,
    }


def _exported(plog: PartitionLog, filters: ScanFilters, scan_bytes_max: int) -> list[int]:
    async def collect() -> list[int]:
        pages = export_pages({0: plog}, {0: 0}, filters, None, scan_bytes_max)
        return [m["offset"] async for page in pages for m in page.messages]

    return asyncio.run(collect())


def test_an_export_reads_at_most_its_stored_byte_cap() -> None:
    """A filter that matches only the last record: found when the cap allows reading the whole
    log, not when it stops after the first chunk."""
    h = Harness()
    h.open()
    plog = h.log()
    count = 3 * READ_CHUNK_BYTES // VALUE_BYTES + 1
    for i in range(count):
        value = b"needle" if i == count - 1 else bytes(VALUE_BYTES)
        plog.append(build_batch([SimpleRecord(value=value, timestamp=1_000 + i)]))
    needle = ScanFilters(value="needle")
    assert _exported(plog, needle, 1024**3) == [count - 1]
    assert _exported(plog, needle, READ_CHUNK_BYTES) == []
    h.close()
