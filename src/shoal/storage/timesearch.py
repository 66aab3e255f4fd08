"""Finding records by timestamp inside a segment (ListOffsets by time, and -3 for the max).

The time index narrows the search to a few batches; only the batch that holds the answer is
decoded, because only there do individual record timestamps matter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, NamedTuple

from shoal.records import decode_batch
from shoal.records.header import BatchHeader, TimestampType
from shoal.storage.segment import Segment

MAX_DECODED_BATCH_BYTES: Final = 64 * 1024 * 1024
"""Bound on a batch's decompressed size when decoding it to look at record timestamps."""
NO_LEADER_EPOCH: Final = -1


class FoundRecord(NamedTuple):
    """A record found by time (Kafka's TimestampAndOffset)."""

    offset: int
    timestamp: int
    leader_epoch: int
    """The leader epoch stamped in the record's batch, -1 for a batch written before epochs
    were kept: ListOffsets answers it as Kafka does (the batch's, never the history's)."""


def find_first_at_or_after(
    segment: Segment, timestamp: int, log_start_offset: int
) -> FoundRecord | None:
    """The first record at or past ``log_start_offset`` whose
    timestamp is at least ``timestamp``, or None if this segment has none."""
    before = segment.time_index.offset_before(timestamp)
    start = max(log_start_offset, segment.base_offset if before is None else before + 1)
    for position, header in segment.batches_from(start):
        if header.max_timestamp < timestamp:
            continue
        found = _first_in_batch(segment, position, header, start, lambda ts: ts >= timestamp)
        if found is not None:
            return found
    return None


def find_max_timestamp(segment: Segment, log_start_offset: int) -> FoundRecord | None:
    """The first record holding the segment's largest timestamp."""
    target = segment.max_timestamp
    before = segment.time_index.offset_before(target)
    start = max(log_start_offset, segment.base_offset if before is None else before + 1)
    for position, header in segment.batches_from(start):
        if header.max_timestamp != target:
            continue
        found = _first_in_batch(segment, position, header, start, lambda ts: ts == target)
        if found is not None:
            return found
    return None


def _first_in_batch(
    segment: Segment,
    position: int,
    header: BatchHeader,
    min_offset: int,
    matches: Callable[[int], bool],
) -> FoundRecord | None:
    epoch = max(NO_LEADER_EPOCH, header.partition_leader_epoch)
    if header.timestamp_type is TimestampType.LOG_APPEND_TIME:
        # Every record of a LogAppendTime batch carries the batch's max timestamp.
        if not matches(header.max_timestamp):
            return None
        return FoundRecord(max(header.base_offset, min_offset), header.max_timestamp, epoch)
    data = segment.read_batch(position, header.size)
    for record in decode_batch(data, max_uncompressed_bytes=MAX_DECODED_BATCH_BYTES).records:
        if record.offset >= min_offset and matches(record.timestamp):
            return FoundRecord(record.offset, record.timestamp, epoch)
    return None
