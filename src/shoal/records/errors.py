"""Errors raised while checking or decoding record batches.

Each error names the Kafka error code a broker returns for it, so the broker layer can answer a
client without a translation table of its own. The codes are data from the Kafka protocol; they
are repeated here (rather than imported from ``shoal.protocol``) because records sit below the
protocol layer.
"""

from __future__ import annotations

from typing import ClassVar


class RecordsError(Exception):
    """Root of every error from :mod:`shoal.records`."""

    kafka_error_code: ClassVar[int] = 2
    kafka_error_name: ClassVar[str] = "CORRUPT_MESSAGE"


class CorruptBatchError(RecordsError):
    """The bytes are not a well-formed batch: bad CRC, length, magic or header fields."""

    kafka_error_code = 2
    kafka_error_name = "CORRUPT_MESSAGE"


class InvalidRecordError(RecordsError):
    """A well-formed batch that a broker must not accept (control batch from a client, counts)."""

    kafka_error_code = 87
    kafka_error_name = "INVALID_RECORD"


class BatchTooLargeError(RecordsError):
    """The batch is larger than the configured maximum (``max.message.bytes``)."""

    kafka_error_code = 10
    kafka_error_name = "MESSAGE_TOO_LARGE"


class UnsupportedCompressionError(RecordsError):
    """The compression bits name a codec that does not exist."""

    kafka_error_code = 76
    kafka_error_name = "UNSUPPORTED_COMPRESSION_TYPE"


class DecompressionLimitError(CorruptBatchError):
    """Decompressing would exceed the allowed output size (a decompression bomb, or a lie)."""
