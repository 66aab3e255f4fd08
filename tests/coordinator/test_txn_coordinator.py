"""The transaction coordinator's state machine with a fake clock: every transition of the
table, the errors Kafka answers in each state, timeouts and expiry."""

from __future__ import annotations

import itertools

import pytest

from shoal.coordinator.txn_coordinator import TransactionCoordinator
from shoal.coordinator.txn_state import (
    TRANSITIONS,
    IllegalTxnTransitionError,
    TxnEvent,
    TxnState,
    next_state,
)
from shoal.protocol import ErrorCode
from shoal.testing.clock import FakeClock

E = ErrorCode
TIMEOUT_MS = 60_000
TP = ("orders", 0)


def make(clock: FakeClock | None = None, **kwargs: int) -> tuple[TransactionCoordinator, FakeClock]:
    clock = clock or FakeClock()
    ids = itertools.count(1000)
    return TransactionCoordinator(clock, lambda: next(ids), **kwargs), clock


def ongoing(c: TransactionCoordinator, txn: str = "t") -> tuple[int, int]:
    init = c.init_producer_id(txn, TIMEOUT_MS)
    assert init.error is E.NONE
    assert c.add_partitions(txn, init.producer_id, init.producer_epoch, [TP]) is E.NONE
    return init.producer_id, init.producer_epoch


def test_a_new_id_gets_epoch_0_and_a_known_one_the_next_epoch() -> None:
    c, _ = make()
    first = c.init_producer_id("t", TIMEOUT_MS)
    assert (first.error, first.producer_id, first.producer_epoch) == (E.NONE, 1000, 0)
    again = c.init_producer_id("t", TIMEOUT_MS)
    assert (again.producer_id, again.producer_epoch) == (1000, 1)
    meta = c.get("t")
    assert meta is not None and meta.state is TxnState.EMPTY


def test_the_timeout_is_bounded_by_the_broker_maximum() -> None:
    c, _ = make(max_timeout_ms=1000)
    assert c.init_producer_id("t", 1001).error is E.INVALID_TRANSACTION_TIMEOUT
    assert c.init_producer_id("t", 0).error is E.INVALID_TRANSACTION_TIMEOUT
    assert c.get("t") is None
    assert c.init_producer_id("t", 1000).error is E.NONE


def test_commit_goes_through_prepare_commit_to_complete_commit() -> None:
    c, _ = make()
    pid, epoch = ongoing(c)
    assert c.get("t").state is TxnState.ONGOING  # type: ignore[union-attr]
    result = c.end_txn("t", pid, epoch, commit=True)
    assert result.error is E.NONE and result.work is not None
    assert result.work.commit and result.work.partitions == (TP,)
    assert c.get("t").state is TxnState.PREPARE_COMMIT  # type: ignore[union-attr]
    # While the markers are written: retriable for the same outcome, invalid for the other.
    assert c.end_txn("t", pid, epoch, commit=True).error is E.CONCURRENT_TRANSACTIONS
    assert c.end_txn("t", pid, epoch, commit=False).error is E.INVALID_TXN_STATE
    assert c.add_partitions("t", pid, epoch, [TP]) is E.CONCURRENT_TRANSACTIONS
    assert c.init_producer_id("t", TIMEOUT_MS).error is E.CONCURRENT_TRANSACTIONS
    c.complete(result.work)
    meta = c.get("t")
    assert meta is not None and meta.state is TxnState.COMPLETE_COMMIT and not meta.partitions
    assert c.end_txn("t", pid, epoch, commit=True).error is E.NONE  # a retry
    assert c.end_txn("t", pid, epoch, commit=False).error is E.INVALID_TXN_STATE


def test_abort_goes_through_prepare_abort_to_complete_abort() -> None:
    c, _ = make()
    pid, epoch = ongoing(c)
    result = c.end_txn("t", pid, epoch, commit=False)
    assert result.work is not None and not result.work.commit
    assert c.get("t").state is TxnState.PREPARE_ABORT  # type: ignore[union-attr]
    c.complete(result.work)
    assert c.get("t").state is TxnState.COMPLETE_ABORT  # type: ignore[union-attr]
    # The next transaction starts from CompleteAbort.
    assert c.add_partitions("t", pid, epoch, [("x", 1)]) is E.NONE
    assert c.get("t").partitions == {("x", 1)}  # type: ignore[union-attr]


def test_end_txn_without_a_transaction_is_invalid() -> None:
    c, _ = make()
    init = c.init_producer_id("t", TIMEOUT_MS)
    assert c.end_txn("t", init.producer_id, 0, commit=True).error is E.INVALID_TXN_STATE
    assert c.end_txn("t", 99, 0, commit=True).error is E.INVALID_PRODUCER_ID_MAPPING
    assert c.end_txn("nope", 99, 0, commit=True).error is E.INVALID_PRODUCER_ID_MAPPING


def test_init_fences_an_open_transaction_and_aborts_it_with_the_bumped_epoch() -> None:
    c, _ = make()
    pid, epoch = ongoing(c)
    result = c.init_producer_id("t", TIMEOUT_MS)
    assert result.error is E.CONCURRENT_TRANSACTIONS
    assert result.work is not None and not result.work.commit
    assert result.work.producer_epoch == epoch + 1
    assert c.get("t").state is TxnState.PREPARE_ABORT  # type: ignore[union-attr]
    # The old instance is fenced everywhere.
    assert c.add_partitions("t", pid, epoch, [TP]) is E.PRODUCER_FENCED
    assert c.end_txn("t", pid, epoch, commit=True).error is E.PRODUCER_FENCED
    assert c.verify_produce(pid, epoch, TP) is E.INVALID_PRODUCER_EPOCH
    c.complete(result.work)
    retry = c.init_producer_id("t", TIMEOUT_MS)
    assert (retry.error, retry.producer_id, retry.producer_epoch) == (E.NONE, pid, epoch + 2)


