"""Codecs: round trips, the wire formats Kafka clients expect, and bounded decompression."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cramjam
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.records import (
    Compression,
    CorruptBatchError,
    DecompressionLimitError,
    UnsupportedCompressionError,
    compress,
    decompress,
)
from shoal.records.compression import XERIAL_BLOCK_BYTES, XERIAL_MAGIC
from tests.records.helpers import (
    MIB,
    SETTINGS,
    gzip_bomb,
    lz4_bomb,
    lz4_frame_with_content_size,
    snappy_bomb,
    snappy_liar,
    xxh32,
    zstd_bomb,
)

CODECS = list(Compression)
COMPRESSED = [c for c in Compression if c is not Compression.NONE]


@SETTINGS
@given(codec=st.sampled_from(CODECS), data=st.binary(max_size=5000))
def test_round_trip(codec: Compression, data: bytes) -> None:
    packed = compress(codec, data)
    assert decompress(codec, packed, len(data)) == data


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_of_several_blocks_accepts_any_buffer(codec: Compression) -> None:
    # Larger than one xerial block (32 KiB) and one LZ4 block (64 KiB), and not too regular.
    data = b"".join(b"record %d;" % (i * 7919 % 1000) for i in range(40_000))
    packed = compress(codec, bytearray(data))
    assert decompress(codec, memoryview(bytearray(packed)), len(data)) == data


@pytest.mark.parametrize("codec", CODECS)
def test_output_exactly_at_the_limit_passes_and_one_byte_over_fails(codec: Compression) -> None:
    data = bytes(range(256)) * 300
    packed = compress(codec, data)
    assert decompress(codec, packed, len(data)) == data
    with pytest.raises(DecompressionLimitError, match=f"more than {len(data) - 1} bytes"):
        decompress(codec, packed, len(data) - 1)


@pytest.mark.parametrize("codec", [5, 6, 7, 8, -1])
def test_unknown_codec_ids_are_unsupported(codec: int) -> None:
    with pytest.raises(UnsupportedCompressionError, match=f"id {codec}"):
        decompress(codec, b"anything", 100)
    with pytest.raises(UnsupportedCompressionError):
        compress(codec, b"anything")


# --- formats ---------------------------------------------------------------------------------


def test_gzip_is_rfc1952_and_reads_concatenated_members() -> None:
    packed = compress(Compression.GZIP, b"hello")
    assert packed[:2] == b"\x1f\x8b"
    assert gzip.decompress(packed) == b"hello"
    two_members = gzip.compress(b"hello ") + gzip.compress(b"world")
    assert decompress(Compression.GZIP, two_members, 100) == b"hello world"


def test_snappy_writes_xerial_framing_like_the_java_client() -> None:
    data = bytes(range(256)) * 300  # 76,800 bytes: three 32 KiB blocks
    packed = compress(Compression.SNAPPY, data)
    magic, version, compatible = struct.unpack_from(">8sii", packed)
    assert (magic, version, compatible) == (XERIAL_MAGIC, 1, 1)
    pos, blocks = 16, []
    while pos < len(packed):
        (size,) = struct.unpack_from(">i", packed, pos)
        blocks.append(bytes(cramjam.snappy.decompress_raw(packed[pos + 4 : pos + 4 + size])))
        pos += 4 + size
    assert pos == len(packed)
    assert [len(b) for b in blocks] == [XERIAL_BLOCK_BYTES, XERIAL_BLOCK_BYTES, 76_800 - 65_536]
    assert b"".join(blocks) == data


def test_snappy_reads_raw_blocks_and_concatenated_xerial_streams() -> None:
    raw = bytes(cramjam.snappy.compress_raw(b"plain raw snappy"))
    assert decompress(Compression.SNAPPY, raw, 100) == b"plain raw snappy"
    two_streams = compress(Compression.SNAPPY, b"first ") + compress(Compression.SNAPPY, b"second")
    assert decompress(Compression.SNAPPY, two_streams, 100) == b"first second"


def test_lz4_frames_have_independent_blocks_as_java_requires() -> None:
    # Java's reader refuses dependent blocks and decompresses each block on its own; do the
    # same here, with no dictionary, to prove a Java consumer can read what shoal writes.
    data = b"".join(b"value-%d " % (i % 5000) for i in range(30_000))
    packed = compress(Compression.LZ4, data)
    assert struct.unpack_from("<I", packed)[0] == 0x184D2204
    flg, bd = packed[4], packed[5]
    assert flg >> 6 == 1, "frame version 01"
    assert flg & 0x20, "block independence flag"
    assert not flg & 0x08, "no content size: Java skips it, but it is not written"
    assert packed[6] == (xxh32(bytes((flg, bd))) >> 8) & 0xFF, "descriptor checksum"
    block_max = 1 << (2 * ((bd >> 4) & 7) + 8)
    pos, out = 7, bytearray()
    while True:
        (word,) = struct.unpack_from("<I", packed, pos)
        pos += 4
        if word == 0:
            break
        size = word & 0x7FFFFFFF
        block = packed[pos : pos + size]
        pos += size + (4 if flg & 0x10 else 0)  # block checksum
        if word & 0x80000000:
            out += block
        else:
            scratch = bytearray(block_max)
            written = cramjam.lz4.decompress_block_into(block, scratch, output_len=block_max)
            out += scratch[:written]
    assert pos == len(packed) - (4 if flg & 0x04 else 0)
    assert out == data
    assert len(data) > block_max, "the test must span several blocks"


def test_lz4_frames_with_linked_blocks_are_read_too() -> None:
    # Java never writes them, but other LZ4 libraries do by default; reading is lenient.
    data = b"".join(b"linked-%d " % (i % 3000) for i in range(30_000))
    linked = bytes(cramjam.lz4.compress(data))
    assert not linked[4] & 0x20, "cramjam's default frame links its blocks"
    assert decompress(Compression.LZ4, linked, len(data)) == data


def test_lz4_declared_content_size_is_used_and_checked() -> None:
    frame = lz4_frame_with_content_size(b"hello world", 11)
    assert bytes(cramjam.lz4.decompress(frame)) == b"hello world"  # proves the helper's frame
    assert decompress(Compression.LZ4, frame, 11) == b"hello world"
    claims_a_gibibyte = lz4_frame_with_content_size(b"hello world", 1 << 30)
    with pytest.raises(DecompressionLimitError):
        decompress(Compression.LZ4, claims_a_gibibyte, MIB)


def test_zstd_declared_content_size_over_the_limit_is_refused() -> None:
    packed = compress(Compression.ZSTD, bytes(4 * MIB))  # one-shot: the frame declares 4 MiB
    with pytest.raises(DecompressionLimitError, match="at least 4194304"):
        decompress(Compression.ZSTD, packed, MIB)
    assert decompress(Compression.ZSTD, packed, 4 * MIB) == bytes(4 * MIB)


def test_zstd_concatenated_frames_grow_past_the_first_frame_size() -> None:
    first = compress(Compression.ZSTD, b"a" * 10)  # declares 10 bytes
    second = compress(Compression.ZSTD, b"b" * 200_000)
    assert decompress(Compression.ZSTD, first + second, 300_000) == b"a" * 10 + b"b" * 200_000


# --- corrupt input ---------------------------------------------------------------------------


@pytest.mark.parametrize("codec", COMPRESSED)
def test_truncated_or_garbage_payload_is_corrupt_not_a_bomb(codec: Compression) -> None:
    packed = compress(codec, bytes(range(256)) * 100)
    for bad in (packed[: len(packed) // 2], b"not compressed at all", packed[:-3], b""):
        with pytest.raises(CorruptBatchError) as caught:
            decompress(codec, bad, 10 * MIB)
        assert not isinstance(caught.value, DecompressionLimitError), bad[:20]


@pytest.mark.parametrize("codec", [Compression.GZIP, Compression.LZ4, Compression.ZSTD])
def test_trailing_garbage_after_the_stream_is_corrupt(codec: Compression) -> None:
    with pytest.raises(CorruptBatchError):
        decompress(codec, compress(codec, b"payload") + b"junk", 100)


def test_xerial_block_length_running_past_the_end_is_corrupt() -> None:
    packed = bytearray(compress(Compression.SNAPPY, b"x" * 100))
    struct.pack_into(">i", packed, 16, 10_000)
    with pytest.raises(CorruptBatchError, match="declares 10000 bytes"):
        decompress(Compression.SNAPPY, packed, 1000)


def test_snappy_block_that_decompresses_to_less_than_declared_is_corrupt() -> None:
    liar = snappy_liar(20)  # says 20 bytes, holds 10
    with pytest.raises(CorruptBatchError) as caught:
        decompress(Compression.SNAPPY, liar, 100)
    assert not isinstance(caught.value, DecompressionLimitError)


# --- bombs -----------------------------------------------------------------------------------
# Each bomb truly expands to 1 GiB (snappy: 64 MiB, its ratio tops out near 21:1) and is
# stopped at 1 MiB. test_bombs_under_an_address_space_limit proves memory stays bounded.


@pytest.fixture(scope="module")
def bombs() -> dict[Compression, bytes]:
    return {
        Compression.GZIP: gzip_bomb(1024),
        Compression.ZSTD: zstd_bomb(1024),
        Compression.LZ4: lz4_bomb(1024),
        Compression.SNAPPY: snappy_bomb(64),
    }


@pytest.mark.parametrize("codec", COMPRESSED)
def test_bomb_is_stopped_at_the_limit(codec: Compression, bombs: dict[Compression, bytes]) -> None:
    bomb = bombs[codec]
    assert len(bomb) < 5 * MIB, "a bomb must be small"
    with pytest.raises(DecompressionLimitError, match=f"more than {MIB} bytes"):
        decompress(codec, bomb, MIB)


def test_gzip_bomb_is_a_valid_stream_of_the_claimed_size() -> None:
    # Guards the bomb builder: a broken bomb would make the bomb test pass for the wrong reason.
    small = gzip_bomb(3)
    assert zlib.decompress(small, 31) == bytes(3 * MIB)
    assert decompress(Compression.GZIP, small, 3 * MIB) == bytes(3 * MIB)


def test_snappy_length_preamble_claiming_4_gib_is_refused_before_allocating() -> None:
    with pytest.raises(DecompressionLimitError, match="at least 4294967295"):
        decompress(Compression.SNAPPY, snappy_liar(2**32 - 1), MIB)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_bombs_under_an_address_space_limit() -> None:
    # An exception type proves the limit is reported, not that memory stayed small: a
    # decompressor could allocate the whole output and only then fail. So the child process
    # caps its address space a little above what it uses and decompresses every bomb there.
    bounded = _run_bomb_child("bounded")
    assert bounded.returncode == 0, bounded.stdout + bounded.stderr
    assert "bounded ok" in bounded.stdout
    # The control: the same cap stops an unbounded decompressor (so the test can fail).
    unbounded = _run_bomb_child("unbounded")
    assert unbounded.returncode != 0, unbounded.stdout
    assert "finished under the cap" not in unbounded.stdout


def _run_bomb_child(mode: str) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [sys.executable, "-m", "tests.records.bomb_child", mode],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
