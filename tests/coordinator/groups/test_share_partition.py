"""The KIP-932 share-partition rules case by case (the model test covers their combinations)."""

from __future__ import annotations

import pytest

from shoal.coordinator.share_offset_reset import (
    OffsetReset,
    OffsetResetError,
    initial_start_offset,
    parse_offset_reset,
)
from shoal.coordinator.share_partition import (
    AcknowledgementBatch,
    AcknowledgeType,
    AcquiredRange,
    RecordState,
    SharePartition,
    SharePartitionError,
    SharePartitionSettings,
)
from shoal.coordinator.share_state import (
    ShareStateError,
    decode_state,
    encode_deleted,
    encode_state,
    state_file_name,
)
from shoal.protocol.errors import ErrorCode
from shoal.testing.clock import FakeClock

SETTINGS = SharePartitionSettings(record_lock_duration_ms=1_000, delivery_count_limit=2)


def _partition() -> tuple[FakeClock, SharePartition]:
    clock = FakeClock()
    return clock, SharePartition(clock, SETTINGS, 0)


def _ack(first: int, last: int, kind: AcknowledgeType) -> list[AcknowledgementBatch]:
    return [AcknowledgementBatch(first, last, (kind,))]


def test_two_members_share_one_partition_and_each_record_goes_to_one() -> None:
    _, sp = _partition()
    a = sp.acquire("a", range(sp.next_fetch_offset(), 10), 4)
    b = sp.acquire("b", range(sp.next_fetch_offset(), 10), 100)
    assert a == [AcquiredRange(0, 3, 1)]
    assert b == [AcquiredRange(4, 9, 1)]
    sp.acknowledge("a", _ack(0, 3, AcknowledgeType.ACCEPT))
    assert sp.start_offset == 4
    with pytest.raises(SharePartitionError) as refused:
        sp.acknowledge("a", _ack(4, 4, AcknowledgeType.ACCEPT))  # b holds it
    assert refused.value.code is ErrorCode.INVALID_RECORD_STATE
    sp.acknowledge("b", _ack(4, 9, AcknowledgeType.ACCEPT))
    assert (sp.start_offset, sp.records) == (10, {})


def test_release_redelivers_with_a_higher_count_then_the_limit_archives() -> None:
    _, sp = _partition()
    sp.acquire("a", range(0, 2), 10)
    sp.acknowledge("a", [AcknowledgementBatch(0, 1, (AcknowledgeType.RELEASE, 1))])
    assert sp.records[0].state is RecordState.AVAILABLE
    assert sp.next_fetch_offset() == 0
    assert sp.acquire("b", range(0, 2), 10) == [AcquiredRange(0, 0, 2)]
    # The second delivery was the last one (limit 2): a release archives it.
    sp.acknowledge("b", _ack(0, 0, AcknowledgeType.RELEASE))
    assert sp.start_offset == 2
    assert sp.acquire("b", range(sp.next_fetch_offset(), 2), 10) == []


def test_lock_timeout_redelivers_and_the_late_acknowledgement_is_refused() -> None:
    clock, sp = _partition()
    sp.acquire("a", range(0, 3), 10)
    clock.advance(999)
    assert sp.expire_locks() == []
    clock.advance(1)
    assert sp.expire_locks() == [0, 1, 2]
    with pytest.raises(SharePartitionError):
        sp.acknowledge("a", _ack(0, 0, AcknowledgeType.ACCEPT))
    assert sp.acquire("b", range(0, 3), 10) == [AcquiredRange(0, 2, 2)]


def test_reject_and_gap_archive() -> None:
    _, sp = _partition()
    sp.acquire("a", range(0, 3), 10)
    sp.acknowledge(
        "a",
        [AcknowledgementBatch(0, 2, (AcknowledgeType.REJECT, AcknowledgeType.GAP, 1))],
    )
    assert (sp.start_offset, sp.records) == (3, {})


def test_member_leaving_releases_what_it_holds() -> None:
    _, sp = _partition()
    sp.acquire("a", range(0, 2), 10)
    sp.release_member("a")
    assert [r.state for r in sp.records.values()] == [RecordState.AVAILABLE] * 2
    assert sp.acquire("b", range(0, 2), 10) == [AcquiredRange(0, 1, 2)]


def test_in_flight_window_is_bounded_by_max_record_locks() -> None:
    clock = FakeClock()
    sp = SharePartition(clock, SharePartitionSettings(max_record_locks=3), 0)
    assert sp.acquire("a", range(0, 10), 10) == [AcquiredRange(0, 2, 1)]
    assert sp.acquire("b", range(3, 10), 10) == []
    sp.acknowledge("a", _ack(0, 0, AcknowledgeType.ACCEPT))
    assert sp.acquire("b", range(3, 10), 10) == [AcquiredRange(3, 3, 1)]


