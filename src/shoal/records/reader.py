"""Decoding the records inside a batch.

Record layout (after the 61-byte header, compressed as a whole when the codec is not none)::

    length          varint    bytes that follow in this record
    attributes      int8      unused
    timestampDelta  varlong   from the batch's baseTimestamp
    offsetDelta     varint    from the batch's baseOffset
    keyLength       varint    -1 for a null key
    key             bytes
    valueLength     varint    -1 for a null value
    value           bytes
    headerCount     varint
    headers         headerCount times:
        keyLength   varint    never null
        key         bytes     UTF-8
        valueLength varint    -1 for a null value
        value       bytes

Every length is checked against the bytes of its own record, so a lie in one record is reported
there and never reads into the next.
"""

from __future__ import annotations

from collections.abc import Iterator

from shoal.buffers import Buffer
from shoal.records.compression import codec_of, decompress
from shoal.records.errors import CorruptBatchError
from shoal.records.header import (
    HEADER_SIZE,
    MAGIC_V2,
    BatchHeader,
    Compression,
    TimestampType,
    read_header,
)
from shoal.records.record import (
    HEADER_KEY_ENCODING,
    HEADER_KEY_ERRORS,
    DecodedBatch,
    DecodedRecord,
    Header,
    Record,
)
from shoal.records.varint import read_varint, read_varlong


def batch_records_bytes(buf: Buffer, *, max_uncompressed_bytes: int) -> tuple[BatchHeader, bytes]:
    """Return the header of the batch in ``buf`` and its records section, decompressed.

    ``buf`` must hold exactly one batch. ``max_uncompressed_bytes`` bounds decompression only:
    the records of an uncompressed batch are already in memory.
    """
    view = memoryview(buf)
    header = read_header(view)
    if header.magic != MAGIC_V2:
        raise CorruptBatchError(f"record batch has magic {header.magic}; only magic 2 is readable")
    if header.size != len(view):
        raise CorruptBatchError(
            f"record batch declares {header.size} bytes but {len(view)} were given"
        )
    if header.record_count < 0:
        raise CorruptBatchError(f"record batch has a negative record count {header.record_count}")
    section = view[HEADER_SIZE:]
    codec = codec_of(header.compression)
    if codec is Compression.NONE:
        return header, bytes(section)
    return header, decompress(codec, section, max_uncompressed_bytes)


def iter_records(batch_bytes: Buffer, *, max_uncompressed_bytes: int) -> Iterator[Record]:
    """Yield every record of the batch in ``batch_bytes`` (exactly one batch), in order.

    Decompresses first (bounded by ``max_uncompressed_bytes``). Raises
    :class:`CorruptBatchError` for malformed records, fewer records than the header counts, or
    bytes left over after the last one. Does not check the CRC (see ``validate_batch``) nor that
    offset deltas are contiguous (see ``validate_records``).

    Header and decompression errors raise from this call; record errors raise as iteration
    reaches the bad record, after the good ones before it were yielded.
    """
    header, data = batch_records_bytes(batch_bytes, max_uncompressed_bytes=max_uncompressed_bytes)
    return iter_records_section(data, header.record_count)


def iter_records_section(data: bytes, count: int) -> Iterator[Record]:
    """Yield ``count`` records from a (decompressed) records section, which they must fill."""
    pos = 0
    end = len(data)
    for index in range(count):
        if pos >= end:
            raise CorruptBatchError(
                f"record batch counts {count} records but its data ends after {index}"
            )
        record, pos = _decode_record(data, pos, end, index)
        yield record
    if pos != end:
        raise CorruptBatchError(f"{end - pos} bytes left over after the last of {count} records")


