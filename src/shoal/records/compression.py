"""Compression codecs of RecordBatch v2, with decompression bounded against bombs.

Every decompressor here stops at ``max_output_bytes`` and raises
:class:`DecompressionLimitError` rather than allocate more: a produce request of a few
kilobytes can otherwise expand to gigabytes (zstd and gzip reach ratios over 1000:1). How each
codec is bounded:

* gzip: :mod:`zlib` streaming with ``max_length``.
* snappy: every raw block starts with its uncompressed length; the lengths are summed and checked
  before anything is allocated, then each block is decompressed into its slot of one buffer.
* lz4, zstd: cramjam streams into a fixed-size buffer and fails when it is full. The buffer
  starts at the size the frame header declares (when it does) or a guess, and grows up to the
  limit; a frame that declares more than the limit is refused before any work.

The formats Kafka uses:

* gzip: RFC 1952 (one or more members).
* snappy: the Java client writes snappy-java's "xerial" framing; others may send a raw snappy
  block, so both are read. Writing uses xerial framing, as the Java client does::

      magic  b"\\x82SNAPPY\\x00"   8 bytes
      version                   int32 BE   (1)
      compatible version        int32 BE   (1)
      then repeated: length int32 BE, raw snappy block of at most 32 KiB uncompressed

* lz4: the standard LZ4 frame format. Java's reader decompresses each block on its own and
  rejects frames whose blocks depend on earlier ones, so frames are written with independent
  blocks.
* zstd: standard zstd frames.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Final

import cramjam

from shoal.buffers import Buffer
from shoal.records.errors import (
    CorruptBatchError,
    DecompressionLimitError,
    UnsupportedCompressionError,
)
from shoal.records.header import Compression

GZIP_LEVEL_DEFAULT: Final = 6
"""Java's Deflater default, which Kafka's producer uses unless compression.gzip.level is set."""

ZSTD_LEVEL_DEFAULT: Final = 3
"""zstd's own default and Kafka's compression.zstd.level default."""

XERIAL_MAGIC: Final = b"\x82SNAPPY\x00"
_XERIAL_HEADER: Final = struct.Struct(">8sii")
_XERIAL_VERSION: Final = 1
_INT32_BE: Final = struct.Struct(">i")

XERIAL_BLOCK_BYTES: Final = 32 * 1024
"""snappy-java's default block size: the uncompressed bytes per xerial chunk."""

_GZIP_WBITS: Final = 16 + zlib.MAX_WBITS  # gzip wrapper only; a bare zlib stream is corrupt
_INITIAL_OUTPUT_BYTES: Final = 64 * 1024
_EXPANSION_GUESS: Final = 8  # typical ratio for record data; only the first buffer's size
_GROWTH_FACTOR: Final = 4

_LZ4_FRAME_MAGIC: Final = 0x184D2204
_LZ4_FLG_CONTENT_SIZE: Final = 0x08
_ZSTD_FRAME_MAGIC: Final = 0xFD2FB528
_ZSTD_FCS_BYTES: Final = (0, 2, 4, 8)
_ZSTD_DICT_ID_BYTES: Final = (0, 1, 2, 4)

# cramjam reports a full output buffer with Rust's io::ErrorKind::WriteZero message. It is the
# only way to tell "output full" from "corrupt input"; tests pin this so a change in cramjam's
# wording fails loudly instead of turning bombs into plain corruption errors.
_OUTPUT_FULL_MESSAGE: Final = "failed to write whole buffer"


def codec_of(codec: int) -> Compression:
    """Return the :class:`Compression` for a raw codec id, or raise for ids 5..7."""
    try:
        return Compression(codec)
    except ValueError:
        raise UnsupportedCompressionError(
            f"compression codec id {codec} is not one of none(0), gzip(1), snappy(2), lz4(3), "
            "zstd(4)"
        ) from None


