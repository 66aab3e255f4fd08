"""Transactional offset commits through ``__consumer_offsets``: pending until the
transaction's end, and replayed as such after a restart (also across a snapshot)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.coordinator.group_config import GroupConfig
from shoal.coordinator.group_coordinator import GroupCoordinator
from shoal.coordinator.offsets_log import RECORDS_PER_BATCH_MAX, CommittedOffset, offset_value
from shoal.coordinator.txn_offsets import txn_offset_key
from shoal.protocol.errors import ErrorCode
from shoal.storage import AppendInfo, StorageError
from shoal.testing.clock import FakeClock
from tests.coordinator.groups.test_offsets_log import Store

TP = ("t", 0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path, GroupConfig(offsets_snapshot_bytes=1, offsets_segment_bytes=16 * 1024))
    yield s
    s.close()


def _txn_commit(coordinator: GroupCoordinator, pid: int, offset: int) -> None:
    error, errors, durable = coordinator.txn_commit_offsets(
        "g", (pid, 0), "", None, -1, {TP: CommittedOffset(offset, -1, "", 1000)}
    )
    assert error is ErrorCode.NONE and not errors and durable is not None
    durable.result(timeout=10)


def _restart(store: Store) -> GroupCoordinator:
    return GroupCoordinator(FakeClock(), store.config, store.open())


def test_pending_offsets_survive_a_restart_and_end_with_their_transaction(store: Store) -> None:
    coordinator = _restart(store)
    _txn_commit(coordinator, 7, 10)  # committed below
    _txn_commit(coordinator, 8, 99)  # aborted below
    assert coordinator.fetch_offsets("g", [TP]) == {TP: None}
    assert coordinator.txn_offsets.is_pending("g", TP)

    coordinator = _restart(store)
    assert coordinator.txn_offsets.is_pending("g", TP)
    ended = coordinator.end_txn_offsets(7, 0, 0, commit=True)
    assert ended is not None
    ended.result(timeout=10)
    assert coordinator.fetch_offsets("g", [TP])[TP] == CommittedOffset(10, -1, "", 1000)

    coordinator = _restart(store)
    assert coordinator.fetch_offsets("g", [TP])[TP] == CommittedOffset(10, -1, "", 1000)
    assert coordinator.txn_offsets.is_pending("g", TP)  # producer 8's, still open
    aborted = coordinator.end_txn_offsets(8, 0, 0, commit=False)
    assert aborted is not None
    aborted.result(timeout=10)
    assert not coordinator.txn_offsets.is_pending("g", TP)

    coordinator = _restart(store)
    assert coordinator.fetch_offsets("g", [TP])[TP] == CommittedOffset(10, -1, "", 1000)
    assert not coordinator.txn_offsets.is_pending("g", TP)
    # A transaction that committed no offsets gets its marker all the same, as in Kafka.
    assert coordinator.end_txn_offsets(9, 0, 0, commit=True) is not None
    assert not coordinator.txn_offsets.is_pending("g", TP)


def test_a_snapshot_of_the_offsets_log_keeps_pending_offsets(store: Store) -> None:
    coordinator = _restart(store)
    _txn_commit(coordinator, 7, 10)
    pending = coordinator.maybe_snapshot()
    assert pending is not None
    durable, first = pending.durable, pending.first_offset
    durable.result(timeout=10)
    assert coordinator.offsets_log is not None
    coordinator.offsets_log.finish_snapshot(first)
    coordinator = _restart(store)
    assert coordinator.txn_offsets.is_pending("g", TP)


def test_a_log_from_older_shoal_ends_transactions_with_its_txn_end_records(store: Store) -> None:
    # Before markers, shoal ended a transaction's offsets with a JSON record of its own.
    offsets_log = store.open()
    durable = offsets_log.append(
        [
            (txn_offset_key(7, "g", *TP), offset_value(CommittedOffset(10, -1, "", 1000))),
            (txn_offset_key(8, "g", *TP), offset_value(CommittedOffset(99, -1, "", 1000))),
            (b'{"k":"txn-end","pid":7}', b'{"commit":true}'),
            (b'{"k":"txn-end","pid":8}', b'{"commit":false}'),
        ]
    )
    assert durable is not None
    durable.result(timeout=10)
    coordinator = _restart(store)
    assert coordinator.fetch_offsets("g", [TP])[TP] == CommittedOffset(10, -1, "", 1000)
    assert not coordinator.txn_offsets.is_pending("g", TP)


def test_pending_offsets_carry_the_producer_and_the_end_is_a_marker(store: Store) -> None:
    coordinator = _restart(store)
    error, _, durable = coordinator.txn_commit_offsets(
        "g", (7, 3), "", None, -1, {TP: CommittedOffset(10, -1, "", 1000)}
    )
    assert error is ErrorCode.NONE and durable is not None
    ended = coordinator.end_txn_offsets(7, 3, 2, commit=True)
    assert ended is not None
    ended.result(timeout=10)
    assert coordinator.offsets_log is not None
    headers = list(coordinator.offsets_log.plog.headers_from(0))
    # As Kafka's group coordinator writes them: a transactional batch with base sequence 0,
    # then the marker (a transactional control batch without sequence).
    assert [(h.producer_id, h.producer_epoch, h.base_sequence) for h in headers] == [
        (7, 3, 0),
        (7, 3, -1),
    ]
    assert [(h.is_control, h.is_transactional) for h in headers] == [(False, True), (True, True)]


def test_a_snapshot_writes_pending_offsets_with_their_producer(store: Store) -> None:
    # So that the offsets partition still knows the producer's epoch from its log once the
    # records before the snapshot are deleted (a stale marker is refused against it).
    coordinator = _restart(store)
    error, _, durable = coordinator.txn_commit_offsets(
        "g", (7, 3), "", None, -1, {TP: CommittedOffset(10, -1, "", 1000)}
    )
    assert error is ErrorCode.NONE and durable is not None
    pending = coordinator.maybe_snapshot()
    assert pending is not None
    pending.durable.result(timeout=10)
    assert coordinator.offsets_log is not None
    coordinator.offsets_log.finish_snapshot(pending.first_offset)
    plog = coordinator.offsets_log.plog
    headers = list(plog.headers_from(plog.log_start_offset))
    assert [(h.producer_id, h.producer_epoch) for h in headers if h.has_producer_id] == [(7, 3)]
    coordinator = _restart(store)
    assert coordinator.txn_offsets.epochs == {7: 3}
    assert coordinator.txn_offsets.is_pending("g", TP)


def test_a_commit_failing_part_way_keeps_in_memory_what_the_log_has(store: Store) -> None:
    """A TxnOffsetCommit of more than one batch whose second write fails: the live broker
    holds pending exactly what a restart replays (the first batch), not more nor less."""
    offsets_log = store.open()
    coordinator = GroupCoordinator(FakeClock(), store.config, offsets_log)
    write = offsets_log._write  # the log's append, with a refusal planted on the second batch
    writes: list[bytes] = []

    def failing_second(batch: bytes) -> AppendInfo:
        writes.append(batch)
        if len(writes) == 2:
            raise StorageError("planted: the second batch's write failed")
        return write(batch)

    offsets_log._write = failing_second
    offsets = {("t", p): CommittedOffset(p, -1, "", 1000) for p in range(RECORDS_PER_BATCH_MAX + 1)}
    with pytest.raises(StorageError):
        coordinator.txn_commit_offsets("g", (7, 0), "", None, -1, offsets)
    live = {tp for tp in offsets if coordinator.txn_offsets.is_pending("g", tp)}
    restarted = _restart(store)
    replayed = {tp for tp in offsets if restarted.txn_offsets.is_pending("g", tp)}
    assert len(writes) == 2
    assert live == replayed == set(list(offsets)[:RECORDS_PER_BATCH_MAX])
