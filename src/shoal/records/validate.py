"""Checking batches that clients send, before anything is written.

Two depths:

* :func:`validate_batch` (and :func:`validate_produce_records` for a whole partition's payload)
  is the produce hot path. It reads the header and checks the CRC, but never decodes a record:
  the CRC already proves the bytes are what the client wrote, and decoding every record in
  Python would cost far more than the rest of a produce request.
* :func:`validate_records` decodes every record. The broker calls it where it must look inside:
  compacted topics (every record needs a key) and anywhere record-level facts are needed.

The checks follow Kafka's broker (``LogValidator.validateBatch`` and
``ProduceRequest.validateRecords``) and its error codes, with a few extra checks where Kafka
accepts a batch that no client writes and that would confuse later readers; each says why.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final, NamedTuple

from shoal.buffers import Buffer
from shoal.records.compression import codec_of
from shoal.records.errors import (
    BatchTooLargeError,
    CorruptBatchError,
    InvalidRecordError,
    RecordsError,
)
from shoal.records.header import (
    HEADER_SIZE,
    MAGIC_V2,
    MIN_BATCH_LENGTH,
    NO_PRODUCER_ID,
    NO_TIMESTAMP,
    BatchHeader,
    Compression,
    TimestampType,
    computed_crc,
    read_header,
    read_size_and_magic,
)
from shoal.records.reader import batch_records_bytes, iter_records_section
from shoal.records.varint import INT64_MIN

_SIZE_AND_MAGIC_BYTES: Final = 17
"""baseOffset, batchLength, partitionLeaderEpoch and magic: enough to frame and identify."""

_RECORD_BYTES_MIN: Final = 7
"""An empty record: length, attributes, timestampDelta, offsetDelta, key -1, value -1, 0 headers."""


class RecordsSummary(NamedTuple):
    """What :func:`validate_records` learned by decoding every record."""

    record_count: int
    max_timestamp: int
    """Largest record timestamp (createTime), whatever the header's maxTimestamp says."""
    offset_delta_of_max_timestamp: int
    """The first record that has ``max_timestamp``."""
    uncompressed_bytes: int
    """Size of the records section after decompression."""


def _magic_error(magic: int, position: int) -> RecordsError:
    where = f" at position {position}" if position else ""
    message = (
        f"record batch{where} has magic {magic}; only magic 2 (RecordBatch v2, written by "
        "Kafka 0.11+ clients) is supported"
    )
    # Kafka answers an old but real message format (magic 0 or 1) with INVALID_RECORD and
    # anything else with CORRUPT_MESSAGE; clients show the difference to their users.
    if magic in (0, 1):
        return InvalidRecordError(message)
    return CorruptBatchError(message)


def split_batches(buf: Buffer) -> list[tuple[int, int]]:
    """Return the ``(position, size)`` of each batch in a payload of whole batches.

    Checks framing only (sizes, magic), not contents. Raises :class:`CorruptBatchError` for a
    batch that is shorter than a header, runs past the end, or leaves a partial batch behind.
    An empty payload has no batches.
    """
    view = memoryview(buf)
    end = len(view)
    spans: list[tuple[int, int]] = []
    pos = 0
    while pos < end:
        remaining = end - pos
        if remaining < _SIZE_AND_MAGIC_BYTES:
            raise CorruptBatchError(
                f"{remaining} trailing bytes at position {pos} are not a whole record batch"
            )
        _base_offset, size, magic = read_size_and_magic(view, pos)
        if magic != MAGIC_V2:
            raise _magic_error(magic, pos)
        if size < HEADER_SIZE:
            raise CorruptBatchError(
                f"record batch at position {pos} has batchLength {size - 12}; "
                f"the minimum is {MIN_BATCH_LENGTH}"
            )
        if size > remaining:
            raise CorruptBatchError(
                f"record batch at position {pos} declares {size} bytes but only {remaining} "
                "remain: the payload is truncated"
            )
        spans.append((pos, size))
        pos += size
    return spans