def test_add_partitions_checks_id_epoch_and_state() -> None:
    c, _ = make()
    init = c.init_producer_id("t", TIMEOUT_MS)
    pid = init.producer_id
    assert c.add_partitions("nope", pid, 0, [TP]) is E.INVALID_PRODUCER_ID_MAPPING
    assert c.add_partitions("t", pid + 1, 0, [TP]) is E.INVALID_PRODUCER_ID_MAPPING
    assert c.add_partitions("t", pid, 1, [TP]) is E.PRODUCER_FENCED
    c.take_changed()
    assert c.add_partitions("t", pid, 0, [TP]) is E.NONE
    assert [m.state for m in c.take_changed()] == [TxnState.ONGOING]
    assert c.add_partitions("t", pid, 0, [TP]) is E.NONE
    assert c.take_changed() == []  # nothing new: nothing to log


def test_verify_only_and_produce_verification() -> None:
    c, _ = make()
    pid, epoch = ongoing(c)
    other = ("orders", 1)
    assert c.verify_partitions("t", pid, epoch, [TP, other]) == {
        TP: E.NONE,
        other: E.INVALID_TXN_STATE,
    }
    assert c.get("t").partitions == {TP}  # type: ignore[union-attr]
    assert c.verify_produce(pid, epoch, TP) is E.NONE
    assert c.verify_produce(pid, epoch, other) is E.INVALID_TXN_STATE
    assert c.verify_produce(pid + 7, 0, TP) is E.INVALID_TXN_STATE


def test_a_transaction_past_its_timeout_is_fenced_and_aborted() -> None:
    c, clock = make()
    pid, epoch = ongoing(c)
    assert c.next_deadline_ms() == clock.now_ms() + TIMEOUT_MS + 1
    clock.advance(TIMEOUT_MS)
    assert c.abort_timed_out() == []
    clock.advance(1)
    works = c.abort_timed_out()
    assert len(works) == 1 and not works[0].commit and works[0].producer_epoch == epoch + 1
    assert c.get("t").state is TxnState.PREPARE_ABORT  # type: ignore[union-attr]
    c.complete(works[0])
    assert c.get("t").state is TxnState.COMPLETE_ABORT  # type: ignore[union-attr]
    assert c.end_txn("t", pid, epoch, commit=True).error is E.PRODUCER_FENCED
    assert c.next_deadline_ms() is None


def test_idle_ids_expire_to_dead_and_start_over() -> None:
    c, clock = make(expiration_ms=1000)
    first = c.init_producer_id("t", TIMEOUT_MS)
    pid, epoch = ongoing(c, "busy")
    clock.advance(1000)
    assert c.expire() == ["t"]  # "busy" has an open transaction: kept
    assert c.get("t") is None and c.get("busy") is not None
    assert [m.state for m in c.take_changed() if m.transactional_id == "t"] == [TxnState.DEAD]
    again = c.init_producer_id("t", TIMEOUT_MS)
    assert again.producer_id != first.producer_id and again.producer_epoch == 0
    assert c.verify_produce(pid, epoch, TP) is E.NONE


def test_kip_360_a_client_presenting_another_id_or_epoch_is_fenced() -> None:
    c, _ = make()
    init = c.init_producer_id("t", TIMEOUT_MS)
    pid = init.producer_id
    assert c.init_producer_id("t", TIMEOUT_MS, pid + 1, 0).error is E.PRODUCER_FENCED
    bumped = c.init_producer_id("t", TIMEOUT_MS, pid, 0)
    assert (bumped.error, bumped.producer_epoch) == (E.NONE, 1)
    # The retry of that bump (same old epoch) gets the same answer, not another bump.
    retry = c.init_producer_id("t", TIMEOUT_MS, pid, 0)
    assert (retry.error, retry.producer_epoch) == (E.NONE, 1)
    assert c.init_producer_id("t", TIMEOUT_MS, pid, 5).error is E.PRODUCER_FENCED


def test_an_exhausted_epoch_moves_to_a_new_producer_id() -> None:
    c, _ = make()
    init = c.init_producer_id("t", TIMEOUT_MS)
    meta = c.get("t")
    assert meta is not None
    meta.producer_epoch = 2**15 - 2
    again = c.init_producer_id("t", TIMEOUT_MS)
    assert again.producer_id != init.producer_id and again.producer_epoch == 0
    assert c.by_producer_id(init.producer_id) is None


def test_unfinished_prepares_are_listed_for_a_restart() -> None:
    c, _ = make()
    pid, epoch = ongoing(c)
    work = c.end_txn("t", pid, epoch, commit=True).work
    restored, _ = make()
    for meta in c:
        restored.restore(meta)
    assert restored.unfinished() == [work]


@pytest.mark.parametrize("state", list(TxnState))
@pytest.mark.parametrize("event", list(TxnEvent))
def test_the_table_decides_every_pair(state: TxnState, event: TxnEvent) -> None:
    if (state, event) in TRANSITIONS:
        assert next_state("t", state, event) is TRANSITIONS[(state, event)]
    else:
        with pytest.raises(IllegalTxnTransitionError):
            next_state("t", state, event)


def test_dead_is_final() -> None:
    assert not [pair for pair in TRANSITIONS if pair[0] is TxnState.DEAD]
