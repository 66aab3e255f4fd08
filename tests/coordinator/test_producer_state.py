"""The idempotence rules of one partition, as a table of cases plus the edges around it.

Every case starts from one producer (id 7, epoch 3) that has appended the batches given as
``(first sequence, last sequence)``, at offsets 100, 110, ... in order, and asks for the
verdict on one more batch. The rule numbers are those of the module docstring of
``shoal.coordinator.producer_state``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from shoal.coordinator.producer_state import (
    APPEND,
    BATCHES_RETAINED,
    SEQUENCE_MAX,
    Append,
    BatchMetadata,
    Duplicate,
    PartitionProducers,
    Rejected,
    Verdict,
    next_sequence,
)
from shoal.invariant import InvariantError
from shoal.protocol import ErrorCode

PID = 7
EPOCH = 3
NOW_MS = 1_700_000_000_000


def offsets_of(index: int) -> tuple[int, int]:
    return 100 + 10 * index, 100 + 10 * index + 9


def with_history(batches: list[tuple[int, int]], *, epoch: int = EPOCH) -> PartitionProducers:
    state = PartitionProducers()
    for i, (first, last) in enumerate(batches):
        first_offset, last_offset = offsets_of(i)
        state.record(PID, epoch, BatchMetadata(first, last, first_offset, last_offset, i), NOW_MS)
    return state


@dataclass(frozen=True)
class Case:
    name: str
    history: list[tuple[int, int]]
    epoch: int
    first: int
    last: int
    expect: str  # "append", "duplicate:<index in history>", or an error code name
    pid: int = PID


FIVE = [(0, 9), (10, 19), (20, 29), (30, 39), (40, 49)]
AT_MAX = [(SEQUENCE_MAX - 9, SEQUENCE_MAX)]
ACROSS_MAX = [(SEQUENCE_MAX - 4, 2)]
OUT_OF_ORDER = "OUT_OF_ORDER_SEQUENCE_NUMBER"
FENCED = "INVALID_PRODUCER_EPOCH"

CASES = [
    # rule 3: unknown producer id
    Case("unknown producer at sequence 0", [], EPOCH, 0, 4, "append"),
    Case("unknown producer at any sequence (KIP-360)", [], EPOCH, 17, 20, "append"),
    Case("unknown producer id, other producer known", FIVE, 0, 5, 9, "append", pid=8),
    # rules 6 and 7: same epoch
    Case("next in sequence", FIVE, EPOCH, 50, 59, "append"),
    Case("one record batch next in sequence", FIVE, EPOCH, 50, 50, "append"),
    Case("gap of one", FIVE, EPOCH, 51, 59, OUT_OF_ORDER),
    Case("far ahead", FIVE, EPOCH, 1000, 1009, OUT_OF_ORDER),
    Case("behind, not a cached batch", FIVE, EPOCH, 45, 54, OUT_OF_ORDER),
    Case("older than the cache", [*FIVE, (50, 59)], EPOCH, 0, 9, OUT_OF_ORDER),
    # rule 1: a duplicate needs the exact first and last sequence
    Case("duplicate of the last", FIVE, EPOCH, 40, 49, "duplicate:4"),
    Case("first matches, last differs", FIVE, EPOCH, 40, 45, OUT_OF_ORDER),
    Case("last matches, first differs", FIVE, EPOCH, 41, 49, OUT_OF_ORDER),
    # wraparound at INT32_MAX
    Case("wrap: after INT32_MAX comes 0", AT_MAX, EPOCH, 0, 9, "append"),
    Case("wrap: after INT32_MAX, 1 is a gap", AT_MAX, EPOCH, 1, 9, OUT_OF_ORDER),
    Case("wrap: no INT32_MAX + 1", AT_MAX, EPOCH, SEQUENCE_MAX, SEQUENCE_MAX, OUT_OF_ORDER),
    Case("wrap: after a batch across it", ACROSS_MAX, EPOCH, 3, 5, "append"),
    Case("wrap: retry of a batch across it", ACROSS_MAX, EPOCH, SEQUENCE_MAX - 4, 2, "duplicate:0"),
    # rule 2: a lower epoch is fenced, even for what would be a duplicate
    Case("lower epoch", FIVE, EPOCH - 1, 50, 59, FENCED),
    Case("lower epoch at sequence 0", FIVE, EPOCH - 1, 0, 9, FENCED),
    Case("lower epoch, cached range", FIVE, 0, 40, 49, FENCED),
    # rules 4 and 5: a higher epoch starts at 0
    Case("higher epoch at 0", FIVE, EPOCH + 1, 0, 9, "append"),
    Case("highest epoch at 0", FIVE, 32767, 0, 0, "append"),
    Case("higher epoch continuing", FIVE, EPOCH + 1, 50, 59, OUT_OF_ORDER),
    Case("higher epoch, cached range", FIVE, EPOCH + 1, 40, 49, OUT_OF_ORDER),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rule_table(case: Case) -> None:
    state = with_history(case.history)
    verdict = state.check(case.pid, case.epoch, case.first, case.last)
    assert describe(verdict) == case.expect.split(":")[0]
    if isinstance(verdict, Duplicate):
        index = int(case.expect.split(":")[1])
        first_offset, last_offset = offsets_of(index)
        assert (verdict.original.first_offset, verdict.original.last_offset) == (
            first_offset,
            last_offset,
        )
        assert verdict.original.timestamp_ms == index


def describe(verdict: Verdict) -> str:
    if isinstance(verdict, Append):
        return "append"
    if isinstance(verdict, Rejected):
        assert verdict.message  # a user sees it in the client's error
        return verdict.error_code.name
    return "duplicate"  # which batch it matched is checked through its offsets


@pytest.mark.parametrize("index", range(BATCHES_RETAINED))
def test_each_of_the_last_five_is_a_duplicate(index: int) -> None:
    state = with_history(FIVE)
    first, last = FIVE[index]
    verdict = state.check(PID, EPOCH, first, last)
    assert verdict == Duplicate(BatchMetadata(first, last, *offsets_of(index), index))


def test_the_sixth_batch_evicts_the_oldest() -> None:
    six = [*FIVE, (50, 59)]
    state = with_history(six)
    assert describe(state.check(PID, EPOCH, 0, 9)) == OUT_OF_ORDER
    for index in range(1, 6):
        first, last = six[index]
        verdict = state.check(PID, EPOCH, first, last)
        assert isinstance(verdict, Duplicate)
        assert verdict.original.first_offset == offsets_of(index)[0]
    entry = state.get(PID)
    assert entry is not None
    assert [b.first_sequence for b in entry.batches] == [10, 20, 30, 40, 50]


def test_check_changes_nothing() -> None:
    state = with_history(FIVE)
    for first, last, epoch in [(50, 59, EPOCH), (0, 9, EPOCH + 1), (99, 99, EPOCH)]:
        state.check(PID, epoch, first, last)
    assert state.check(PID, EPOCH, 50, 59) is APPEND
    entry = state.get(PID)
    assert entry is not None and entry.epoch == EPOCH and entry.last_sequence == 49


def test_new_epoch_forgets_the_old_batches() -> None:
    state = with_history(FIVE)
    state.record(PID, EPOCH + 1, BatchMetadata(0, 4, 200, 204, 0), NOW_MS)
    # The old epoch's batches can no longer be retried: fenced, not answered as duplicates.
    assert describe(state.check(PID, EPOCH, 40, 49)) == FENCED
    assert describe(state.check(PID, EPOCH + 1, 0, 4)) == "duplicate"
    assert describe(state.check(PID, EPOCH + 1, 5, 9)) == "append"
    entry = state.get(PID)
    assert entry is not None and len(entry.batches) == 1


def test_producers_are_independent() -> None:
    state = PartitionProducers()
    state.record(1, 0, BatchMetadata(0, 9, 0, 9, 0), NOW_MS)
    state.record(2, 5, BatchMetadata(0, 0, 10, 10, 0), NOW_MS)
    assert state.check(1, 0, 10, 19) is APPEND
    assert describe(state.check(2, 5, 10, 19)) == OUT_OF_ORDER
    assert describe(state.check(2, 4, 1, 1)) == FENCED


def test_next_sequence_wraps() -> None:
    assert next_sequence(0) == 1
    assert next_sequence(SEQUENCE_MAX - 1) == SEQUENCE_MAX
    assert next_sequence(SEQUENCE_MAX) == 0


def test_expiry_forgets_silent_producers_only() -> None:
    state = PartitionProducers(expiration_ms=1000)
    state.record(1, 0, BatchMetadata(0, 0, 0, 0, 0), NOW_MS)
    state.record(2, 0, BatchMetadata(0, 0, 1, 1, 0), NOW_MS + 500)
    assert state.expire(NOW_MS + 999) == 0
    assert state.expire(NOW_MS + 1000) == 1
    assert state.get(1) is None and state.get(2) is not None
    # Forgotten means unknown: any sequence is accepted again (rule 3).
    assert state.check(1, 0, 57, 57) is APPEND


def test_cap_evicts_the_least_recently_active() -> None:
    state = PartitionProducers(producers_max=3)
    for pid in (1, 2, 3):
        state.record(pid, 0, BatchMetadata(0, 0, pid, pid, 0), NOW_MS)
    state.record(1, 0, BatchMetadata(1, 1, 10, 10, 0), NOW_MS)  # 1 is now the most recent
    state.record(4, 0, BatchMetadata(0, 0, 11, 11, 0), NOW_MS)
    assert len(state) == 3
    assert state.get(2) is None
    assert [pid for pid, _ in state.items()] == [3, 1, 4]


def test_impossible_inputs_are_bugs() -> None:
    state = PartitionProducers()
    with pytest.raises(InvariantError):
        state.check(-1, 0, 0, 0)
    with pytest.raises(InvariantError):
        state.check(1, -1, 0, 0)
    with pytest.raises(InvariantError):
        state.check(1, 0, SEQUENCE_MAX + 1, 0)
    with pytest.raises(InvariantError):
        state.record(1, 0, BatchMetadata(0, 0, 5, 4, 0), NOW_MS)


def test_a_marker_from_an_older_coordinator_is_fenced() -> None:
    """Kafka's ProducerAppendInfo.appendEndTxnMarker: the producer epoch first, then the
    coordinator epoch of the producer's last marker; a refused marker changes nothing."""
    state = PartitionProducers()
    assert state.check_marker(5, 2, 0) is None  # unknown producer: any marker
    state.record(5, 2, BatchMetadata(0, 0, 0, 0, 100), 1000)
    entry = state.get(5)
    assert entry is not None and entry.coordinator_epoch == -1
    state.record_marker(5, 2, 1001, coordinator_epoch=3, timestamp_ms=200)
    assert (entry.coordinator_epoch, entry.last_timestamp_ms) == (3, 200)
    fenced = state.check_marker(5, 2, 2)
    assert fenced is not None and fenced.error_code is ErrorCode.TRANSACTION_COORDINATOR_FENCED
    older_epoch = state.check_marker(5, 1, 2)
    assert older_epoch is not None and older_epoch.error_code is ErrorCode.INVALID_PRODUCER_EPOCH
    assert state.check_marker(5, 2, 3) is None and state.check_marker(5, 3, 9) is None
    assert entry.coordinator_epoch == 3