def compress(codec: int, data: Buffer, *, level: int | None = None) -> bytes:
    """Compress ``data`` with ``codec`` in the format Kafka clients read.

    ``level`` is the codec's own level (``None`` for Kafka's default); snappy has no levels and
    ignores it.
    """
    kind = codec_of(codec)
    if kind is Compression.NONE:
        return bytes(data)
    if kind is Compression.GZIP:
        return zlib.compress(data, GZIP_LEVEL_DEFAULT if level is None else level, _GZIP_WBITS)
    if kind is Compression.SNAPPY:
        return _xerial_compress(memoryview(data))
    if kind is Compression.LZ4:
        # Independent blocks and no content checksum: what Java's reader accepts (it verifies
        # block checksums, which cramjam always writes).
        compressor = cramjam.lz4.Compressor(level=level, content_checksum=False, block_linked=False)
        # The streaming compressor takes only ``bytes`` (not any buffer, whatever its stub says).
        compressor.compress(data if isinstance(data, bytes) else bytes(data))
        return bytes(compressor.finish())
    return bytes(cramjam.zstd.compress(data, level=ZSTD_LEVEL_DEFAULT if level is None else level))


def decompress(codec: int, data: Buffer, max_output_bytes: int) -> bytes:
    """Decompress ``data`` written with ``codec``, producing at most ``max_output_bytes``.

    Raises :class:`DecompressionLimitError` if the output would be larger,
    :class:`CorruptBatchError` if ``data`` is not valid for the codec, and
    :class:`UnsupportedCompressionError` for an unknown codec id.
    """
    if max_output_bytes < 0:
        raise ValueError(f"max_output_bytes must be >= 0, not {max_output_bytes}")
    kind = codec_of(codec)
    view = memoryview(data)
    if kind is Compression.NONE:
        _check_limit(len(view), max_output_bytes, kind)
        return bytes(view)
    if len(view) == 0:
        raise CorruptBatchError(f"{kind.name.lower()} payload is empty")
    if kind is Compression.GZIP:
        return _gzip_decompress(view, max_output_bytes)
    if kind is Compression.SNAPPY:
        return _snappy_decompress(view, max_output_bytes)
    if kind is Compression.LZ4:
        return _decompress_into_growing(
            kind, cramjam.lz4.decompress_into, view, max_output_bytes, _lz4_declared_size(view)
        )
    return _decompress_into_growing(
        kind, cramjam.zstd.decompress_into, view, max_output_bytes, _zstd_declared_size(view)
    )


def _check_limit(size: int, max_output_bytes: int, kind: Compression) -> None:
    if size > max_output_bytes:
        raise DecompressionLimitError(
            f"{kind.name.lower()} records expand to more than {max_output_bytes} bytes "
            f"(at least {size}); refusing to decompress further"
        )


def _gzip_decompress(view: memoryview, max_output_bytes: int) -> bytes:
    out = bytearray()
    pending: bytes | memoryview = view
    decompressor = zlib.decompressobj(_GZIP_WBITS)
    try:
        while True:
            # Ask for one byte more than allowed: getting it proves the limit is exceeded
            # without ever holding more than limit + 1 bytes of output.
            out += decompressor.decompress(pending, max_output_bytes - len(out) + 1)
            _check_limit(len(out), max_output_bytes, Compression.GZIP)
            if decompressor.eof:
                pending = decompressor.unused_data
                if not pending:
                    return bytes(out)
                # RFC 1952 allows several members back to back; each needs a new stream.
                decompressor = zlib.decompressobj(_GZIP_WBITS)
            elif decompressor.unconsumed_tail:
                pending = decompressor.unconsumed_tail
            else:
                raise CorruptBatchError("gzip stream ends before its end-of-stream marker")
    except zlib.error as exc:
        raise CorruptBatchError(f"gzip records are corrupt: {exc}") from exc


def _xerial_compress(view: memoryview) -> bytes:
    out = bytearray(_XERIAL_HEADER.pack(XERIAL_MAGIC, _XERIAL_VERSION, _XERIAL_VERSION))
    for start in range(0, len(view), XERIAL_BLOCK_BYTES):
        block = cramjam.snappy.compress_raw(view[start : start + XERIAL_BLOCK_BYTES])
        out += _INT32_BE.pack(len(block))
        out += block
    return bytes(out)


def _xerial_blocks(view: memoryview) -> list[memoryview]:
    """Split a xerial stream (already known to start with the magic) into raw snappy blocks."""
    blocks: list[memoryview] = []
    pos = 0
    end = len(view)
    while pos < end:
        # snappy-java reads concatenated streams, so a header may appear between blocks. A
        # block length never starts with 0x82 (that would be negative), so this is unambiguous.
        if view[pos : pos + len(XERIAL_MAGIC)].tobytes() == XERIAL_MAGIC:
            if end - pos < _XERIAL_HEADER.size:
                raise CorruptBatchError("snappy (xerial) header is truncated")
            pos += _XERIAL_HEADER.size
            continue
        if end - pos < _INT32_BE.size:
            raise CorruptBatchError(f"snappy (xerial) block length truncated at byte {pos}")
        (size,) = _INT32_BE.unpack_from(view, pos)
        pos += _INT32_BE.size
        if size <= 0 or size > end - pos:
            raise CorruptBatchError(
                f"snappy (xerial) block at byte {pos - 4} declares {size} bytes; {end - pos} remain"
            )
        blocks.append(view[pos : pos + size])
        pos += size
    return blocks


