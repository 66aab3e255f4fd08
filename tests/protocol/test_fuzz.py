"""Random and mutated bytes through the frame decoder and request parser.

Whatever arrives, the only exceptions that may come out are ProtocolError subclasses: anything
else (IndexError, struct.error, a ValueError from the native reader...) would escape the
server's per-connection error handling.
"""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.protocol import (
    SUPPORTED_APIS,
    FrameDecoder,
    ProtocolError,
    RequestHeader,
    decode_request,
    encode_frame_bytes,
    encode_request,
)
from tests.protocol.kio_values import empty_instance, message_class, served_versions

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def valid_request_frames() -> list[bytes]:
    """One framed request with empty fields per API at its lowest and highest served version."""
    frames = []
    for key, version in served_versions():
        message = empty_instance(message_class(key, version, "request"))
        frames.append(encode_request(RequestHeader(key, version, 7, "fuzz"), message))
    return frames


VALID_FRAMES = valid_request_frames()


def feed_and_decode(chunks: list[bytes], max_frame_bytes: int = 1 << 16) -> list[Any]:
    """What a server does with a stream: frame it, decode each frame, stop on a fatal error."""
    decoder = FrameDecoder(max_frame_bytes=max_frame_bytes)
    outcomes: list[Any] = []
    try:
        for chunk in chunks:
            decoder.feed(chunk)
            for frame in decoder.frames():
                try:
                    outcomes.append(decode_request(frame))
                except ProtocolError as exc:
                    outcomes.append(exc)
                    if exc.closes_connection:
                        return outcomes
    except ProtocolError as exc:
        outcomes.append(exc)
    return outcomes


@FUZZ
@given(data=st.binary(max_size=2048), cut=st.integers(1, 64))
def test_random_streams(data: bytes, cut: int) -> None:
    feed_and_decode([data[i : i + cut] for i in range(0, len(data), cut)])


@st.composite
def served_prefix_with_random_body(draw: Any) -> bytes:
    key, entry = draw(st.sampled_from(sorted(SUPPORTED_APIS.items())))
    version = draw(st.integers(entry.min_version, entry.max_version))
    header = struct.pack(">hhi", key, version, draw(st.integers(-(2**31), 2**31 - 1)))
    client = draw(st.sampled_from([b"\xff\xff", b"\x00\x00", b"\x00\x03abc"]))
    tags = b"\x00" if entry.is_flexible(version) else b""
    return header + client + tags + draw(st.binary(max_size=256))


@FUZZ
@given(frames=st.lists(served_prefix_with_random_body(), min_size=1, max_size=4))
def test_served_headers_with_random_bodies(frames: list[bytes]) -> None:
    stream = b"".join(encode_frame_bytes(frame) for frame in frames)
    for outcome in feed_and_decode([stream]):
        assert not isinstance(outcome, Exception) or isinstance(outcome, ProtocolError)


@st.composite
def mutated_frame(draw: Any) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID_FRAMES))[4:])
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "overwrite"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if operation == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif operation == "truncate":
            del data[position:]
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif operation == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        else:
            # Lengths and counts are where decoders break: write extreme values over them.
            value = draw(st.sampled_from([b"\xff", b"\x80", b"\x7f\xff\xff\xff", b"\xff" * 6]))
            data[position : position + len(value)] = value
    return bytes(data)


@FUZZ
@given(frame=mutated_frame())
def test_mutated_valid_requests(frame: bytes) -> None:
    try:
        decode_request(frame)
    except ProtocolError:
        pass


@FUZZ
@given(frames=st.lists(mutated_frame(), min_size=1, max_size=3), cut=st.integers(1, 50))
def test_mutated_requests_in_a_stream(frames: list[bytes], cut: int) -> None:
    stream = b"".join(encode_frame_bytes(frame) for frame in frames)
    feed_and_decode([stream[i : i + cut] for i in range(0, len(stream), cut)])


def test_unmutated_frames_decode() -> None:
    # The mutation tests start from these; they must be valid for the fuzzing to mean anything.
    outcomes = feed_and_decode(VALID_FRAMES)
    assert len(outcomes) == len(VALID_FRAMES)
    assert not any(isinstance(outcome, Exception) for outcome in outcomes)