def _decode_record(data: bytes, pos: int, end: int, index: int) -> tuple[Record, int]:
    """Decode the record at ``pos``; return it and the position after it."""
    length, pos = read_varint(data, pos, end)
    if length < 0 or length > end - pos:
        raise CorruptBatchError(
            f"record {index} declares {length} bytes; {end - pos} remain in the batch"
        )
    record_end = pos + length
    pos += 1  # attributes: no bits are defined for records
    timestamp_delta, pos = read_varlong(data, pos, record_end)
    offset_delta, pos = read_varint(data, pos, record_end)
    # Key and value are read inline (not with _read_bytes): this runs once per record and a
    # call per field is a measurable share of decoding time.
    key: bytes | None = None
    size, pos = read_varint(data, pos, record_end)
    if size >= 0 and size <= record_end - pos:
        key = data[pos : pos + size]
        pos += size
    elif size != -1:
        raise _bad_length(index, "key", size, record_end - pos)
    value: bytes | None = None
    size, pos = read_varint(data, pos, record_end)
    if size >= 0 and size <= record_end - pos:
        value = data[pos : pos + size]
        pos += size
    elif size != -1:
        raise _bad_length(index, "value", size, record_end - pos)
    header_count, pos = read_varint(data, pos, record_end)
    headers: list[Header]
    if header_count == 0:
        headers = []
    else:
        # Each header takes at least two bytes, so a count beyond that is a lie; checking it
        # first avoids building a huge list from a tiny record.
        if header_count < 0 or header_count * 2 > record_end - pos:
            raise CorruptBatchError(
                f"record {index} declares {header_count} headers in {record_end - pos} bytes"
            )
        headers, pos = _read_headers(data, pos, record_end, index, header_count)
    if pos != record_end:
        raise CorruptBatchError(
            f"record {index} declares {length} bytes but its fields take "
            f"{length - (record_end - pos)}"
        )
    return Record(offset_delta, timestamp_delta, key, value, headers), pos


def _bad_length(index: int, what: str, size: int, remaining: int) -> CorruptBatchError:
    if size < 0:
        return CorruptBatchError(f"record {index} has a {what} length of {size}")
    return CorruptBatchError(
        f"record {index} has a {what} of {size} bytes; {remaining} remain in the record"
    )


def _read_bytes(data: bytes, pos: int, end: int, index: int, what: str) -> tuple[bytes | None, int]:
    """Read a varint length then that many bytes; -1 is null."""
    size, pos = read_varint(data, pos, end)
    if size >= 0 and size <= end - pos:
        return data[pos : pos + size], pos + size
    if size == -1:
        return None, pos
    raise _bad_length(index, what, size, end - pos)


def _read_headers(
    data: bytes, pos: int, end: int, index: int, count: int
) -> tuple[list[Header], int]:
    headers: list[Header] = []
    for _ in range(count):
        key_bytes, pos = _read_bytes(data, pos, end, index, "header key")
        if key_bytes is None:
            raise CorruptBatchError(f"record {index} has a null header key")
        value, pos = _read_bytes(data, pos, end, index, "header value")
        headers.append((key_bytes.decode(HEADER_KEY_ENCODING, HEADER_KEY_ERRORS), value))
    return headers, pos


def decode_batch(batch_bytes: Buffer, *, max_uncompressed_bytes: int) -> DecodedBatch:
    """Decode the header and every record of one batch, with absolute offsets and timestamps.

    For a LogAppendTime batch every record's timestamp is the batch's maxTimestamp, as Kafka's
    readers have it.
    """
    header, data = batch_records_bytes(batch_bytes, max_uncompressed_bytes=max_uncompressed_bytes)
    base_offset = header.base_offset
    base_timestamp = header.base_timestamp
    append_time = header.timestamp_type is TimestampType.LOG_APPEND_TIME
    max_timestamp = header.max_timestamp
    records = [
        DecodedRecord(
            base_offset + record.offset_delta,
            max_timestamp if append_time else base_timestamp + record.timestamp_delta,
            record.key,
            record.value,
            record.headers,
        )
        for record in iter_records_section(data, header.record_count)
    ]
    return DecodedBatch(header, records)
