"""Record batches as the broker meets them: split, validate, decompress and decode.

Property: :class:`shoal.records.RecordsError` (a clear CORRUPT_MESSAGE or similar answer) is
the only exception; no hang, no abort, and no allocation beyond the decompression limit.

A CRC that random bytes match is rare, so when the first byte says so the target rewrites the
batch's CRC-32C after the fuzzer's changes: the fuzzer then explores the record layout and the
codecs behind the checksum instead of being stopped by it. The last mode feeds the bytes
straight to a codec's decompressor.
"""

from __future__ import annotations

from typing import Final

from shoal.records import (
    HEADER_SIZE,
    Compression,
    RecordsError,
    decode_batch,
    decompress,
    refresh_crc,
    split_batches,
    validate_batches,
)

BATCH_BYTES_MAX: Final = 1 << 20
"""The batch size limit given to the validator (1 MiB, message.max.bytes' default)."""
UNCOMPRESSED_BYTES_MAX: Final = 1 << 20
"""The decompression limit (1 MiB): a bomb must stop there, not fill memory."""
CODECS: Final = [codec.value for codec in Compression]


def one_input(data: bytes) -> None:
    """``data[0] % 3``: 0 the bytes as sent, 1 with their CRCs made right, 2 a codec's input."""
    if not data:
        return
    mode = data[0] % 3
    body = bytearray(data[1:])
    try:
        if mode == 2:
            codec = CODECS[data[0] // 3 % len(CODECS)]
            decompress(codec, bytes(body), UNCOMPRESSED_BYTES_MAX)
            return
        if mode == 1 and len(body) >= HEADER_SIZE:
            _refresh_crcs(body)
        payload = bytes(body)
        validate_batches(payload, max_batch_bytes=BATCH_BYTES_MAX)
        for position, size in split_batches(payload):
            batch = payload[position : position + size]
            decode_batch(batch, max_uncompressed_bytes=UNCOMPRESSED_BYTES_MAX)
    except RecordsError:
        pass


def _refresh_crcs(body: bytearray) -> None:
    """Give every batch that ``split_batches`` finds a correct CRC-32C (none if the framing
    itself is broken: then the validator refuses it before any CRC matters)."""
    try:
        spans = split_batches(bytes(body))
    except RecordsError:
        return
    for position, _size in spans:
        refresh_crc(body, position)
