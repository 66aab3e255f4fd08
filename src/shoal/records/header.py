"""A zero-copy view of the RecordBatch v2 header.

Layout (all integers big-endian)::

     0  baseOffset            int64   rewritten by the broker on append (outside the CRC)
     8  batchLength           int32   bytes after this field: total size = batchLength + 12
    12  partitionLeaderEpoch  int32   (outside the CRC)
    16  magic                 int8    always 2
    17  crc                   uint32  CRC-32C of bytes 21..end
    21  attributes            int16   bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control
    23  lastOffsetDelta       int32
    27  baseTimestamp         int64
    35  maxTimestamp          int64
    43  producerId            int64
    51  producerEpoch         int16
    53  baseSequence          int32
    57  recordCount           int32
    61  records ...

The view reads fields on demand from a buffer; nothing is copied, so the produce path can check a
batch and hand its bytes on unchanged.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from shoal.buffers import Buffer
from shoal.records.crc import crc32c
from shoal.records.errors import CorruptBatchError

HEADER_SIZE: Final = 61
"""Bytes of header before the first record."""

LOG_OVERHEAD: Final = 12
"""baseOffset + batchLength: the bytes not counted by batchLength."""

CRC_START: Final = 21
"""The CRC covers the batch from the attributes field to the end."""

MAGIC_V2: Final = 2

NO_PRODUCER_ID: Final = -1
NO_PRODUCER_EPOCH: Final = -1
NO_SEQUENCE: Final = -1
NO_TIMESTAMP: Final = -1
NO_PARTITION_LEADER_EPOCH: Final = -1

MIN_BATCH_LENGTH: Final = HEADER_SIZE - LOG_OVERHEAD
"""The smallest batchLength a well-formed header can have (a batch with no record bytes)."""

_OFFSET = struct.Struct(">q")
_PREFIX = struct.Struct(">qiib")  # baseOffset, batchLength, partitionLeaderEpoch, magic
_FULL = struct.Struct(">qiibIhiqqqhii")
_CRC = struct.Struct(">I")
_STORED_PREFIX = struct.Struct(">qii")  # baseOffset, batchLength, partitionLeaderEpoch
_ATTRIBUTES = struct.Struct(">h")
_MAX_TIMESTAMP = struct.Struct(">q")
_ATTRIBUTES_AT: Final = 21
_MAX_TIMESTAMP_AT: Final = 35

ATTR_COMPRESSION_MASK: Final = 0x07
ATTR_TIMESTAMP_TYPE: Final = 0x08
ATTR_TRANSACTIONAL: Final = 0x10
ATTR_CONTROL: Final = 0x20
ATTR_DELETE_HORIZON: Final = 0x40


class Compression(IntEnum):
    """Codec ids in the low three attribute bits."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


class TimestampType(IntEnum):
    CREATE_TIME = 0
    LOG_APPEND_TIME = 1


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The decoded fixed-size header of one batch (a copy of 61 bytes' worth of fields)."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies, header included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        """The raw codec id (may be an unknown value; see :func:`shoal.records.validate_batch`)."""
        return self.attributes & ATTR_COMPRESSION_MASK

    @property
    def timestamp_type(self) -> TimestampType:
        return (
            TimestampType.LOG_APPEND_TIME
            if self.attributes & ATTR_TIMESTAMP_TYPE
            else TimestampType.CREATE_TIME
        )

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & ATTR_TRANSACTIONAL)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & ATTR_CONTROL)

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id >= 0

    @property
    def last_sequence(self) -> int:
        """Sequence of the last record, wrapping at INT32_MAX as Kafka does."""
        if self.base_sequence < 0:
            return NO_SEQUENCE
        return (self.base_sequence + self.last_offset_delta) % (2**31)


