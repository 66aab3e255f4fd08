"""Produce-path validation: every rejection with its error class and code, and framing."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.records import (
    BatchTooLargeError,
    Compression,
    CorruptBatchError,
    DecompressionLimitError,
    InvalidRecordError,
    RecordsError,
    SimpleRecord,
    UnsupportedCompressionError,
    build_batch,
    build_control_batch,
    read_header,
    refresh_crc,
    split_batches,
    validate_batch,
    validate_batches,
    validate_produce_records,
    validate_records,
)
from tests.records.helpers import FEW, MIB, batch_around, raw_record, zstd_bomb

MAX = 1_048_588  # Kafka's message.max.bytes default


def small_batch(**kwargs: Any) -> bytes:
    records = [SimpleRecord(b"k1", b"v1", [("h", b"x")], 1_000), SimpleRecord(b"k2", None)]
    return build_batch(records, **kwargs)


def edited(batch: bytes, fmt: str, offset: int, value: int, *, fix_crc: bool = True) -> bytes:
    """``batch`` with one header field overwritten (and the CRC made right again)."""
    out = bytearray(batch)
    struct.pack_into(fmt, out, offset, value)
    if fix_crc:
        refresh_crc(out)
    return bytes(out)


def test_error_classes_carry_kafka_error_codes() -> None:
    assert (CorruptBatchError.kafka_error_code, CorruptBatchError.kafka_error_name) == (
        2,
        "CORRUPT_MESSAGE",
    )
    assert InvalidRecordError.kafka_error_code == 87
    assert BatchTooLargeError.kafka_error_code == 10
    assert UnsupportedCompressionError.kafka_error_code == 76
    assert issubclass(DecompressionLimitError, CorruptBatchError)


@pytest.mark.parametrize("codec", list(Compression))
def test_valid_batches_pass_and_return_their_header(codec: Compression) -> None:
    batch = small_batch(compression=codec, producer_id=3, producer_epoch=0, base_sequence=10)
    header = validate_batch(batch, max_batch_bytes=MAX)
    assert header == read_header(batch)
    assert validate_batch(memoryview(bytearray(batch)), max_batch_bytes=len(batch)) == header
    assert validate_produce_records(batch, max_batch_bytes=MAX) == header


def test_transactional_batch_with_a_producer_passes() -> None:
    batch = small_batch(producer_id=3, producer_epoch=1, base_sequence=0, transactional=True)
    assert validate_batch(batch, max_batch_bytes=MAX).is_transactional


# --- size and framing ------------------------------------------------------------------------


def test_fewer_than_61_bytes_is_corrupt() -> None:
    batch = small_batch()
    for size in (0, 5, 16, 17, 60):
        with pytest.raises(CorruptBatchError, match=f"is {size} bytes; a v2 batch has at least 61"):
            validate_batch(batch[:size], max_batch_bytes=MAX)


@pytest.mark.parametrize("batch_length", [-1, -(2**31), 0, 48, 2**31 - 1])
def test_batch_length_out_of_bounds_is_corrupt(batch_length: int) -> None:
    batch = edited(small_batch(), ">i", 8, batch_length)
    with pytest.raises(CorruptBatchError, match=f"batchLength {batch_length}"):
        validate_batch(batch, max_batch_bytes=MAX)


def test_batch_length_disagreeing_with_the_bytes_is_corrupt() -> None:
    batch = small_batch()
    with pytest.raises(CorruptBatchError, match="were given"):
        validate_batch(batch[:-1], max_batch_bytes=MAX)
    with pytest.raises(CorruptBatchError, match="were given"):
        validate_batch(batch + b"\x00", max_batch_bytes=MAX)


@pytest.mark.parametrize("magic", [3, -1])
def test_unknown_magic_is_corrupt_and_says_only_v2_is_supported(magic: int) -> None:
    batch = edited(small_batch(), ">b", 16, magic, fix_crc=False)
    with pytest.raises(CorruptBatchError, match=f"magic {magic}; only magic 2"):
        validate_batch(batch, max_batch_bytes=MAX)


@pytest.mark.parametrize("magic", [0, 1])
def test_old_magic_is_an_invalid_record_as_in_kafka(magic: int) -> None:
    batch = edited(small_batch(), ">b", 16, magic, fix_crc=False)
    with pytest.raises(InvalidRecordError, match=f"magic {magic}; only magic 2"):
        validate_batch(batch, max_batch_bytes=MAX)


def test_old_message_set_gets_the_magic_error_not_a_size_error() -> None:
    # A magic 0 message is 26+ bytes: the magic must be checked before the 61-byte minimum.
    legacy = struct.pack(">qiIbb", 0, 14, 0, 0, 0) + b"\xff\xff\xff\xff\x00\x00\x00\x00"
    with pytest.raises(InvalidRecordError, match="magic 0"):
        validate_batch(legacy, max_batch_bytes=MAX)


def test_larger_than_the_limit_is_too_large_and_names_the_config() -> None:
    batch = small_batch()
    assert validate_batch(batch, max_batch_bytes=len(batch))
    message = (
        f"{len(batch)} bytes, larger than the limit of {len(batch) - 1} bytes.*max.message.bytes"
    )
    with pytest.raises(BatchTooLargeError, match=message):
        validate_batch(batch, max_batch_bytes=len(batch) - 1)


# --- CRC -------------------------------------------------------------------------------------


def test_crc_mismatch_reports_stored_and_computed() -> None:
    batch = bytearray(small_batch())
    batch[-1] ^= 0x01
    stored = struct.unpack_from(">I", batch, 17)[0]
    with pytest.raises(CorruptBatchError, match=f"stored {stored:#010x}, computed 0x"):
        validate_batch(batch, max_batch_bytes=MAX)


@pytest.mark.parametrize("flip", [0x01, 0x80])
def test_a_flipped_bit_anywhere_is_caught_or_is_outside_the_crc(flip: int) -> None:
    batch = small_batch(base_offset=5, partition_leader_epoch=2)
    original = read_header(batch)
    for position in range(len(batch)):
        damaged = bytearray(batch)
        damaged[position] ^= flip
        if position < 8 or 12 <= position < 16:
            # baseOffset and partitionLeaderEpoch are outside the CRC by design (the broker
            # rewrites them); the batch stays valid and only that field changes.
            header = validate_batch(damaged, max_batch_bytes=MAX)
            field = "base_offset" if position < 8 else "partition_leader_epoch"
            assert getattr(header, field) != getattr(original, field)
            assert header.crc == original.crc
        elif position < 12:
            with pytest.raises(CorruptBatchError, match="batchLength"):
                validate_batch(damaged, max_batch_bytes=MAX)
        elif position == 16:
            with pytest.raises(RecordsError, match="magic"):
                validate_batch(damaged, max_batch_bytes=MAX)
        else:
            with pytest.raises(CorruptBatchError, match="CRC mismatch"):
                validate_batch(damaged, max_batch_bytes=MAX)


# --- attributes and counts -------------------------------------------------------------------


@pytest.mark.parametrize("codec", [5, 6, 7])
def test_unknown_codec_bits_are_unsupported(codec: int) -> None:
    batch = edited(small_batch(), ">h", 21, codec)
    with pytest.raises(UnsupportedCompressionError, match=f"id {codec}"):
        validate_batch(batch, max_batch_bytes=MAX)


def test_control_batch_from_a_client_is_invalid() -> None:
    marker = build_control_batch(1, 0, commit=True, coordinator_epoch=0, timestamp=0)
    with pytest.raises(InvalidRecordError, match="control batches"):
        validate_batch(marker, max_batch_bytes=MAX)
    sneaky = edited(small_batch(), ">h", 21, 0x20)
    with pytest.raises(InvalidRecordError, match="control batches"):
        validate_batch(sneaky, max_batch_bytes=MAX)


@pytest.mark.parametrize(
    ("record_count", "last_offset_delta", "message"),
    [
        (0, -1, "record count 0"),
        (-5, -6, "record count -5"),
        (3, 1, "counts 3 records but its lastOffsetDelta is 1"),
        (2, 2, "counts 2 records but its lastOffsetDelta is 2"),
    ],
)
def test_record_count_must_be_positive_and_match_last_offset_delta(
    record_count: int, last_offset_delta: int, message: str
) -> None:
    batch = edited(edited(small_batch(), ">i", 57, record_count), ">i", 23, last_offset_delta)
    with pytest.raises(InvalidRecordError, match=message):
        validate_batch(batch, max_batch_bytes=MAX)


def test_uncompressed_batch_cannot_claim_more_records_than_its_bytes_hold() -> None:
    section = raw_record(offset_delta=0) * 2  # 18 bytes: room for at most 2 minimal records
    batch = batch_around(section, record_count=3)
    with pytest.raises(CorruptBatchError, match="claims 3 records in 18 bytes, room for at most 2"):
        validate_batch(batch, max_batch_bytes=MAX)


# --- producer fields -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("producer_id", "producer_epoch", "base_sequence", "transactional", "message"),
    [
        (5, 0, -1, False, "invalid sequence number -1"),
        (5, 0, -7, False, "invalid sequence number -7"),
        (5, -1, 0, False, "invalid producer epoch -1"),
        (-2, -1, -1, False, "producerId -2"),
        (-1, -1, -1, True, "transactional record batch must carry a producerId"),
    ],
)
def test_inconsistent_producer_fields_are_invalid(
    producer_id: int, producer_epoch: int, base_sequence: int, transactional: bool, message: str
) -> None:
    batch = small_batch(
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        transactional=transactional,
    )
    with pytest.raises(InvalidRecordError, match=message):
        validate_batch(batch, max_batch_bytes=MAX)


def test_sequence_without_a_producer_is_accepted_like_kafka_does() -> None:
    # Sarama sends baseSequence 0 with producerId -1 when idempotence is off.
    batch = small_batch(producer_id=-1, producer_epoch=-1, base_sequence=0)
    assert validate_batch(batch, max_batch_bytes=MAX).base_sequence == 0


# --- payloads of several batches -------------------------------------------------------------


def test_split_batches_returns_each_span() -> None:
    first, second = small_batch(), small_batch(base_offset=2, compression=Compression.GZIP)
    payload = first + second
    assert split_batches(payload) == [(0, len(first)), (len(first), len(second))]
    assert split_batches(b"") == []
    headers = validate_batches(payload, max_batch_bytes=MAX)
    assert [h.base_offset for h in headers] == [0, 2]


@pytest.mark.parametrize("extra", [1, 16, 17, 60, -1])
def test_trailing_partial_batch_is_corrupt(extra: int) -> None:
    batch = small_batch()
    extra %= len(batch)  # -1: all but the last byte
    payload = batch + batch[:extra]
    with pytest.raises(CorruptBatchError, match=f"position {len(batch)}"):
        split_batches(payload)
    with pytest.raises(CorruptBatchError):
        validate_batches(payload, max_batch_bytes=MAX)


def test_split_rejects_bad_framing_with_its_position() -> None:
    batch = small_batch()
    bad_magic = batch + edited(batch, ">b", 16, 1, fix_crc=False)
    with pytest.raises(InvalidRecordError, match=f"at position {len(batch)} has magic 1"):
        split_batches(bad_magic)
    short = batch + edited(batch, ">i", 8, 10)
    with pytest.raises(CorruptBatchError, match="batchLength 10; the minimum is 49"):
        split_batches(short)


def test_produce_records_must_be_exactly_one_batch() -> None:
    batch = small_batch()
    with pytest.raises(InvalidRecordError, match="exactly one record batch per partition, not 2"):
        validate_produce_records(batch + batch, max_batch_bytes=MAX)
    with pytest.raises(InvalidRecordError, match="not 0"):
        validate_produce_records(b"", max_batch_bytes=MAX)


@FEW
@given(data=st.data())
def test_any_damage_is_a_records_error_or_a_valid_batch(data: st.DataObject) -> None:
    batch = bytearray(small_batch(compression=Compression.SNAPPY))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        position = data.draw(st.integers(min_value=0, max_value=len(batch) - 1))
        batch[position] = data.draw(st.integers(min_value=0, max_value=255))
    cut = data.draw(st.integers(min_value=0, max_value=len(batch)))
    try:
        validate_batch(batch[:cut], max_batch_bytes=MAX)
    except RecordsError:
        pass


# --- the deep check --------------------------------------------------------------------------


@pytest.mark.parametrize("codec", list(Compression))
def test_validate_records_summarises_a_valid_batch(codec: Compression) -> None:
    records = [SimpleRecord(b"a", b"1", timestamp=10), SimpleRecord(b"b", b"2", timestamp=30)]
    records.append(SimpleRecord(b"c", b"3", timestamp=30))
    batch = build_batch(records, compression=codec)
    summary = validate_records(batch, max_uncompressed_bytes=MIB, require_keys=True)
    assert summary.record_count == 3
    assert (summary.max_timestamp, summary.offset_delta_of_max_timestamp) == (30, 1)
    assert summary.uncompressed_bytes == len(build_batch(records)) - 61


def test_offset_deltas_must_run_from_zero_without_gaps() -> None:
    for deltas in ([1], [0, 2], [0, 0], [1, 0]):
        section = b"".join(raw_record(offset_delta=d) for d in deltas)
        batch = batch_around(section, record_count=len(deltas))
        validate_batch(batch, max_batch_bytes=MAX)  # the hot path cannot see this
        with pytest.raises(InvalidRecordError, match="offset delta"):
            validate_records(batch, max_uncompressed_bytes=MIB)


def test_compacted_topics_need_a_key_on_every_record() -> None:
    batch = build_batch([SimpleRecord(b"k", b"v"), SimpleRecord(None, b"v")])
    validate_records(batch, max_uncompressed_bytes=MIB)
    with pytest.raises(InvalidRecordError, match="record 1 has no key"):
        validate_records(batch, max_uncompressed_bytes=MIB, require_keys=True)
    empty_key = build_batch([SimpleRecord(b"", b"v")])
    validate_records(empty_key, max_uncompressed_bytes=MIB, require_keys=True)


def test_deep_check_finds_count_lies_the_header_hides() -> None:
    section = raw_record(offset_delta=0) + raw_record(offset_delta=1)
    fewer = batch_around(section, record_count=3)
    with pytest.raises(CorruptBatchError, match="ends after 2"):
        validate_records(fewer, max_uncompressed_bytes=MIB)
    more = batch_around(section, record_count=1)
    with pytest.raises(CorruptBatchError, match="left over"):
        validate_records(more, max_uncompressed_bytes=MIB)


def test_deep_check_is_bounded_by_max_uncompressed_bytes() -> None:
    batch = batch_around(zstd_bomb(64), record_count=1, attributes=Compression.ZSTD)
    validate_batch(batch, max_batch_bytes=MAX)  # small on the wire, and its CRC is right
    with pytest.raises(DecompressionLimitError):
        validate_records(batch, max_uncompressed_bytes=MIB)
