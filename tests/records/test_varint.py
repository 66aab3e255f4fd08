"""Zigzag varints: known encodings, round trips against kafka-python, and strict rejection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.records import CorruptBatchError
from shoal.records.varint import (
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    encode_varint,
    read_varint,
    read_varlong,
    varint_size,
)
from tests.records.helpers import SETTINGS, zz
from tests.records.kafka_oracle import decode_varint as kafka_decode_varint

KNOWN = [
    (0, "00"),
    (-1, "01"),
    (1, "02"),
    (63, "7e"),
    (-64, "7f"),
    (64, "8001"),
    (-65, "8101"),
    (8191, "fe7f"),
    (8192, "808001"),
    (INT32_MAX, "feffffff0f"),
    (INT32_MIN, "ffffffff0f"),
    (INT64_MAX, "feffffffffffffffff01"),
    (INT64_MIN, "ffffffffffffffffff01"),
]


@pytest.mark.parametrize(("value", "hex_bytes"), KNOWN)
def test_known_encodings(value: int, hex_bytes: str) -> None:
    encoded = bytes.fromhex(hex_bytes)
    assert encode_varint(value) == encoded
    assert varint_size(value) == len(encoded)
    assert read_varlong(encoded, 0, len(encoded)) == (value, len(encoded))
    if INT32_MIN <= value <= INT32_MAX:
        assert read_varint(encoded, 0, len(encoded)) == (value, len(encoded))


@SETTINGS
@given(st.integers(min_value=INT32_MIN, max_value=INT32_MAX), st.binary(max_size=3))
def test_int32_round_trip_matches_kafka_python(value: int, prefix: bytes) -> None:
    data = prefix + encode_varint(value) + b"\xff"  # trailing byte must not be read
    assert encode_varint(value) == zz(value)
    assert read_varint(data, len(prefix), len(data)) == (value, len(data) - 1)
    assert kafka_decode_varint(data, len(prefix)) == (value, len(data) - 1)


@SETTINGS
@given(st.integers(min_value=INT64_MIN, max_value=INT64_MAX))
def test_int64_round_trip_matches_kafka_python(value: int) -> None:
    data = encode_varint(value)
    assert data == zz(value)
    assert read_varlong(data, 0, len(data)) == (value, len(data))


def test_non_minimal_encoding_is_accepted() -> None:
    # Every Kafka reader accepts padding bytes as long as the type's byte limit holds.
    assert read_varint(b"\x80\x00", 0, 2) == (0, 2)
    assert read_varint(b"\x82\x80\x80\x80\x00", 0, 5) == (1, 5)


@pytest.mark.parametrize(
    ("data", "reader", "message"),
    [
        (b"\x80\x80\x80\x80\x80\x00", read_varint, "longer than 5"),
        (b"\x80" * 10 + b"\x00", read_varlong, "longer than 10"),
        (b"\xff\xff\xff\xff\x1f", read_varint, "does not fit in 32 bits"),
        (b"\xff" * 9 + b"\x03", read_varlong, "does not fit in 64 bits"),
        (b"\x80", read_varint, "past the end"),
        (b"", read_varint, "past the end"),
        (b"\xff\xff", read_varlong, "past the end"),
    ],
)
def test_malformed_varints_are_corrupt(data: bytes, reader: object, message: str) -> None:
    assert callable(reader)
    with pytest.raises(CorruptBatchError, match=message):
        reader(data, 0, len(data))


def test_five_byte_value_is_fine_as_varlong_but_not_varint() -> None:
    data = b"\xff\xff\xff\xff\x1f"
    assert read_varlong(data, 0, len(data)) == (-(2**32), 5)


def test_end_bounds_the_read_even_when_more_bytes_follow() -> None:
    # A varint must not run into the next field or record: ``end`` is a hard wall.
    data = b"\x80\x01"
    with pytest.raises(CorruptBatchError, match="past the end"):
        read_varint(data, 0, 1)
    with pytest.raises(CorruptBatchError, match="past the end"):
        read_varlong(b"\x96\x01\x00", 0, 1)


def test_encoding_beyond_int64_is_refused() -> None:
    with pytest.raises(ValueError, match="64-bit"):
        encode_varint(INT64_MAX + 1)
