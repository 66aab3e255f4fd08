"""Building batches and reading them back: round trips, header fields, control batches."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.records import (
    HEADER_SIZE,
    BatchHeader,
    Compression,
    ControlType,
    CorruptBatchError,
    DecodedRecord,
    EndTxnMarker,
    SimpleRecord,
    TimestampType,
    build_batch,
    build_control_batch,
    control_type,
    crc_matches,
    decode_batch,
    iter_records,
    read_end_txn_marker,
    read_header,
    set_max_timestamp,
    validate_batch,
    validate_records,
)
from tests.records.helpers import FEW, SETTINGS, batch_around, raw_record, simple_records, zz

LIMIT = 10 * 1024 * 1024


@SETTINGS
@given(
    records=simple_records(),
    codec=st.sampled_from(list(Compression)),
    base_offset=st.integers(min_value=0, max_value=2**62),
)
def test_build_then_decode_round_trips(
    records: list[SimpleRecord], codec: Compression, base_offset: int
) -> None:
    batch = build_batch(records, base_offset=base_offset, compression=codec)
    decoded = decode_batch(batch, max_uncompressed_bytes=LIMIT)
    timestamps = [r.timestamp or 0 for r in records]  # the strategy gives every record one
    assert decoded.header.compression == codec
    assert decoded.records == [
        DecodedRecord(base_offset + i, timestamps[i], r.key, r.value, list(r.headers))
        for i, r in enumerate(records)
    ]
    relative = list(iter_records(batch, max_uncompressed_bytes=LIMIT))
    assert [r.offset_delta for r in relative] == list(range(len(records)))
    assert [r.timestamp_delta for r in relative] == [t - timestamps[0] for t in timestamps]
    # Whatever the builder writes, the broker's own checks accept.
    assert validate_batch(batch, max_batch_bytes=len(batch)) == decoded.header
    summary = validate_records(batch, max_uncompressed_bytes=LIMIT)
    assert summary.record_count == len(records)
    assert summary.max_timestamp == max(timestamps) == decoded.header.max_timestamp
    assert summary.offset_delta_of_max_timestamp == timestamps.index(max(timestamps))


@pytest.mark.parametrize("codec", list(Compression))
def test_empty_and_null_keys_values_and_headers_are_distinct(codec: Compression) -> None:
    records = [
        SimpleRecord(key=None, value=None, timestamp=5),
        SimpleRecord(key=b"", value=b"", timestamp=5),
        SimpleRecord(key=b"k", value=None, headers=[("", None), ("h", b""), ("h", b"x")]),
    ]
    decoded = decode_batch(build_batch(records, compression=codec), max_uncompressed_bytes=LIMIT)
    assert [(r.key, r.value, r.headers) for r in decoded.records] == [
        (None, None, []),
        (b"", b"", []),
        (b"k", None, [("", None), ("h", b""), ("h", b"x")]),
    ]


def test_header_fields_are_written_as_given() -> None:
    records = [
        SimpleRecord(b"a", b"1", timestamp=2_000),
        SimpleRecord(b"b", b"2", timestamp=1_500),  # earlier than the first: negative delta
        SimpleRecord(b"c", b"3", timestamp=2_500),
    ]
    batch = build_batch(
        records,
        base_offset=1_000,
        compression=Compression.ZSTD,
        producer_id=42,
        producer_epoch=7,
        base_sequence=100,
        transactional=True,
        partition_leader_epoch=3,
    )
    header = read_header(batch)
    assert header == BatchHeader(
        base_offset=1_000,
        batch_length=len(batch) - 12,
        partition_leader_epoch=3,
        magic=2,
        crc=header.crc,
        attributes=0x10 | 4,
        last_offset_delta=2,
        base_timestamp=2_000,
        max_timestamp=2_500,
        producer_id=42,
        producer_epoch=7,
        base_sequence=100,
        record_count=3,
    )
    assert crc_matches(batch)
    assert header.is_transactional and not header.is_control
    assert (header.last_offset, header.next_offset, header.last_sequence) == (1_002, 1_003, 102)
    decoded = decode_batch(batch, max_uncompressed_bytes=LIMIT)
    assert [(r.offset, r.timestamp) for r in decoded.records] == [
        (1_000, 2_000),
        (1_001, 1_500),
        (1_002, 2_500),
    ]


def test_default_header_fields_describe_no_producer() -> None:
    header = read_header(build_batch([SimpleRecord(value=b"v", timestamp=9)]))
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (-1, -1, -1)
    assert (header.partition_leader_epoch, header.attributes) == (-1, 0)
    assert (header.base_timestamp, header.max_timestamp) == (9, 9)


def test_timestamps_default_to_the_base_timestamp() -> None:
    records = [SimpleRecord(value=b"a"), SimpleRecord(value=b"b", timestamp=50)]
    decoded = decode_batch(build_batch(records, base_timestamp=40), max_uncompressed_bytes=LIMIT)
    assert [r.timestamp for r in decoded.records] == [40, 50]
    assert decoded.header.max_timestamp == 50
    no_time = decode_batch(build_batch([SimpleRecord(value=b"a")]), max_uncompressed_bytes=LIMIT)
    assert no_time.records[0].timestamp == -1


def test_log_append_time_readers_see_max_timestamp_on_every_record() -> None:
    records = [SimpleRecord(value=b"a", timestamp=10), SimpleRecord(value=b"b", timestamp=20)]
    batch = bytearray(build_batch(records))
    set_max_timestamp(batch, 0, TimestampType.LOG_APPEND_TIME, 99)
    assert crc_matches(batch)
    decoded = decode_batch(batch, max_uncompressed_bytes=LIMIT)
    assert decoded.header.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert [r.timestamp for r in decoded.records] == [99, 99]
    set_max_timestamp(batch, 0, TimestampType.CREATE_TIME, 20)
    assert bytes(batch) == build_batch(records)


def test_decoded_records_build_into_the_same_batch() -> None:
    records = [SimpleRecord(b"k", b"v", [("h", b"1")], 7), SimpleRecord(None, b"w", [], 8)]
    batch = build_batch(records, base_offset=5)
    decoded = decode_batch(batch, max_uncompressed_bytes=LIMIT)
    assert build_batch(decoded.records, base_offset=5) == batch


def test_header_keys_that_are_not_utf8_survive_a_round_trip() -> None:
    # Java does not reject such keys; compaction must rewrite them byte for byte.
    section = raw_record(offset_delta=0, headers=[(b"\xff\xfe-key", b"v")])
    batch = batch_around(section, record_count=1)
    record = decode_batch(batch, max_uncompressed_bytes=LIMIT).records[0]
    assert record.headers[0][0].encode("utf-8", "surrogateescape") == b"\xff\xfe-key"
    rebuilt = build_batch([record], base_timestamp=1_000)
    assert rebuilt[HEADER_SIZE:] == batch[HEADER_SIZE:]


def test_builder_refuses_what_no_batch_can_hold() -> None:
    with pytest.raises(ValueError, match="at least one record"):
        build_batch([])
    with pytest.raises(ValueError, match="out of range"):
        build_batch([SimpleRecord(value=b"v")], producer_epoch=2**15)
    with pytest.raises(ValueError, match="64-bit"):
        build_batch([SimpleRecord(timestamp=-(2**63)), SimpleRecord(timestamp=2**63 - 1)])
    with pytest.raises(UnicodeEncodeError):
        build_batch([SimpleRecord(headers=[("\ud800", None)])])


def test_many_records_build_and_read() -> None:
    records = [SimpleRecord(b"key-%d" % i, b"x" * (i % 300), timestamp=i) for i in range(5_000)]
    for codec in Compression:
        decoded = decode_batch(
            build_batch(records, compression=codec), max_uncompressed_bytes=LIMIT
        )
        assert [(r.key, r.value) for r in decoded.records] == [(r.key, r.value) for r in records]
        assert decoded.records[-1].offset == 4_999


# --- control batches -------------------------------------------------------------------------


@pytest.mark.parametrize("commit", [True, False])
def test_control_batch_layout(commit: bool) -> None:
    batch = build_control_batch(
        77, 3, commit=commit, coordinator_epoch=12, timestamp=5_000, base_offset=40
    )
    decoded = decode_batch(batch, max_uncompressed_bytes=LIMIT)
    header = decoded.header
    assert header.is_control and header.is_transactional
    assert header.compression == Compression.NONE
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (77, 3, -1)
    assert (header.record_count, header.last_offset_delta) == (1, 0)
    assert (header.base_timestamp, header.max_timestamp, header.base_offset) == (5_000, 5_000, 40)
    (record,) = decoded.records
    assert record.key == struct.pack(">hh", 0, 1 if commit else 0)
    assert record.value == struct.pack(">hi", 0, 12)
    assert record.headers == [] and record.offset == 40 and record.timestamp == 5_000
    assert control_type(record) == (ControlType.COMMIT if commit else ControlType.ABORT)
    assert read_end_txn_marker(record) == EndTxnMarker(commit, 12)


def test_control_record_readers_accept_newer_versions_and_reject_garbage() -> None:
    newer = DecodedRecord(
        0, 0, struct.pack(">hh", 1, 1) + b"x", struct.pack(">hi", 1, 9) + b"y", []
    )
    assert read_end_txn_marker(newer) == EndTxnMarker(True, 9)
    for key, value, message in [
        (b"\x00", struct.pack(">hi", 0, 1), "at least 4 bytes"),
        (None, struct.pack(">hi", 0, 1), "at least 4 bytes"),
        (struct.pack(">hh", -1, 0), struct.pack(">hi", 0, 1), "negative version"),
        (struct.pack(">hh", 0, 2), struct.pack(">hi", 0, 1), "not a transaction marker"),
        (struct.pack(">hh", 0, 0), b"\x00\x00", "at least 6 bytes"),
    ]:
        with pytest.raises(CorruptBatchError, match=message):
            read_end_txn_marker(DecodedRecord(0, 0, key, value, []))


def test_control_batch_needs_a_producer() -> None:
    with pytest.raises(ValueError, match="producer id"):
        build_control_batch(-1, 0, commit=True, coordinator_epoch=0, timestamp=0)


# --- malformed records -----------------------------------------------------------------------


def _records_of(section: bytes, count: int) -> list[object]:
    return list(
        iter_records(batch_around(section, record_count=count), max_uncompressed_bytes=LIMIT)
    )


def _rec(body: bytes) -> bytes:
    """A record with an honest length prefix around ``body``."""
    return zz(len(body)) + body


# Bodies start attributes, timestampDelta 0, offsetDelta 0; "\x00" is a length of 0.
_START = b"\x00\x00\x00"


@pytest.mark.parametrize(
    ("section", "count", "message"),
    [
        (raw_record(offset_delta=0, length_adjust=1), 1, "declares 9 bytes; 8 remain"),
        (raw_record(offset_delta=0, length_adjust=-1), 1, "past the end"),
        (raw_record(offset_delta=0) + b"\x00", 1, "1 bytes left over"),
        (raw_record(offset_delta=0), 2, "counts 2 records but its data ends after 1"),
        (zz(-1), 1, "declares -1 bytes"),
        (_rec(_START + zz(-3) + bytes(7)), 1, "key length of -3"),
        (_rec(_START + zz(10) + bytes(7)), 1, "key of 10 bytes; 7 remain"),
        (_rec(_START + zz(0) + zz(-2) + bytes(6)), 1, "value length of -2"),
        (_rec(_START + zz(0) + zz(3) + b"ab"), 1, "value of 3 bytes; 2 remain"),
        (_rec(_START + zz(0) + zz(0) + zz(-1) + bytes(5)), 1, "-1 headers"),
        (_rec(_START + zz(0) + zz(0) + zz(4) + bytes(5)), 1, "4 headers in 5 bytes"),
        (_rec(_START + zz(0) + zz(0) + zz(1) + zz(-1) + zz(0)), 1, "null header key"),
        (_rec(_START + zz(0) + zz(0) + zz(1) + zz(0) + zz(-3)), 1, "header value length of -3"),
        (_rec(_START + zz(0) + zz(0) + zz(0) + bytes(2)), 1, "fields take 6"),
        (_rec(b"\x00" + b"\x80" * 10 + bytes(6)), 1, "longer than 10"),
        (_rec(b"\x00\x00" + b"\x80" * 5 + bytes(5)), 1, "longer than 5"),
        (_rec(b"\x00\x00" + b"\xff\xff\xff\xff\x1f" + bytes(5)), 1, "fit in 32 bits"),
        (b"\x80\x80\x80\x80\x80\x01", 1, "longer than 5"),
    ],
)
def test_malformed_records_are_corrupt(section: bytes, count: int, message: str) -> None:
    with pytest.raises(CorruptBatchError, match=message):
        _records_of(section, count)


def test_batch_bytes_must_hold_exactly_one_batch() -> None:
    batch = build_batch([SimpleRecord(value=b"v")])
    with pytest.raises(CorruptBatchError, match="declares"):
        list(iter_records(batch + b"\x00", max_uncompressed_bytes=LIMIT))
    with pytest.raises(CorruptBatchError, match="needs 61 bytes"):
        list(iter_records(batch[:60], max_uncompressed_bytes=LIMIT))
    wrong_magic = bytearray(batch)
    wrong_magic[16] = 1
    with pytest.raises(CorruptBatchError, match="magic 1"):
        list(iter_records(wrong_magic, max_uncompressed_bytes=LIMIT))


def test_negative_record_count_is_corrupt() -> None:
    batch = batch_around(b"", record_count=-1, last_offset_delta=0)
    with pytest.raises(CorruptBatchError, match="negative record count"):
        list(iter_records(batch, max_uncompressed_bytes=LIMIT))


@FEW
@given(noise=st.binary(min_size=1, max_size=200), count=st.integers(min_value=0, max_value=50))
def test_arbitrary_record_bytes_decode_or_raise_corrupt(noise: bytes, count: int) -> None:
    # Whatever a client sends inside a batch with a good CRC, the reader answers with records
    # or CorruptBatchError: never IndexError, struct.error or a hang.
    batch = batch_around(noise, record_count=count)
    try:
        records = list(iter_records(batch, max_uncompressed_bytes=LIMIT))
    except CorruptBatchError:
        return
    assert len(records) == count
