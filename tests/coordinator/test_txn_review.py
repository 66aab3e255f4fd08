"""The transaction review's findings in the pure coordinator, with a fake clock: markers only
for a prepare that is durable (5), an add to an open transaction leaves its deadline (7), and
PreviousProducerId set by every transition as Kafka 4.4's TransactionMetadata sets it (8)."""

from __future__ import annotations

import itertools

from shoal.coordinator.producer_state import EPOCH_MAX
from shoal.coordinator.txn_coordinator import TransactionCoordinator
from shoal.coordinator.txn_state import TxnState
from shoal.protocol import ErrorCode
from shoal.testing.clock import FakeClock

E = ErrorCode
TIMEOUT_MS = 60_000
TP = ("orders", 0)
V2 = 2


def make() -> tuple[TransactionCoordinator, FakeClock]:
    clock = FakeClock()
    ids = itertools.count(1000)
    return TransactionCoordinator(clock, lambda: next(ids)), clock


def log_everything(c: TransactionCoordinator) -> None:
    """As the service does once the log write of every queued change is fsynced."""
    c.logged(c.take_changed())


def test_the_markers_of_a_prepare_wait_until_its_log_write_is_durable() -> None:
    c, _ = make()
    init = c.init_producer_id("t", TIMEOUT_MS)
    assert c.add_partitions("t", init.producer_id, 0, [TP]) is E.NONE
    log_everything(c)
    work = c.end_txn("t", init.producer_id, 0, commit=True).work
    assert work is not None
    assert c.unfinished() == []  # queued, not yet written
    taken = c.take_changed()
    assert c.unfinished() == [] and not c.is_logged("t")  # being written
    c.requeue(taken)  # the write failed: the change is queued again
    assert c.unfinished() == [] and c.is_queued("t")
    again = c.take_changed()
    c.logged(again)
    assert c.is_logged("t") and c.unfinished() == [work]
    assert c.pending_work("t") == work


def test_two_writes_in_flight_of_one_id_both_have_to_settle() -> None:
    c, _ = make()
    init = c.init_producer_id("t", TIMEOUT_MS)
    first = c.take_changed()
    assert c.add_partitions("t", init.producer_id, 0, [TP]) is E.NONE
    second = c.take_changed()
    c.logged(second)
    assert not c.is_logged("t")  # the first write (InitProducerId) may still fail
    c.logged(first)
    assert c.is_logged("t")


def test_an_add_to_an_open_transaction_keeps_its_deadline() -> None:
    c, clock = make()
    init = c.init_producer_id("t", TIMEOUT_MS)
    assert c.deadline_ms("t") is None
    assert c.add_partitions("t", init.producer_id, 0, [TP]) is E.NONE
    deadline = c.deadline_ms("t")
    assert deadline == clock.now_ms() + TIMEOUT_MS + 1
    clock.advance(1000)
    assert c.add_partitions("t", init.producer_id, 0, [("orders", 1)]) is E.NONE
    assert c.deadline_ms("t") == deadline == c.next_deadline_ms()


def test_every_transition_names_the_producer_id_it_started_from() -> None:
    """Kafka's prepareTransitionTo records the current producer id as the previous one in
    every transition (add, prepare, complete, fence), so after a rotation the id it replaced
    is the previous one only until the new id's first transition."""
    c, _ = make()
    old = c.init_producer_id("t", TIMEOUT_MS).producer_id
    meta = c.get("t")
    assert meta is not None
    meta.producer_epoch = EPOCH_MAX - 1
    rotated = c.init_producer_id("t", TIMEOUT_MS, old, EPOCH_MAX - 1)
    new = rotated.producer_id
    assert new != old and meta.previous_producer_id == old
    assert c.add_partitions("t", new, 0, [TP]) is E.NONE
    assert meta.previous_producer_id == new
    work = c.end_txn("t", new, 0, commit=True).work
    assert work is not None and meta.previous_producer_id == new
    c.complete(work)
    assert meta.state is TxnState.COMPLETE_COMMIT and meta.previous_producer_id == new


def test_the_old_id_retrying_a_rotation_after_the_next_transaction_is_fenced() -> None:
    """A client that asked for the rotation retries InitProducerId with the old id at the
    exhausted epoch: answered with the new id while nothing else happened, but once the new
    id has run a transaction Kafka no longer knows the old one (PreviousProducerId moved on)
    and fences it. shoal kept the old id and handed a zombie the live id and epoch."""
    c, _ = make()
    old = c.init_producer_id("t", TIMEOUT_MS).producer_id
    meta = c.get("t")
    assert meta is not None
    meta.producer_epoch = EPOCH_MAX - 1
    new = c.init_producer_id("t", TIMEOUT_MS, old, EPOCH_MAX - 1).producer_id
    assert c.add_partitions("t", new, 0, [TP]) is E.NONE
    work = c.end_txn("t", new, 0, commit=True).work
    assert work is not None
    c.complete(work)
    late = c.init_producer_id("t", TIMEOUT_MS, old, EPOCH_MAX - 1)
    assert late.error is E.PRODUCER_FENCED


def test_a_v2_end_retried_from_the_old_id_after_the_next_add_is_an_unknown_mapping() -> None:
    """Kafka's endTransaction (V2) takes the old id at the exhausted epoch as a retry only
    while PreviousProducerId is that id; after the new id's first add it is a producer id
    the transactional id does not map to: INVALID_PRODUCER_ID_MAPPING."""
    c, _ = make()
    old = c.init_producer_id("t", TIMEOUT_MS).producer_id
    meta = c.get("t")
    assert meta is not None
    meta.producer_epoch = EPOCH_MAX - 1
    assert c.add_partitions("t", old, EPOCH_MAX - 1, [TP], V2) is E.NONE
    ended = c.end_txn("t", old, EPOCH_MAX - 1, True, bump_epoch=True)
    assert ended.work is not None
    c.complete(ended.work)
    new = meta.producer_id
    retry = c.end_txn("t", old, EPOCH_MAX - 1, True, bump_epoch=True)
    assert (retry.error, retry.producer_id) == (E.NONE, new)
    assert c.add_partitions("t", new, 0, [TP], V2) is E.NONE
    late = c.end_txn("t", old, EPOCH_MAX - 1, True, bump_epoch=True)
    assert late.error is E.INVALID_PRODUCER_ID_MAPPING
