"""The idempotence state of a partition as bytes: the snapshot that bounds replay at start-up.

Layout (big-endian); storage adds a CRC-32C trailer and replaces the file atomically::

    b"SHPS" | version u8 = 1 | log_offset i64 | producer count u32
    per producer:  producer_id i64 | epoch i16 | last_seen_ms i64 | batch count u8
    per batch:     first_sequence i32 | last_sequence i32 | first_offset i64 | last_offset i64
                   | timestamp_ms i64

Version 2 appends the partition's transactions (:mod:`shoal.coordinator.partition_txns`)::

    open count u32    | per open transaction:    producer_id i64 | first_offset i64
    aborted count u32 | per aborted transaction: producer_id i64 | first_offset i64
                                                 | last_offset i64

Version 3 adds, after each producer's batches, the coordinator epoch of its last transaction
marker and the timestamp of its last batch or marker (Kafka's, for DescribeProducers and the
marker check)::

    coordinator_epoch i32 | last_timestamp_ms i64

Versions 1 and 2 are still read: version 1 (written before transactions) with no
transactions, both with no coordinator epoch (-1) and the last batch's timestamp.

``log_offset`` is the log end offset when the state was taken: the state reflects every batch
below it and none at or after it, so start-up replays the log from there. Producers are stored
least recently active first, the order :meth:`PartitionProducers.restore` expects.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from shoal.coordinator.partition_txns import AbortedTxn, PartitionTxns
from shoal.coordinator.producer_state import (
    BATCHES_RETAINED,
    EPOCH_MAX,
    NO_COORDINATOR_EPOCH,
    SEQUENCE_MAX,
    BatchMetadata,
    PartitionProducers,
)

_MAGIC: Final = b"SHPS"
_VERSION: Final = 3
_VERSIONS_READ: Final = frozenset({1, 2, 3})
_HEAD = struct.Struct(">4sBqI")
_COUNT = struct.Struct(">I")
_OPEN = struct.Struct(">qq")
_ABORTED = struct.Struct(">qqq")
_PRODUCER = struct.Struct(">qhqB")
_BATCH = struct.Struct(">iiqqq")
_MARKED = struct.Struct(">iq")


@dataclass(frozen=True, slots=True)
class ProducerRecord:
    producer_id: int
    epoch: int
    last_seen_ms: int
    batches: tuple[BatchMetadata, ...]
    coordinator_epoch: int = NO_COORDINATOR_EPOCH
    last_timestamp_ms: int | None = None
    """None when read from a snapshot older than version 3 (the last batch's is used)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    log_offset: int
    producers: tuple[ProducerRecord, ...]
    ongoing: tuple[tuple[int, int], ...] = ()
    aborted: tuple[AbortedTxn, ...] = ()

    def restore_into(self, state: PartitionProducers, txns: PartitionTxns | None = None) -> None:
        for p in self.producers:
            state.restore(
                p.producer_id,
                p.epoch,
                p.batches,
                p.last_seen_ms,
                p.coordinator_epoch,
                p.last_timestamp_ms,
            )
        if txns is not None:
            txns.ongoing = dict(self.ongoing)
            txns.aborted = list(self.aborted)


def encode_snapshot(
    state: PartitionProducers, log_offset: int, txns: PartitionTxns | None = None
) -> bytes:
    parts = [_HEAD.pack(_MAGIC, _VERSION, log_offset, len(state))]
    for producer_id, entry in state.items():
        parts.append(
            _PRODUCER.pack(producer_id, entry.epoch, entry.last_seen_ms, len(entry.batches))
        )
        parts.extend(
            _BATCH.pack(
                b.first_sequence, b.last_sequence, b.first_offset, b.last_offset, b.timestamp_ms
            )
            for b in entry.batches
        )
        parts.append(_MARKED.pack(entry.coordinator_epoch, entry.last_timestamp_ms))
    ongoing = txns.ongoing if txns is not None else {}
    aborted = txns.aborted if txns is not None else []
    parts.append(_COUNT.pack(len(ongoing)))
    parts.extend(_OPEN.pack(pid, first) for pid, first in ongoing.items())
    parts.append(_COUNT.pack(len(aborted)))
    parts.extend(_ABORTED.pack(a.producer_id, a.first_offset, a.last_offset) for a in aborted)
    return b"".join(parts)


def decode_snapshot(data: bytes) -> Snapshot | None:
    """The snapshot in ``data``, or None if it is not one this version wrote whole and sane.

    A snapshot is an optimisation: when it cannot be trusted the caller replays more of the log,
    so every doubt (wrong magic, impossible value, short or long data) answers None.
    """
    if len(data) < _HEAD.size:
        return None
    magic, version, log_offset, count = _HEAD.unpack_from(data, 0)
    if magic != _MAGIC or version not in _VERSIONS_READ or log_offset < 0:
        return None
    # Each producer takes at least its header: a count the bytes cannot hold is
    # damage, and checking it first keeps a bad count from driving a long loop.
    if count * _PRODUCER.size > len(data) - _HEAD.size:
        return None
    position = _HEAD.size
    producers = []
    seen: set[int] = set()
    for _ in range(count):
        decoded_producer = _decode_producer(data, position, version, log_offset)
        if decoded_producer is None:
            return None
        producer, position = decoded_producer
        if producer.producer_id in seen:
            return None
        seen.add(producer.producer_id)
        producers.append(producer)
    ongoing: tuple[tuple[int, int], ...] = ()
    aborted: tuple[AbortedTxn, ...] = ()
    if version >= 2:
        decoded = _decode_txns(data, position, log_offset)
        if decoded is None:
            return None
        ongoing, aborted, position = decoded
    if position != len(data):
        return None
    return Snapshot(log_offset, tuple(producers), ongoing, aborted)


def _decode_producer(
    data: bytes, position: int, version: int, log_offset: int
) -> tuple[ProducerRecord, int] | None:
    """One producer at ``position`` and the position after it, None if it is not sane."""
    if position + _PRODUCER.size > len(data):
        return None
    producer_id, epoch, last_seen_ms, batch_count = _PRODUCER.unpack_from(data, position)
    position += _PRODUCER.size
    if producer_id < 0 or not 0 <= epoch <= EPOCH_MAX:
        return None
    # Zero batches: an epoch a transaction marker started (see record_marker).
    if not 0 <= batch_count <= BATCHES_RETAINED:
        return None
    if position + batch_count * _BATCH.size > len(data):
        return None
    batches = []
    for _ in range(batch_count):
        first_seq, last_seq, first_offset, last_offset, timestamp = _BATCH.unpack_from(
            data, position
        )
        position += _BATCH.size
        if not (0 <= first_seq <= SEQUENCE_MAX and 0 <= last_seq <= SEQUENCE_MAX):
            return None
        if not 0 <= first_offset <= last_offset < log_offset:
            return None
        batches.append(BatchMetadata(first_seq, last_seq, first_offset, last_offset, timestamp))
    coordinator_epoch, last_timestamp_ms = NO_COORDINATOR_EPOCH, None
    if version >= 3:
        if position + _MARKED.size > len(data):
            return None
        coordinator_epoch, last_timestamp_ms = _MARKED.unpack_from(data, position)
        position += _MARKED.size
        if coordinator_epoch < NO_COORDINATOR_EPOCH:
            return None
    record = ProducerRecord(
        producer_id, epoch, last_seen_ms, tuple(batches), coordinator_epoch, last_timestamp_ms
    )
    return record, position


def _decode_txns(
    data: bytes, position: int, log_offset: int
) -> tuple[tuple[tuple[int, int], ...], tuple[AbortedTxn, ...], int] | None:
    if position + _COUNT.size > len(data):
        return None
    (count,) = _COUNT.unpack_from(data, position)
    position += _COUNT.size
    if position + count * _OPEN.size + _COUNT.size > len(data):
        return None
    ongoing = []
    for _ in range(count):
        pid, first = _OPEN.unpack_from(data, position)
        position += _OPEN.size
        if pid < 0 or not 0 <= first < log_offset:
            return None
        ongoing.append((pid, first))
    (count,) = _COUNT.unpack_from(data, position)
    position += _COUNT.size
    if position + count * _ABORTED.size > len(data):
        return None
    aborted = []
    for _ in range(count):
        pid, first, last = _ABORTED.unpack_from(data, position)
        position += _ABORTED.size
        if pid < 0 or not 0 <= first <= last < log_offset:
            return None
        aborted.append(AbortedTxn(pid, first, last))
    return tuple(ongoing), tuple(aborted), position