def validate_batch(buf: Buffer, *, max_batch_bytes: int) -> BatchHeader:
    """Check the one batch in ``buf`` as a broker must before appending it; return its header.

    Does not decode records. Raises, in this order of checks:

    * :class:`CorruptBatchError`: wrong magic, fewer than 61 bytes, batchLength not matching the
      bytes given, CRC mismatch, or more records claimed than an uncompressed batch can hold;
    * :class:`BatchTooLargeError`: larger than ``max_batch_bytes``;
    * :class:`UnsupportedCompressionError`: codec id 5, 6 or 7;
    * :class:`InvalidRecordError`: record count not matching lastOffsetDelta + 1, a control
      batch, or inconsistent producer fields.
    """
    view = memoryview(buf)
    present = len(view)
    if present >= _SIZE_AND_MAGIC_BYTES and view[16] != MAGIC_V2:
        raise _magic_error(read_size_and_magic(view)[2], 0)
    if present < HEADER_SIZE:
        raise CorruptBatchError(
            f"record batch is {present} bytes; a v2 batch has at least {HEADER_SIZE}"
        )
    header = read_header(view)
    if header.batch_length < MIN_BATCH_LENGTH or header.size != present:
        raise CorruptBatchError(
            f"record batch declares batchLength {header.batch_length} ({header.size} bytes) "
            f"but {present} bytes were given"
        )
    if header.size > max_batch_bytes:
        raise BatchTooLargeError(
            f"record batch is {header.size} bytes, larger than the limit of {max_batch_bytes} "
            "bytes (the topic's max.message.bytes; broker default message.max.bytes)"
        )
    crc = computed_crc(view, 0, header.size)
    if crc != header.crc:
        raise CorruptBatchError(
            f"record batch CRC mismatch: stored {header.crc:#010x}, computed {crc:#010x}; "
            "the batch was damaged in transit or built wrongly"
        )
    codec = codec_of(header.compression)
    _check_counts(header, codec)
    if header.is_control:
        raise InvalidRecordError("clients may not write control batches (attribute bit 5 is set)")
    _check_producer_fields(header)
    return header


def _check_counts(header: BatchHeader, codec: Compression) -> None:
    if header.record_count < 1:
        raise InvalidRecordError(f"record batch has record count {header.record_count}; min 1")
    if header.record_count != header.last_offset_delta + 1:
        raise InvalidRecordError(
            f"record batch counts {header.record_count} records but its lastOffsetDelta is "
            f"{header.last_offset_delta} (it must be the count minus one)"
        )
    # Without decoding: an uncompressed record takes at least 7 bytes, so a count the bytes
    # cannot hold is a lie that only the deep check would otherwise find.
    if codec is Compression.NONE:
        room = (header.size - HEADER_SIZE) // _RECORD_BYTES_MIN
        if header.record_count > room:
            raise CorruptBatchError(
                f"record batch claims {header.record_count} records in "
                f"{header.size - HEADER_SIZE} bytes, room for at most {room}"
            )


def _check_producer_fields(header: BatchHeader) -> None:
    """Producer id, epoch and sequence must describe either no producer or an idempotent one.

    Kafka rejects a producer id with a negative sequence; the checks on the epoch, on ids below
    -1 and on transactions without an id are ours: InitProducerId never hands out such values,
    and a transactional batch without an id could never be committed or aborted. A sequence
    without a producer id is accepted, as Kafka does, because some clients (Sarama) send
    sequence 0 when idempotence is off; the broker ignores it.
    """
    if header.producer_id < NO_PRODUCER_ID:
        raise InvalidRecordError(
            f"record batch has producerId {header.producer_id}; it must be -1 or an id >= 0"
        )
    if header.has_producer_id:
        if header.base_sequence < 0:
            raise InvalidRecordError(
                f"invalid sequence number {header.base_sequence} in a record batch with "
                f"producerId {header.producer_id}"
            )
        if header.producer_epoch < 0:
            raise InvalidRecordError(
                f"invalid producer epoch {header.producer_epoch} in a record batch with "
                f"producerId {header.producer_id}"
            )
    elif header.is_transactional:
        raise InvalidRecordError("a transactional record batch must carry a producerId")


def validate_batches(buf: Buffer, *, max_batch_bytes: int) -> list[BatchHeader]:
    """Split a payload of one or more batches and :func:`validate_batch` each."""
    view = memoryview(buf)
    return [
        validate_batch(view[pos : pos + size], max_batch_bytes=max_batch_bytes)
        for pos, size in split_batches(view)
    ]


def validate_produce_records(buf: Buffer, *, max_batch_bytes: int) -> BatchHeader:
    """Validate one partition's records from a Produce request (v3+): exactly one batch.

    Raises :class:`InvalidRecordError` for none or several batches, as Kafka does, and
    otherwise what :func:`split_batches` and :func:`validate_batch` raise.
    """
    spans = split_batches(buf)
    if len(spans) != 1:
        raise InvalidRecordError(
            f"a Produce request must carry exactly one record batch per partition, not {len(spans)}"
        )
    return validate_batch(buf, max_batch_bytes=max_batch_bytes)


