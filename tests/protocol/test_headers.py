"""Request and response headers, built byte by byte from the layouts in the Kafka spec."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.protocol import DecodeError, InvalidRequestError, RequestHeader
from shoal.protocol.headers import (
    encode_request_header,
    encode_response_header,
    parse_request_header,
    parse_response_header,
    read_uvarint,
    skip_tagged_fields,
)

PREFIX = struct.pack(">hhi", 3, 12, 0x01020304)  # Metadata v12, correlation id 16909060


def client_id(value: bytes | None) -> bytes:
    return struct.pack(">h", -1) if value is None else struct.pack(">h", len(value)) + value


def test_v1_header_then_body() -> None:
    frame = PREFIX + client_id(b"rdkafka") + b"BODY"
    header, offset = parse_request_header(frame, flexible=False)
    assert header == RequestHeader(3, 12, 0x01020304, "rdkafka")
    assert frame[offset:] == b"BODY"


def test_v1_does_not_read_tagged_fields() -> None:
    # In a non-flexible header a 0x00 after the client id belongs to the body.
    frame = PREFIX + client_id(b"c") + b"\x00BODY"
    _header, offset = parse_request_header(frame, flexible=False)
    assert frame[offset:] == b"\x00BODY"


def test_v2_client_id_is_not_compact_and_tags_are_skipped() -> None:
    tags = b"\x02" + b"\x00\x03abc" + b"\x05\x00"  # two tagged fields: (0, "abc"), (5, "")
    frame = PREFIX + client_id(b"franz-go") + tags + b"BODY"
    header, offset = parse_request_header(frame, flexible=True)
    assert header.client_id == "franz-go"
    assert frame[offset:] == b"BODY"


def test_null_and_empty_client_ids() -> None:
    null, _ = parse_request_header(PREFIX + client_id(None) + b"\x00", flexible=True)
    empty, _ = parse_request_header(PREFIX + client_id(b"") + b"\x00", flexible=True)
    assert null.client_id is None
    assert empty.client_id == ""


def test_undecodable_client_id_is_replaced_not_refused() -> None:
    header, _ = parse_request_header(PREFIX + client_id(b"a\xffb"), flexible=False)
    assert header.client_id == "a\ufffdb"


@pytest.mark.parametrize(
    ("rest", "flexible", "problem"),
    [
        (b"", False, "client id length runs past the end"),
        (b"\x00", False, "client id length runs past the end"),
        (struct.pack(">h", 5) + b"abc", False, "client id of 5 bytes runs past the end"),
        (struct.pack(">h", -2), False, "negative length -2"),
        (client_id(b"c"), True, "runs past the end"),
        (client_id(b"c") + b"\x01\x00\x05ab", True, "tagged field of 5 bytes"),
        (client_id(b"c") + b"\xff\xff\xff\xff\xff\x01", True, "longer than 5 bytes"),
    ],
)
def test_malformed_headers_raise_with_the_correlation_id(
    rest: bytes, flexible: bool, problem: str
) -> None:
    with pytest.raises(InvalidRequestError, match=problem) as caught:
        parse_request_header(PREFIX + rest, flexible=flexible)
    assert caught.value.correlation_id == 0x01020304
    assert (caught.value.api_key, caught.value.api_version) == (3, 12)
    assert caught.value.closes_connection


def test_short_prefix() -> None:
    with pytest.raises(InvalidRequestError, match="shorter than the 8-byte header prefix"):
        parse_request_header(PREFIX[:7], flexible=False)


@settings(max_examples=200, deadline=None)
@given(
    api_key=st.integers(-(2**15), 2**15 - 1),
    api_version=st.integers(-(2**15), 2**15 - 1),
    correlation_id=st.integers(-(2**31), 2**31 - 1),
    client=st.none() | st.text(max_size=50),
    flexible=st.booleans(),
    body=st.binary(max_size=20),
)
def test_request_header_round_trip(
    api_key: int,
    api_version: int,
    correlation_id: int,
    client: str | None,
    flexible: bool,
    body: bytes,
) -> None:
    header = RequestHeader(api_key, api_version, correlation_id, client)
    encoded = encode_request_header(header, flexible=flexible)
    parsed, offset = parse_request_header(encoded + body, flexible=flexible)
    assert parsed == header
    assert offset == len(encoded)


def test_response_headers() -> None:
    assert encode_response_header(7, flexible=False) == b"\x00\x00\x00\x07"
    assert encode_response_header(7, flexible=True) == b"\x00\x00\x00\x07\x00"
    assert parse_response_header(b"\x00\x00\x00\x07\x00BODY", flexible=True) == (7, 5)
    assert parse_response_header(b"\x00\x00\x00\x07\x00BODY", flexible=False) == (7, 4)
    with pytest.raises(DecodeError):
        parse_response_header(b"\x00\x00", flexible=False)


@pytest.mark.parametrize(
    ("encoded", "value"),
    [(b"\x00", 0), (b"\x7f", 127), (b"\x80\x01", 128), (b"\xff\xff\xff\xff\x0f", 2**32 - 1)],
)
def test_uvarint(encoded: bytes, value: int) -> None:
    assert read_uvarint(b"\x99" + encoded + b"\x99", 1) == (value, 1 + len(encoded))


def test_tagged_fields_bounds() -> None:
    assert skip_tagged_fields(b"\x00", 0) == 1
    with pytest.raises(DecodeError):
        skip_tagged_fields(b"\x01\x00", 0)
    with pytest.raises(DecodeError, match="int32 range"):
        skip_tagged_fields(b"\xff\xff\xff\xff\x0f", 0)
