"""Building RecordBatch v2 batches: for tests, internal topics and benchmarks.

The builder writes what the Java producer writes: offset deltas 0..n-1, timestamps as deltas
from baseTimestamp (the first record's, unless given), maxTimestamp the largest record
timestamp, and a CRC-32C over attributes..end.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

from shoal.buffers import Buffer
from shoal.invariant import invariant
from shoal.records.compression import codec_of, compress
from shoal.records.header import (
    ATTR_TIMESTAMP_TYPE,
    ATTR_TRANSACTIONAL,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC_V2,
    NO_PARTITION_LEADER_EPOCH,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    NO_TIMESTAMP,
    BatchHeader,
    Compression,
    TimestampType,
    refresh_crc,
    write_header,
)
from shoal.records.record import HEADER_KEY_ENCODING, HEADER_KEY_ERRORS, RecordLike
from shoal.records.varint import INT32_MAX, INT64_MIN, encode_varint

_NULL: Final = encode_varint(-1)
_NO_ATTRIBUTES: Final = b"\x00"


def encode_records(records: Sequence[RecordLike], base_timestamp: int) -> tuple[bytearray, int]:
    """Encode ``records`` as an uncompressed records section with offset deltas 0..n-1.

    Returns the bytes and the largest record timestamp (``base_timestamp`` stands in for a
    record without one).
    """
    out = bytearray()
    max_timestamp = INT64_MIN
    varint = encode_varint  # local name: this loop runs once per record
    null = _NULL
    for offset_delta, record in enumerate(records):
        timestamp = record.timestamp
        if timestamp is None:
            timestamp = base_timestamp
        if timestamp > max_timestamp:
            max_timestamp = timestamp
        body = bytearray(_NO_ATTRIBUTES)
        body += varint(timestamp - base_timestamp)
        body += varint(offset_delta)
        key = record.key
        if key is None:
            body += null
        else:
            body += varint(len(key))
            body += key
        value = record.value
        if value is None:
            body += null
        else:
            body += varint(len(value))
            body += value
        headers = record.headers
        body += varint(len(headers))
        for header_key, header_value in headers:
            key_bytes = header_key.encode(HEADER_KEY_ENCODING, HEADER_KEY_ERRORS)
            body += varint(len(key_bytes))
            body += key_bytes
            if header_value is None:
                body += null
            else:
                body += varint(len(header_value))
                body += header_value
        out += varint(len(body))
        out += body
    return out, max_timestamp


def build_batch(
    records: Sequence[RecordLike],
    *,
    base_offset: int = 0,
    base_timestamp: int | None = None,
    compression: Compression = Compression.NONE,
    compression_level: int | None = None,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    transactional: bool = False,
    timestamp_type: TimestampType = TimestampType.CREATE_TIME,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
) -> bytes:
    """Build one batch holding ``records`` (at least one), with offsets from ``base_offset``.

    ``base_timestamp=None`` takes the first record's timestamp, or -1 (no timestamp) if it has
    none; a record without a timestamp gets the base timestamp. For ``LOG_APPEND_TIME`` the
    batch's maxTimestamp is what readers show for every record, so give the records the append
    time (or stamp it afterwards with :func:`shoal.records.set_max_timestamp`).

    Raises ``ValueError`` for arguments no batch can hold (no records, more than 2**31 - 1,
    fields out of their integer range, a header key that cannot be encoded).
    """
    if not records:
        raise ValueError("a record batch needs at least one record")
    if len(records) > INT32_MAX:
        raise ValueError(f"a record batch holds at most {INT32_MAX} records, not {len(records)}")
    if base_timestamp is None:
        first = records[0].timestamp
        base_timestamp = NO_TIMESTAMP if first is None else first
    section, max_timestamp = encode_records(records, base_timestamp)
    codec = codec_of(compression)
    payload = (
        section if codec is Compression.NONE else compress(codec, section, level=compression_level)
    )
    attributes = int(codec)
    if timestamp_type is TimestampType.LOG_APPEND_TIME:
        attributes |= ATTR_TIMESTAMP_TYPE
    if transactional:
        attributes |= ATTR_TRANSACTIONAL
    return assemble_batch(
        payload,
        base_offset=base_offset,
        partition_leader_epoch=partition_leader_epoch,
        attributes=attributes,
        last_offset_delta=len(records) - 1,
        base_timestamp=base_timestamp,
        max_timestamp=max_timestamp,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        record_count=len(records),
    )


def assemble_batch(
    payload: Buffer,
    *,
    base_offset: int,
    partition_leader_epoch: int,
    attributes: int,
    last_offset_delta: int,
    base_timestamp: int,
    max_timestamp: int,
    producer_id: int,
    producer_epoch: int,
    base_sequence: int,
    record_count: int,
) -> bytes:
    """Put a header with these fields and a fresh CRC in front of an encoded records section."""
    out = bytearray(HEADER_SIZE)
    out += payload
    header = BatchHeader(
        base_offset=base_offset,
        batch_length=len(out) - LOG_OVERHEAD,
        partition_leader_epoch=partition_leader_epoch,
        magic=MAGIC_V2,
        crc=0,
        attributes=attributes,
        last_offset_delta=last_offset_delta,
        base_timestamp=base_timestamp,
        max_timestamp=max_timestamp,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        record_count=record_count,
    )
    try:
        write_header(out, 0, header)
    except struct.error as exc:
        # struct names the format, not the field; the header says which values were given.
        raise ValueError(f"a batch header field is out of range ({exc}): {header}") from exc
    refresh_crc(out, 0)
    invariant(len(out) == header.size, "assembled batch size disagrees with its batchLength")
    return bytes(out)