def validate_records(
    buf: Buffer, *, max_uncompressed_bytes: int, require_keys: bool = False
) -> RecordsSummary:
    """Decode every record of the one batch in ``buf`` and check them against its header.

    Meant for a batch that already passed :func:`validate_batch` (this does not re-check the
    CRC or producer fields). Raises :class:`CorruptBatchError` for malformed records or a
    record count that does not match the records present, :class:`DecompressionLimitError`
    past ``max_uncompressed_bytes``, and :class:`InvalidRecordError` for offset deltas other
    than 0..n-1 or, with ``require_keys`` (compacted topics), a record without a key.
    """
    header, data = batch_records_bytes(buf, max_uncompressed_bytes=max_uncompressed_bytes)
    if header.record_count < 1:
        raise InvalidRecordError(f"record batch has record count {header.record_count}; min 1")
    if header.record_count != header.last_offset_delta + 1:
        raise InvalidRecordError(
            f"record batch counts {header.record_count} records but its lastOffsetDelta is "
            f"{header.last_offset_delta}"
        )
    max_timestamp = INT64_MIN
    offset_delta_of_max = -1
    expected = 0
    for record in iter_records_section(data, header.record_count):
        if record.offset_delta != expected:
            raise InvalidRecordError(
                f"record {expected} has offset delta {record.offset_delta}; a batch's offset "
                "deltas must run 0, 1, 2, ..."
            )
        if require_keys and record.key is None:
            raise InvalidRecordError(
                f"record {expected} has no key; a compacted topic needs a key on every record"
            )
        timestamp = header.base_timestamp + record.timestamp_delta
        if timestamp > max_timestamp:
            max_timestamp = timestamp
            offset_delta_of_max = expected
        expected += 1
    return RecordsSummary(expected, max_timestamp, offset_delta_of_max, len(data))


class RecordRule(NamedTuple):
    """What the broker checks record by record in a produced batch (Kafka's
    ``LogValidator.validateRecord``): keys on compacted topics, and timestamps."""

    require_key: bool
    """A compacted topic: every record needs a key."""
    log_append_time: bool
    """The topic stamps batches itself (``message.timestamp.type=LogAppendTime``): a producer's
    batch that claims LogAppendTime is refused, and CreateTime timestamps are not checked."""
    now_ms: int
    before_max_ms: int
    """``message.timestamp.before.max.ms``: how far in the past a CreateTime timestamp may be."""
    after_max_ms: int
    """``message.timestamp.after.max.ms``: how far in the future."""


class RecordFault(IntEnum):
    NO_KEY = 1
    TIMESTAMP_OUT_OF_RANGE = 2
    APPEND_TIME_FROM_PRODUCER = 3


class RefusedRecord(NamedTuple):
    batch_index: int
    """The record's position in its batch (KIP-467's ``batch_index``)."""
    fault: RecordFault
    offset: int
    """The offset the producer's batch gives the record (its base offset, normally 0, plus the
    record's delta), which is what Kafka's messages name."""
    timestamp: int
    key_size: int
    value_size: int


def timestamp_out_of_range(timestamp: int, rule: RecordRule) -> bool:
    """Kafka's bounds, both exclusive: more than before_max_ms behind the broker's clock, or
    more than after_max_ms ahead of it."""
    diff = rule.now_ms - timestamp
    return diff > rule.before_max_ms or -diff > rule.after_max_ms


def refused_records(
    buf: Buffer, rule: RecordRule, *, max_uncompressed_bytes: int
) -> list[RefusedRecord]:
    """The records of one batch that ``rule`` refuses, decoding every record; empty if none.

    A record gets at most one fault, the key's first (as Kafka's validator checks the key, then
    the timestamp). A record without a timestamp (-1) is never out of range. Raises what
    :func:`validate_records` raises for malformed records.
    """
    header, data = batch_records_bytes(buf, max_uncompressed_bytes=max_uncompressed_bytes)
    append_time_batch = header.timestamp_type is TimestampType.LOG_APPEND_TIME
    refused: list[RefusedRecord] = []
    for index, record in enumerate(iter_records_section(data, header.record_count)):
        # A LogAppendTime batch's records all carry its max timestamp (Kafka's record.timestamp()).
        timestamp = (
            header.max_timestamp
            if append_time_batch
            else header.base_timestamp + record.timestamp_delta
        )
        fault: RecordFault | None = None
        if rule.require_key and record.key is None:
            fault = RecordFault.NO_KEY
        elif not rule.log_append_time and timestamp != NO_TIMESTAMP:
            if timestamp_out_of_range(timestamp, rule):
                fault = RecordFault.TIMESTAMP_OUT_OF_RANGE
        elif append_time_batch:
            fault = RecordFault.APPEND_TIME_FROM_PRODUCER
        if fault is not None:
            refused.append(
                RefusedRecord(
                    index,
                    fault,
                    header.base_offset + record.offset_delta,
                    timestamp,
                    0 if record.key is None else len(record.key),
                    0 if record.value is None else len(record.value),
                )
            )
    return refused