def _snappy_decompress(view: memoryview, max_output_bytes: int) -> bytes:
    blocks = _xerial_blocks(view) if view[: len(XERIAL_MAGIC)].tobytes() == XERIAL_MAGIC else [view]
    try:
        # Each raw block starts with its uncompressed length: add them up and check the total
        # before allocating, so a block that claims 4 GiB costs nothing.
        sizes: list[int] = []
        total = 0
        for block in blocks:
            size = cramjam.snappy.decompress_raw_len(block)
            total += size
            _check_limit(total, max_output_bytes, Compression.SNAPPY)
            sizes.append(size)
        out = bytearray(total)
        out_view = memoryview(out)
        pos = 0
        for block, size in zip(blocks, sizes, strict=True):
            written = cramjam.snappy.decompress_raw_into(block, out_view[pos : pos + size])
            if written != size:
                raise CorruptBatchError(
                    f"snappy block declares {size} bytes but decompresses to {written}"
                )
            pos += size
    except cramjam.DecompressionError as exc:
        raise CorruptBatchError(f"snappy records are corrupt: {exc}") from exc
    return bytes(out)


def _decompress_into_growing(
    kind: Compression,
    decompress_into: Callable[[memoryview, bytearray], int],
    view: memoryview,
    max_output_bytes: int,
    declared: int | None,
) -> bytes:
    """Stream-decompress into a bounded buffer, growing it up to ``max_output_bytes + 1``.

    A retry starts over, but the buffer grows geometrically, so the work is bounded by a small
    multiple of the final output (or of the limit, for a bomb).
    """
    if declared is not None:
        _check_limit(declared, max_output_bytes, kind)
        size = declared  # an exact fit succeeds; more output (another frame) grows it
    else:
        size = max(_INITIAL_OUTPUT_BYTES, len(view) * _EXPANSION_GUESS)
    ceiling = max_output_bytes + 1
    size = min(size, ceiling)
    while True:
        out = bytearray(size)
        try:
            written = decompress_into(view, out)
        except cramjam.DecompressionError as exc:
            if _OUTPUT_FULL_MESSAGE not in str(exc):
                raise CorruptBatchError(f"{kind.name.lower()} records are corrupt: {exc}") from exc
            _check_limit(size, max_output_bytes, kind)
            del out  # free before allocating the larger buffer
            size = min(max(size * _GROWTH_FACTOR, _INITIAL_OUTPUT_BYTES), ceiling)
            continue
        _check_limit(written, max_output_bytes, kind)
        del out[written:]
        return bytes(out)


def _lz4_declared_size(view: memoryview) -> int | None:
    """The content size in an LZ4 frame descriptor, when the writer included it."""
    if len(view) < 14 or int.from_bytes(view[0:4], "little") != _LZ4_FRAME_MAGIC:
        return None
    if not view[4] & _LZ4_FLG_CONTENT_SIZE:
        return None
    return int.from_bytes(view[6:14], "little")


def _zstd_declared_size(view: memoryview) -> int | None:
    """The Frame_Content_Size of the first zstd frame, when the writer included it."""
    if len(view) < 5 or int.from_bytes(view[0:4], "little") != _ZSTD_FRAME_MAGIC:
        return None
    descriptor = view[4]
    single_segment = bool(descriptor & 0x20)
    fcs_bytes = _ZSTD_FCS_BYTES[descriptor >> 6] or (1 if single_segment else 0)
    if fcs_bytes == 0:
        return None
    start = 5 + (0 if single_segment else 1) + _ZSTD_DICT_ID_BYTES[descriptor & 0x03]
    if len(view) < start + fcs_bytes:
        return None
    size = int.from_bytes(view[start : start + fcs_bytes], "little")
    # The 2-byte form is stored minus 256 (RFC 8878, 3.1.1.1.4).
    return size + 256 if fcs_bytes == 2 else size