def read_header(buf: Buffer, position: int = 0) -> BatchHeader:
    """Decode the 61-byte header at ``position`` of ``buf``.

    Only checks that 61 bytes are present; :func:`shoal.records.validate_batch` checks the
    field values.
    """
    view = memoryview(buf)
    if len(view) - position < HEADER_SIZE:
        raise CorruptBatchError(
            f"record batch header needs {HEADER_SIZE} bytes, {max(0, len(view) - position)} present"
        )
    return BatchHeader(*_FULL.unpack_from(view, position))


def read_size_and_magic(buf: Buffer, position: int = 0) -> tuple[int, int, int]:
    """Return ``(base_offset, total_size, magic)`` from the first 17 bytes at ``position``.

    Used to walk a log or a produce payload batch by batch without decoding whole headers.
    """
    base_offset, batch_length, _epoch, magic = _PREFIX.unpack_from(buf, position)
    return base_offset, batch_length + LOG_OVERHEAD, magic


def stored_crc(buf: Buffer, position: int = 0) -> int:
    value: int = struct.unpack_from(">I", buf, position + 17)[0]
    return value


def computed_crc(buf: Buffer, position: int, size: int) -> int:
    """CRC-32C of the batch at ``position`` whose total size is ``size``."""
    view = memoryview(buf)
    return crc32c(view[position + CRC_START : position + size])


def crc_matches(buf: Buffer, position: int = 0, size: int | None = None) -> bool:
    """True when the stored CRC of the batch at ``position`` matches its bytes."""
    view = memoryview(buf)
    if size is None:
        _base, size, _magic = read_size_and_magic(view, position)
    return stored_crc(view, position) == computed_crc(view, position, size)


def encode_base_offset(base_offset: int) -> bytes:
    """The eight bytes that replace a batch's baseOffset on append (outside the CRC)."""
    return _OFFSET.pack(base_offset)


def encode_prefix(base_offset: int, batch_length: int, partition_leader_epoch: int) -> bytes:
    """The first 16 bytes of a stored batch: baseOffset, batchLength, partitionLeaderEpoch
    (all outside the CRC), written on append in place of the producer's."""
    return _STORED_PREFIX.pack(base_offset, batch_length, partition_leader_epoch)


def write_header(buf: bytearray | memoryview, position: int, header: BatchHeader) -> None:
    """Pack every field of ``header`` (its ``crc`` as given) into ``buf`` at ``position``."""
    _FULL.pack_into(
        buf,
        position,
        header.base_offset,
        header.batch_length,
        header.partition_leader_epoch,
        header.magic,
        header.crc,
        header.attributes,
        header.last_offset_delta,
        header.base_timestamp,
        header.max_timestamp,
        header.producer_id,
        header.producer_epoch,
        header.base_sequence,
        header.record_count,
    )


def refresh_crc(buf: bytearray | memoryview, position: int = 0) -> int:
    """Recompute and store the CRC of the batch at ``position``; return it."""
    _base, size, _magic = read_size_and_magic(buf, position)
    crc = computed_crc(buf, position, size)
    _CRC.pack_into(buf, position + 17, crc)
    return crc


def set_max_timestamp(
    buf: bytearray | memoryview,
    position: int,
    timestamp_type: TimestampType,
    max_timestamp: int,
) -> None:
    """Set the timestamp type bit and maxTimestamp of the batch at ``position``, then its CRC.

    This is what a broker does to a batch it accepts for a topic with
    ``message.timestamp.type=LogAppendTime``: readers then take ``max_timestamp`` as every
    record's timestamp. Both fields are inside the CRC, so it is recomputed.
    """
    (attributes,) = _ATTRIBUTES.unpack_from(buf, position + _ATTRIBUTES_AT)
    if timestamp_type is TimestampType.LOG_APPEND_TIME:
        attributes |= ATTR_TIMESTAMP_TYPE
    else:
        attributes &= ~ATTR_TIMESTAMP_TYPE
    _ATTRIBUTES.pack_into(buf, position + _ATTRIBUTES_AT, attributes)
    _MAX_TIMESTAMP.pack_into(buf, position + _MAX_TIMESTAMP_AT, max_timestamp)
    refresh_crc(buf, position)
