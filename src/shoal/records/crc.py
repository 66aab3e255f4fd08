"""CRC-32C (Castagnoli), the checksum of RecordBatch v2."""

from __future__ import annotations

import crc32c as _crc32c

from shoal.buffers import Buffer


def crc32c(data: Buffer) -> int:
    """Return the CRC-32C of ``data`` (any buffer, read without a copy) as an unsigned int."""
    return int(_crc32c.crc32c(data))