def test_snapshot_keeps_counts_and_drops_locks() -> None:
    clock, sp = _partition()
    sp.acquire("a", range(0, 4), 10)
    sp.acknowledge("a", _ack(1, 1, AcknowledgeType.ACCEPT))
    restored = SharePartition.restore(clock, SETTINGS, sp.snapshot())
    assert restored.start_offset == 0
    assert restored.records[1].state is RecordState.ACKNOWLEDGED
    assert restored.acquire("b", range(0, 4), 10) == [
        AcquiredRange(0, 0, 2),
        AcquiredRange(2, 3, 2),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("latest", OffsetReset("latest")),
        ("EARLIEST", OffsetReset("earliest")),
        ("by_duration:PT1H", OffsetReset("by_duration", 3_600_000)),
        ("by_duration:P1DT2M3.5S", OffsetReset("by_duration", 86_400_000 + 120_000 + 3_500)),
    ],
)
def test_offset_reset_values(value: str, expected: OffsetReset) -> None:
    assert parse_offset_reset(value) == expected


@pytest.mark.parametrize("value", ["none", "by_duration:", "by_duration:PT", "by_duration:-PT1S"])
def test_offset_reset_refused(value: str) -> None:
    with pytest.raises(OffsetResetError):
        parse_offset_reset(value)


def test_initial_start_offset() -> None:
    def lookup(ts: int) -> int | None:
        return 7 if ts <= 1_000 else None

    assert initial_start_offset(OffsetReset("latest"), 2, 10, 5_000, lookup) == 10
    assert initial_start_offset(OffsetReset("earliest"), 2, 10, 5_000, lookup) == 2
    assert initial_start_offset(OffsetReset("by_duration", 4_000), 2, 10, 5_000, lookup) == 7
    assert initial_start_offset(OffsetReset("by_duration", 1_000), 2, 10, 5_000, lookup) == 10


def test_durable_state_round_trips_and_names_its_group() -> None:
    _, sp = _partition()
    sp.acquire("a", range(0, 4), 10)
    sp.acknowledge("a", _ack(1, 1, AcknowledgeType.ACCEPT))
    payload = encode_state("g", sp.snapshot())
    assert decode_state("g", payload) == sp.snapshot()
    with pytest.raises(ShareStateError):
        decode_state("other", payload)  # two groups' names hashing alike never share state
    with pytest.raises(ShareStateError):
        decode_state("g", payload[:-3])
    assert state_file_name("g").startswith("share-") and len(state_file_name("g")) == 46


def test_a_deleted_groups_state_reads_as_none() -> None:
    assert decode_state("g", encode_deleted("g")) is None


def test_records_of_aborted_transactions_are_archived_never_delivered() -> None:
    """share.isolation.level=read_committed: the broker names the aborted offsets it read."""
    _, sp = _partition()
    got = sp.acquire("a", range(0, 6), 100, archived=frozenset({0, 1, 4}))
    assert got == [AcquiredRange(2, 3, 1), AcquiredRange(5, 5, 1)]
    assert sp.start_offset == 2  # the archived records at the front are done
    assert sp.records[4].state is RecordState.ARCHIVED and sp.records[4].delivery_count == 0
    sp.acknowledge("a", _ack(2, 3, AcknowledgeType.RELEASE))
    again = sp.acquire("b", range(sp.next_fetch_offset(), 6), 100, archived=frozenset({4}))
    assert again == [AcquiredRange(2, 3, 2)]  # 4 stays archived, 5 is still a's
    sp.acknowledge("b", _ack(2, 3, AcknowledgeType.ACCEPT))
    sp.acknowledge("a", _ack(5, 5, AcknowledgeType.ACCEPT))
    assert (sp.start_offset, sp.records) == (6, {})


def test_can_acquire_only_with_an_available_record_or_room_in_the_window() -> None:
    """Kafka's ``canAcquireRecords``: a fetch may acquire while a record in flight is
    Available or the window (start to end) is below the record-lock limit; otherwise it need
    not read the log at all."""
    clock = FakeClock()
    sp = SharePartition(clock, SharePartitionSettings(max_record_locks=4), 0)
    assert sp.can_acquire()
    assert sp.acquire("a", range(0, 2), 10) == [AcquiredRange(0, 1, 1)]
    assert sp.acquire("b", range(2, 6), 10) == [AcquiredRange(2, 3, 1)]  # the limit stops it
    assert not sp.can_acquire()
    sp.acknowledge("b", _ack(2, 3, AcknowledgeType.ACCEPT))  # inside the window: no room
    assert not sp.can_acquire()
    sp.acknowledge("a", _ack(1, 1, AcknowledgeType.RELEASE))  # Available again
    assert sp.can_acquire() and sp.next_fetch_offset() == 1
    assert sp.acquire("b", range(1, 6), 10) == [AcquiredRange(1, 1, 2)]
    assert not sp.can_acquire()
    sp.acknowledge("a", _ack(0, 0, AcknowledgeType.ACCEPT))
    assert sp.start_offset == 1 and sp.can_acquire()  # the start moved: room past the end


