"""Record-by-record checks of a produced batch (Kafka's ``LogValidator.validateRecord``): keys on
compacted topics, CreateTime timestamps inside the topic's bounds, and no LogAppendTime batch from
a producer where the topic stamps its own."""

from __future__ import annotations

import pytest

from shoal.records import Compression, SimpleRecord, TimestampType, build_batch
from shoal.records.validate import (
    RecordFault,
    RecordRule,
    refused_records,
    timestamp_out_of_range,
)

NOW = 1_700_000_000_000
HOUR = 3_600_000
LONG_MAX = 2**63 - 1
LIMIT = 1 << 20


def rule(
    *,
    require_key: bool = False,
    log_append_time: bool = False,
    before: int = LONG_MAX,
    after: int = HOUR,
) -> RecordRule:
    return RecordRule(require_key, log_append_time, NOW, before, after)


def faults(batch: bytes, r: RecordRule) -> list[tuple[int, RecordFault]]:
    return [
        (x.batch_index, x.fault) for x in refused_records(batch, r, max_uncompressed_bytes=LIMIT)
    ]


def test_bounds_are_exclusive_as_kafkas() -> None:
    r = rule(before=60_000, after=HOUR)
    assert not timestamp_out_of_range(NOW + HOUR, r)
    assert timestamp_out_of_range(NOW + HOUR + 1, r)
    assert not timestamp_out_of_range(NOW - 60_000, r)
    assert timestamp_out_of_range(NOW - 60_001, r)


@pytest.mark.parametrize("compression", [Compression.NONE, Compression.ZSTD])
def test_each_record_out_of_range_is_named_with_its_offset(compression: Compression) -> None:
    stamps = [NOW, NOW + 2 * HOUR, NOW - 10, NOW + HOUR + 1, NOW + HOUR]
    batch = build_batch(
        [SimpleRecord(b"k", b"v", timestamp=t) for t in stamps],
        base_offset=7,
        compression=compression,
    )
    refused = refused_records(bytes(batch), rule(), max_uncompressed_bytes=LIMIT)
    assert [(x.batch_index, x.offset, x.timestamp) for x in refused] == [
        (1, 8, NOW + 2 * HOUR),
        (3, 10, NOW + HOUR + 1),
    ]
    assert {x.fault for x in refused} == {RecordFault.TIMESTAMP_OUT_OF_RANGE}


def test_a_record_older_than_the_first_is_checked_on_its_own() -> None:
    # The first record is recent; the second's negative delta takes it past the bound.
    batch = build_batch([SimpleRecord(b"k", b"v", timestamp=t) for t in (NOW, NOW - 120_000)])
    assert faults(bytes(batch), rule(before=60_000)) == [(1, RecordFault.TIMESTAMP_OUT_OF_RANGE)]
    assert faults(bytes(batch), rule()) == []


def test_records_without_a_timestamp_are_never_out_of_range() -> None:
    batch = build_batch([SimpleRecord(b"k", b"v"), SimpleRecord(b"k", b"v")])
    assert faults(bytes(batch), rule(before=0, after=0)) == []


def test_the_key_fault_comes_first_and_only_on_compacted_topics() -> None:
    batch = build_batch(
        [
            SimpleRecord(None, b"v", timestamp=NOW + 2 * HOUR),
            SimpleRecord(b"k", b"v", timestamp=NOW + 2 * HOUR),
            SimpleRecord(None, b"v", timestamp=NOW),
        ]
    )
    assert faults(bytes(batch), rule(require_key=True)) == [
        (0, RecordFault.NO_KEY),
        (1, RecordFault.TIMESTAMP_OUT_OF_RANGE),
        (2, RecordFault.NO_KEY),
    ]
    assert faults(bytes(batch), rule()) == [
        (0, RecordFault.TIMESTAMP_OUT_OF_RANGE),
        (1, RecordFault.TIMESTAMP_OUT_OF_RANGE),
    ]


def test_log_append_time_topics_check_no_create_time_but_refuse_a_producers_append_time() -> None:
    future = build_batch([SimpleRecord(b"k", b"v", timestamp=NOW + 5 * HOUR)])
    assert faults(bytes(future), rule(log_append_time=True)) == []
    stamped = build_batch(
        [SimpleRecord(b"k", b"v1"), SimpleRecord(b"k", b"v2")],
        timestamp_type=TimestampType.LOG_APPEND_TIME,
    )
    refused = refused_records(
        bytes(stamped), rule(log_append_time=True), max_uncompressed_bytes=LIMIT
    )
    assert [(x.batch_index, x.fault, x.key_size, x.value_size) for x in refused] == [
        (0, RecordFault.APPEND_TIME_FROM_PRODUCER, 1, 2),
        (1, RecordFault.APPEND_TIME_FROM_PRODUCER, 1, 2),
    ]


def test_a_producers_append_time_batch_on_a_create_time_topic_is_checked_by_its_max() -> None:
    # Kafka reads every record of a LogAppendTime batch as carrying the batch's max timestamp.
    def stamped(max_timestamp: int) -> bytes:
        return bytes(
            build_batch(
                [SimpleRecord(b"k", b"v", timestamp=max_timestamp)],
                timestamp_type=TimestampType.LOG_APPEND_TIME,
            )
        )

    assert faults(stamped(NOW), rule()) == []
    assert faults(stamped(NOW + 2 * HOUR), rule()) == [(0, RecordFault.TIMESTAMP_OUT_OF_RANGE)]
