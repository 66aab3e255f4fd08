"""Reading back an internal topic of keyed JSON records (``__consumer_offsets``,
``__transaction_state``): every record with a key, in offset order, one batch decoded at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, NamedTuple

from shoal.records import decode_batch, read_header, split_batches
from shoal.records.control import transaction_marker
from shoal.storage import PartitionLog

READ_BYTES: Final = 1024 * 1024
"""Bytes read per step of the replay."""
DECODE_BYTES_MAX: Final = 64 * 1024 * 1024
"""Uncompressed bytes one batch may decode to (these batches are never compressed)."""


@dataclass(frozen=True, slots=True)
class Marker:
    """A transaction's COMMIT or ABORT marker met in the log (``__consumer_offsets`` holds
    them: :mod:`shoal.coordinator.txn_offsets`)."""

    producer_id: int
    commit: bool


class KeyedRecord(NamedTuple):
    key: bytes
    value: bytes | None
    producer_epoch: int
    """The epoch in the record's batch header: a transaction's records carry their producer's
    (-1 for the others)."""


def keyed_records(plog: PartitionLog) -> Iterator[tuple[bytes, bytes | None]]:
    """``(key, value)`` of every keyed record from the log start to its end (a tombstone's value
    is None); records before the log start, in a batch that straddles it, are skipped, and so
    are transaction markers."""
    for entry in keyed_entries(plog):
        if not isinstance(entry, Marker):
            yield entry.key, entry.value


def keyed_entries(plog: PartitionLog) -> Iterator[KeyedRecord | Marker]:
    """As :func:`keyed_records`, with the batches' producer epochs and the transaction
    markers in their place in the log."""
    offset = plog.log_start_offset
    end = plog.log_end_offset
    while offset < end:
        result = plog.read(offset, READ_BYTES)
        if not result.data:
            break
        data = result.data
        for pos, size in split_batches(data):
            raw = data[pos : pos + size]
            header = read_header(raw)
            if header.is_control:  # read as a marker only, not decoded as records first
                marker = transaction_marker(raw)
                if marker is not None and header.base_offset >= offset:
                    yield Marker(header.producer_id, marker.commit)
                continue
            batch = decode_batch(raw, max_uncompressed_bytes=DECODE_BYTES_MAX)
            for record in batch.records:
                if record.offset >= offset and record.key is not None:
                    yield KeyedRecord(record.key, record.value, batch.header.producer_epoch)
        offset = result.next_offset
