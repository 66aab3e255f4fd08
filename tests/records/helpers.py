"""Shared test data for shoal.records: strategies, raw record crafting, bombs, xxHash32.

Crafted bytes use kafka-python's varint encoder, not shoal's, so a bug in shoal's encoder cannot
hide the same bug in its decoder.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import cramjam
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from shoal.records import SimpleRecord
from shoal.records.builder import assemble_batch
from tests.records.kafka_oracle import encode_varint as kafka_encode_varint

# Deadlines are timing assertions; this machine is shared and slow, so none.
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MIB = 1 << 20


def zz(value: int) -> bytes:
    """Zigzag varint by kafka-python's encoder (independent of shoal's)."""
    out = bytearray()
    kafka_encode_varint(value, out.append)
    return bytes(out)


def raw_bytes_field(data: bytes | None) -> bytes:
    return zz(-1) if data is None else zz(len(data)) + data


def raw_record(
    *,
    offset_delta: int,
    timestamp_delta: int = 0,
    key: bytes | None = b"k",
    value: bytes | None = b"v",
    headers: Sequence[tuple[bytes | None, bytes | None]] = (),
    length_adjust: int = 0,
) -> bytes:
    """One record, written field by field (header keys as raw bytes, None for a null key)."""
    body = b"\x00" + zz(timestamp_delta) + zz(offset_delta)
    body += raw_bytes_field(key) + raw_bytes_field(value)
    body += zz(len(headers))
    for header_key, header_value in headers:
        body += raw_bytes_field(header_key) + raw_bytes_field(header_value)
    return zz(len(body) + length_adjust) + body


def batch_around(
    section: bytes,
    *,
    record_count: int,
    last_offset_delta: int | None = None,
    attributes: int = 0,
    base_offset: int = 0,
    base_timestamp: int = 1_000,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
) -> bytes:
    """Wrap a records section (any bytes) in a header with a correct CRC."""
    return assemble_batch(
        section,
        base_offset=base_offset,
        partition_leader_epoch=0,
        attributes=attributes,
        last_offset_delta=record_count - 1 if last_offset_delta is None else last_offset_delta,
        base_timestamp=base_timestamp,
        max_timestamp=base_timestamp,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        record_count=record_count,
    )


# --- strategies -------------------------------------------------------------------------------

nullable_bytes = st.none() | st.binary(max_size=64)
# Surrogates cannot be encoded as UTF-8, so no client can send them as header keys.
header_key = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=16)
headers = st.lists(st.tuples(header_key, nullable_bytes), max_size=4)
timestamps = st.integers(min_value=0, max_value=2**42)


@st.composite
def simple_records(draw: st.DrawFn, *, max_size: int = 20) -> list[SimpleRecord]:
    count = draw(st.integers(min_value=1, max_value=max_size))
    return [
        SimpleRecord(
            key=draw(nullable_bytes),
            value=draw(nullable_bytes),
            headers=draw(headers),
            timestamp=draw(timestamps),
        )
        for _ in range(count)
    ]


# --- decompression bombs ----------------------------------------------------------------------


def gzip_bomb(true_mib: int) -> bytes:
    """A valid gzip member of ``true_mib`` MiB of zeros, built in well under a second.

    Compressing a gigabyte with zlib takes seconds, so one MiB is deflated once, ending in a full
    flush (which makes the next block independent of it), and that block is repeated. The
    trailer carries the true CRC-32 and size, so it is a real stream, not a lie.
    """
    zeros = bytes(MIB)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = deflater.compress(zeros) + deflater.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(true_mib):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    final_empty_block = b"\x03\x00"
    trailer = struct.pack("<II", crc, (true_mib * MIB) & 0xFFFFFFFF)
    return header + segment * true_mib + final_empty_block + trailer


def zstd_bomb(true_mib: int) -> bytes:
    """Streamed, so the frame does not declare its size: the decoder must be stopped."""
    zeros = bytes(MIB)
    compressor = cramjam.zstd.Compressor(level=1)
    for _ in range(true_mib):
        compressor.compress(zeros)
    return bytes(compressor.finish())


def lz4_bomb(true_mib: int) -> bytes:
    zeros = bytes(MIB)
    compressor = cramjam.lz4.Compressor(content_checksum=False, block_linked=False)
    for _ in range(true_mib):
        compressor.compress(zeros)
    return bytes(compressor.finish())


def snappy_bomb(true_mib: int) -> bytes:
    """xerial framing, one raw block per MiB: snappy tops out near 21:1, so keep it modest."""
    block = bytes(cramjam.snappy.compress_raw(bytes(MIB)))
    chunk = struct.pack(">i", len(block)) + block
    return b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1) + chunk * true_mib


def snappy_liar(claimed: int) -> bytes:
    """A raw snappy block whose length preamble claims ``claimed`` bytes over a tiny body."""
    return zz_unsigned(claimed) + bytes(cramjam.snappy.compress_raw(b"x" * 10))[1:]


def zz_unsigned(value: int) -> bytes:
    """Plain (not zigzag) varint, as snappy's length preamble uses."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# --- xxHash32, for hand-made LZ4 frame descriptors --------------------------------------------

_P1, _P2, _P3, _P4, _P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
_M32 = 0xFFFFFFFF


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & _M32


def xxh32(data: bytes, seed: int = 0) -> int:
    """xxHash32 (the LZ4 frame checksum), written from the algorithm's description."""
    length = len(data)
    pos = 0
    if length >= 16:
        lanes = [(seed + _P1 + _P2) & _M32, (seed + _P2) & _M32, seed & _M32, (seed - _P1) & _M32]
        while pos + 16 <= length:
            for lane in range(4):
                (word,) = struct.unpack_from("<I", data, pos)
                lanes[lane] = (_rotl((lanes[lane] + word * _P2) & _M32, 13) * _P1) & _M32
                pos += 4
        acc = (
            _rotl(lanes[0], 1) + _rotl(lanes[1], 7) + _rotl(lanes[2], 12) + _rotl(lanes[3], 18)
        ) & _M32
    else:
        acc = (seed + _P5) & _M32
    acc = (acc + length) & _M32
    while pos + 4 <= length:
        (word,) = struct.unpack_from("<I", data, pos)
        acc = (_rotl((acc + word * _P3) & _M32, 17) * _P4) & _M32
        pos += 4
    while pos < length:
        acc = (_rotl((acc + data[pos] * _P5) & _M32, 11) * _P1) & _M32
        pos += 1
    acc ^= acc >> 15
    acc = (acc * _P2) & _M32
    acc ^= acc >> 13
    acc = (acc * _P3) & _M32
    acc ^= acc >> 16
    return acc


def lz4_frame_with_content_size(payload: bytes, declared: int) -> bytes:
    """An LZ4 frame storing ``payload`` uncompressed in one block, declaring ``declared``."""
    descriptor = bytes((0x68, 0x40)) + struct.pack("<Q", declared)  # v1, independent, size
    header_checksum = bytes(((xxh32(descriptor) >> 8) & 0xFF,))
    block = struct.pack("<I", len(payload) | 0x80000000) + payload  # high bit: stored as is
    return struct.pack("<I", 0x184D2204) + descriptor + header_checksum + block + b"\0\0\0\0"
