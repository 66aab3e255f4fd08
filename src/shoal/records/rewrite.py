"""Rewriting a stored batch with some of its records removed, as Kafka's log cleaner does.

A cleaned batch keeps what readers and producer state depend on: its baseOffset and
lastOffsetDelta (so the last sequence number of an idempotent producer stays where it was, and
offsets never move), producer id, epoch and baseSequence, partitionLeaderEpoch, codec, timestamp
type and the transactional/control bits. Each kept record keeps its offset delta, timestamp, key,
value and headers byte for byte; only the records section is re-encoded (and recompressed with
the batch's codec). Offset deltas inside the batch may then have gaps: Kafka's readers take each
record's offset from its own delta.

Two more shapes come from Kafka's ``MemoryRecords.filterTo``:

* a batch whose retained records include a tombstone (or a transaction marker that may later be
  dropped) gets a *delete horizon* (KIP-534): attribute bit 6 is set and baseTimestamp holds the
  time after which the cleaner may remove those tombstones; record timestamps stay what they
  were, their deltas are taken from the new base;
* a batch with nothing left that must still exist to keep its producer's last sequence is written
  as an *empty batch*: the header alone, record count 0, no compression.

Sans-IO: bytes in, bytes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from shoal.invariant import invariant
from shoal.records.builder import assemble_batch
from shoal.records.compression import codec_of, compress
from shoal.records.header import (
    ATTR_COMPRESSION_MASK,
    ATTR_CONTROL,
    ATTR_DELETE_HORIZON,
    ATTR_TIMESTAMP_TYPE,
    ATTR_TRANSACTIONAL,
    NO_TIMESTAMP,
    BatchHeader,
    Compression,
)
from shoal.records.record import HEADER_KEY_ENCODING, HEADER_KEY_ERRORS, Record
from shoal.records.varint import encode_varint

_NULL: Final = encode_varint(-1)


def delete_horizon_ms(header: BatchHeader) -> int | None:
    """The batch's delete horizon (KIP-534), or None when it has none."""
    if header.attributes & ATTR_DELETE_HORIZON:
        return header.base_timestamp
    return None


def record_timestamp(header: BatchHeader, record: Record) -> int:
    """A record's own timestamp (a LogAppendTime batch's readers show maxTimestamp instead)."""
    return header.base_timestamp + record.timestamp_delta


def rebuild_batch(
    header: BatchHeader,
    records: Sequence[Record],
    *,
    delete_horizon: int | None,
) -> bytes:
    """The batch of ``header`` holding only ``records`` (at least one, in their order).

    ``delete_horizon`` sets attribute bit 6 and stores the horizon as baseTimestamp; None keeps
    none (a horizon already on the batch is dropped only if the caller passes None).
    """
    invariant(bool(records), "a rebuilt batch keeps at least one record (else rebuild_empty)")
    timestamps = [record_timestamp(header, r) for r in records]
    base_timestamp = delete_horizon if delete_horizon is not None else timestamps[0]
    section = _encode_section(records, timestamps, base_timestamp)
    codec = codec_of(header.compression)
    payload = section if codec is Compression.NONE else compress(codec, section)
    attributes = header.attributes & ~ATTR_DELETE_HORIZON
    if delete_horizon is not None:
        attributes |= ATTR_DELETE_HORIZON
    if header.attributes & ATTR_TIMESTAMP_TYPE:
        max_timestamp = header.max_timestamp  # LogAppendTime: every record reads as this
    else:
        max_timestamp = max(timestamps)
    return assemble_batch(
        payload,
        base_offset=header.base_offset,
        partition_leader_epoch=header.partition_leader_epoch,
        attributes=attributes,
        last_offset_delta=header.last_offset_delta,
        base_timestamp=base_timestamp,
        max_timestamp=max_timestamp,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        record_count=len(records),
    )


def rebuild_empty(header: BatchHeader) -> bytes:
    """The header-only batch Kafka keeps when every record of a producer's last batch went:
    offsets, producer fields and maxTimestamp stay, so producer state rebuilds the same."""
    attributes = header.attributes & (ATTR_TIMESTAMP_TYPE | ATTR_TRANSACTIONAL | ATTR_CONTROL)
    invariant(attributes & ATTR_COMPRESSION_MASK == 0, "an empty batch is uncompressed")
    timestamp = header.max_timestamp if header.max_timestamp >= 0 else NO_TIMESTAMP
    return assemble_batch(
        b"",
        base_offset=header.base_offset,
        partition_leader_epoch=header.partition_leader_epoch,
        attributes=attributes,
        last_offset_delta=header.last_offset_delta,
        base_timestamp=timestamp,
        max_timestamp=timestamp,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        record_count=0,
    )


def _encode_section(
    records: Sequence[Record], timestamps: Sequence[int], base_timestamp: int
) -> bytearray:
    out = bytearray()
    varint = encode_varint
    for record, timestamp in zip(records, timestamps, strict=True):
        body = bytearray(b"\x00")  # record attributes: none are defined
        body += varint(timestamp - base_timestamp)
        body += varint(record.offset_delta)
        for field in (record.key, record.value):
            if field is None:
                body += _NULL
            else:
                body += varint(len(field))
                body += field
        body += varint(len(record.headers))
        for key, value in record.headers:
            key_bytes = key.encode(HEADER_KEY_ENCODING, HEADER_KEY_ERRORS)
            body += varint(len(key_bytes))
            body += key_bytes
            if value is None:
                body += _NULL
            else:
                body += varint(len(value))
                body += value
        out += varint(len(body))
        out += body
    return out
