"""FrameDecoder and encode_frame: reassembly under any chunking, size checks, failure state."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    EncodeError,
    FrameDecoder,
    FrameError,
    ProtocolError,
    encode_frame,
    encode_frame_bytes,
)


def frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (taken modulo its length, in order)."""
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=200, deadline=None)
@given(
    bodies=st.lists(st.binary(max_size=300), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=40),
    buffer_type=st.sampled_from([bytes, bytearray, memoryview]),
)
def test_any_chunking_yields_the_frames_in_order(
    bodies: list[bytes], cuts: list[int], buffer_type: type
) -> None:
    stream = b"".join(frame(body) for body in bodies)
    decoder = FrameDecoder(max_frame_bytes=300)
    received = []
    for chunk in split(stream, cuts):
        decoder.feed(buffer_type(chunk))
        received.extend(decoder.frames())
    assert received == bodies
    assert all(type(body) is bytes for body in received)
    assert decoder.buffered_bytes == 0
    assert decoder.at_frame_boundary


@settings(max_examples=50, deadline=None)
@given(body=st.binary(min_size=1, max_size=200))
def test_one_byte_at_a_time(body: bytes) -> None:
    data = frame(body)
    decoder = FrameDecoder()
    for index in range(len(data) - 1):
        decoder.feed(data[index : index + 1])
        assert decoder.next_frame() is None
        assert not decoder.at_frame_boundary
        assert decoder.buffered_bytes == index + 1
    decoder.feed(data[-1:])
    assert decoder.next_frame() == body
    assert decoder.next_frame() is None


def test_frames_stay_in_the_buffer_until_pulled() -> None:
    decoder = FrameDecoder()
    decoder.feed(frame(b"one") + frame(b"two") + frame(b"thr"))
    assert decoder.buffered_bytes == 3 * 7
    assert decoder.next_frame() == b"one"
    assert decoder.buffered_bytes == 2 * 7
    assert list(decoder.frames()) == [b"two", b"thr"]


def test_empty_body_is_a_frame() -> None:
    decoder = FrameDecoder()
    decoder.feed(frame(b"") + frame(b"x"))
    assert list(decoder.frames()) == [b"", b"x"]


def test_size_equal_to_the_limit_is_accepted() -> None:
    decoder = FrameDecoder(max_frame_bytes=5)
    decoder.feed(frame(b"12345"))
    assert decoder.next_frame() == b"12345"


def test_oversize_prefix_is_refused_before_the_body_arrives() -> None:
    decoder = FrameDecoder(max_frame_bytes=1024)
    with pytest.raises(FrameError, match=r"frame of 1025 bytes exceeds max_frame_bytes=1024"):
        decoder.feed(struct.pack(">i", 1025))
    assert decoder.failed
    assert decoder.buffered_bytes == 4


def test_negative_prefix_is_refused() -> None:
    decoder = FrameDecoder()
    with pytest.raises(FrameError, match=r"negative \(-2\)"):
        decoder.feed(struct.pack(">i", -2) + b"xx")


def test_prefix_split_across_chunks_is_checked_when_complete() -> None:
    decoder = FrameDecoder(max_frame_bytes=100)
    decoder.feed(b"\x00\x00")
    with pytest.raises(FrameError):
        decoder.feed(b"\x01\x00")


def test_failed_decoder_returns_earlier_frames_then_raises_again() -> None:
    decoder = FrameDecoder(max_frame_bytes=10)
    with pytest.raises(FrameError) as first:
        decoder.feed(frame(b"ok") + struct.pack(">i", 11) + b"rest")
    assert decoder.next_frame() == b"ok"
    with pytest.raises(FrameError) as again:
        decoder.next_frame()
    assert again.value is first.value
    with pytest.raises(FrameError):
        decoder.feed(b"more")
    assert first.value.closes_connection
    assert isinstance(first.value, ProtocolError)


def test_tls_and_http_on_the_kafka_port_are_named() -> None:
    tls = FrameDecoder()
    with pytest.raises(FrameError, match="TLS handshake"):
        tls.feed(bytes([0x16, 0x03, 0x01, 0x02, 0x00]))
    http = FrameDecoder()
    with pytest.raises(FrameError, match="HTTP request"):
        http.feed(b"GET /metrics HTTP/1.1\r\n")


def test_limit_can_be_raised_for_later_frames() -> None:
    decoder = FrameDecoder(max_frame_bytes=4)
    decoder.feed(frame(b"abcd"))
    decoder.max_frame_bytes = 8
    decoder.feed(frame(b"abcdefgh"))
    assert list(decoder.frames()) == [b"abcd", b"abcdefgh"]


@pytest.mark.parametrize("limit", [0, -1, 2**31])
def test_limit_must_be_positive_and_fit_int32(limit: int) -> None:
    with pytest.raises(ValueError, match="max_frame_bytes"):
        FrameDecoder(max_frame_bytes=limit)


def test_default_limit_is_kafkas_socket_request_max_bytes() -> None:
    assert DEFAULT_MAX_FRAME_BYTES == 104_857_600
    assert FrameDecoder().max_frame_bytes == DEFAULT_MAX_FRAME_BYTES


@settings(max_examples=100, deadline=None)
@given(parts=st.lists(st.binary(max_size=100), max_size=6))
def test_encode_frame_prefixes_the_total_size_and_keeps_parts(parts: list[bytes]) -> None:
    views = [memoryview(part) for part in parts]
    encoded = encode_frame(views)
    assert encoded[1:] == views
    assert all(a is b for a, b in zip(encoded[1:], views, strict=True))
    joined = b"".join(encoded)
    assert joined == frame(b"".join(parts))
    assert encode_frame_bytes(b"".join(parts)) == joined
    decoder = FrameDecoder()
    decoder.feed(joined)
    assert decoder.next_frame() == b"".join(parts)


def test_encode_frame_counts_bytes_not_items() -> None:
    wide = memoryview(struct.pack(">3i", 1, 2, 3)).cast("i")
    assert len(wide) == 3
    assert encode_frame([wide])[0] == struct.pack(">i", 12)


def test_encode_frame_refuses_bodies_over_int32() -> None:
    mebibyte = memoryview(bytes(2**20))
    with pytest.raises(EncodeError, match="int32"):
        encode_frame([mebibyte] * 2048)
