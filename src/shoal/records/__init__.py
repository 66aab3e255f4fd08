"""RecordBatch v2: header view, validation, building, record iteration and compression.

Sans-IO: this package takes and returns bytes; it never touches files, sockets or event loops.
"""

from shoal.records.crc import crc32c
from shoal.records.errors import (
    BatchTooLargeError,
    CorruptBatchError,
    DecompressionLimitError,
    InvalidRecordError,
    RecordsError,
    UnsupportedCompressionError,
)
from shoal.records.header import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC_V2,
    BatchHeader,
    Compression,
    TimestampType,
    read_header,
)

__all__ = [
    "HEADER_SIZE",
    "LOG_OVERHEAD",
    "MAGIC_V2",
    "BatchHeader",
    "BatchTooLargeError",
    "Compression",
    "CorruptBatchError",
    "DecompressionLimitError",
    "InvalidRecordError",
    "RecordsError",
    "TimestampType",
    "UnsupportedCompressionError",
    "crc32c",
    "read_header",
]
