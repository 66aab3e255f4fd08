"""Reading one page of messages from a partition's log: only the batches the page needs, in
chunks of :data:`READ_CHUNK_BYTES`, and at most :data:`MAX_SCAN_BYTES` per partition per page
(a filter that matches nothing stops there and the cursor says where to go on). Blocking disk
reads: call from a worker thread, never on the event loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from shoal.records import DecodedRecord, decode_batch, split_batches
from shoal.storage import OffsetOutOfRangeError, PartitionLog

READ_CHUNK_BYTES: Final = 1024 * 1024
"""One read from the log (whole batches, so a larger batch comes whole)."""
MAX_SCAN_BYTES: Final = 16 * 1024 * 1024
"""Stored bytes one page reads from a partition at most, whatever the filters."""
MAX_DECODED_BATCH_BYTES: Final = 64 * 1024 * 1024
"""Bound on one batch's decompressed size (a decompression bomb stops here)."""
PAGE_DECODED_BYTES_MAX: Final = 32 * 1024 * 1024
"""Decoded bytes (keys, values, headers) one page holds at most, over all its partitions: a
few highly compressed records must not blow a page up to gigabytes. The page ends before the
record that would pass it (the cursor points there); a page's first record always comes."""


@dataclass(frozen=True)
class ScanFilters:
    """Substrings the key, the value, or some header (its key or value) must contain; records
    are compared as UTF-8 text (invalid bytes replaced)."""

    key: str | None = None
    value: str | None = None
    header: str | None = None

    def match(self, record: DecodedRecord) -> bool:
        if self.key is not None and self.key not in _text(record.key):
            return False
        if self.value is not None and self.value not in _text(record.value):
            return False
        if self.header is not None:
            return any(self.header in k or self.header in _text(v) for k, v in record.headers)
        return True


def _text(data: bytes | None) -> str:
    return "" if data is None else data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Scan:
    records: list[DecodedRecord]
    """The matching records, by offset."""
    next_offset: int
    """Where the next page of this partition starts."""
    scanned: int = 0
    """Stored bytes read for it."""


def record_bytes(record: DecodedRecord) -> int:
    """The decoded bytes a record holds: key, value, header keys and values."""
    size = len(record.key or b"") + len(record.value or b"")
    return size + sum(len(k) + len(v or b"") for k, v in record.headers)


def scan_partition(
    plog: PartitionLog,
    start: int,
    limit: int,
    filters: ScanFilters,
    end: int | None = None,
    max_bytes: int = PAGE_DECODED_BYTES_MAX,
    max_scan_bytes: int = MAX_SCAN_BYTES,
) -> Scan:
    """Up to ``limit`` records at or after ``start`` (and before ``end``, when given) that
    match ``filters``, holding at most ``max_bytes`` decoded bytes (but at least one record),
    reading about ``max_scan_bytes`` stored bytes at most (whole chunks)."""
    found: list[DecodedRecord] = []
    position = start
    scanned = 0
    held = 0
    while len(found) < limit and scanned < max_scan_bytes and (end is None or position < end):
        try:
            read = plog.read(position, READ_CHUNK_BYTES)
        except OffsetOutOfRangeError:
            if position < plog.log_start_offset:  # retention deleted it meanwhile: go on
                position = plog.log_start_offset
                continue
            break
        if not read.data:
            break
        scanned += len(read.data)
        view = memoryview(read.data)
        for pos, size in split_batches(view):
            batch = decode_batch(
                view[pos : pos + size], max_uncompressed_bytes=MAX_DECODED_BATCH_BYTES
            )
            if not batch.header.is_control:  # transaction markers are not messages
                for record in batch.records:
                    if record.offset < position:
                        continue
                    if end is not None and record.offset >= end:
                        return Scan(found, end, scanned)
                    if len(found) >= limit:
                        return Scan(found, record.offset, scanned)
                    if filters.match(record):
                        size = record_bytes(record)
                        if found and held + size > max_bytes:
                            return Scan(found, record.offset, scanned)
                        held += size
                        found.append(record)
                    position = record.offset + 1
            position = max(position, batch.header.next_offset)
    return Scan(found, position, scanned)