def test_the_next_lock_deadline_is_that_of_a_record_still_locked() -> None:
    clock = FakeClock()
    sp = SharePartition(clock, SETTINGS, 0)
    sp.acquire("a", range(0, 2), 10)
    clock.advance(100)
    sp.acquire("b", range(2, 4), 10)
    assert sp.next_lock_deadline_ms() == clock.monotonic_ms() - 100 + 1_000
    sp.acknowledge("a", _ack(0, 0, AcknowledgeType.ACCEPT))
    assert sp.next_lock_deadline_ms() == clock.monotonic_ms() - 100 + 1_000  # 1 still held
    sp.acknowledge("a", _ack(1, 1, AcknowledgeType.REJECT))
    assert sp.next_lock_deadline_ms() == clock.monotonic_ms() + 1_000  # only b's lock is left
    sp.release_member("b")
    assert sp.next_lock_deadline_ms() is None
    clock.advance(5_000)
    assert sp.expire_locks() == []  # nothing was locked any more: nothing expires


def test_a_fetch_never_answered_gives_back_only_what_it_still_holds() -> None:
    """give_back (a cancelled ShareFetch): the records still held under that acquisition are
    Available again with the count they had; one acknowledged since, or expired and acquired
    again, is left alone."""
    clock, sp = _partition()
    assert sp.acquire("a", range(0, 6), 100) == [AcquiredRange(0, 5, 1)]
    sp.acknowledge("a", _ack(0, 0, AcknowledgeType.ACCEPT))
    assert not sp.give_back("b", [AcquiredRange(0, 5, 1)])  # b holds none of them
    assert sp.give_back("a", [AcquiredRange(0, 5, 1)])
    assert (sp.start_offset, sp.next_fetch_offset()) == (1, 1)
    assert {o: (r.state, r.delivery_count) for o, r in sp.records.items()} == {
        o: (RecordState.AVAILABLE, 0) for o in range(1, 6)
    }
    # Acquired again, its lock expired, acquired again (count 2): the first fetch's give-back
    # no longer applies to it.
    assert sp.acquire("a", range(1, 6), 100) == [AcquiredRange(1, 5, 1)]
    clock.advance(SETTINGS.record_lock_duration_ms)
    assert sp.acquire("a", range(1, 6), 100) == [AcquiredRange(1, 5, 2)]
    assert not sp.give_back("a", [AcquiredRange(1, 5, 1)])
    assert sp.give_back("a", [AcquiredRange(1, 5, 2)])
    assert sp.acquire("b", range(1, 6), 100) == [AcquiredRange(1, 5, 2)]


def _two_batches(offset: int) -> int:
    """batch_end for stored batches 0-9 and 10-19."""
    return 9 if offset < 10 else 19


def test_batch_optimized_acquisition_takes_the_rest_of_the_batch_its_limit_falls_in() -> None:
    """Kafka's batch_optimized mode: where max_records or the window stops the acquisition of
    new records inside a stored batch, the rest of that batch is acquired too; a limit on a
    batch boundary, or a window already full, takes nothing more; record_limit is exact."""
    clock = FakeClock()
    sp = SharePartition(clock, SharePartitionSettings(max_record_locks=12), 0)
    assert sp.acquire("a", range(0, 20), 3, batch_end=_two_batches) == [AcquiredRange(0, 9, 1)]
    # Room for 2 in the window: the limit falls in 10-19, which comes whole (20 in flight).
    assert sp.acquire("b", range(10, 20), 100, batch_end=_two_batches) == [AcquiredRange(10, 19, 1)]
    sp.acknowledge("a", _ack(0, 9, AcknowledgeType.RELEASE))
    # Released records in the window: max_records counts them one by one.
    assert sp.acquire("c", range(0, 20), 4, batch_end=_two_batches) == [AcquiredRange(0, 3, 2)]
    assert sp.acquire("c", range(20, 30), 4, batch_end=lambda _o: 29) == []  # window full
    exact = SharePartition(clock, SETTINGS, 0)
    assert exact.acquire("a", range(0, 20), 10, batch_end=_two_batches) == [AcquiredRange(0, 9, 1)]
    assert exact.acquire("a", range(10, 20), 3) == [AcquiredRange(10, 12, 1)]
