"""Bugs planted on purpose, to show the simulation catches what it claims to.

Each is a context manager that patches one promise away the way a real bug would, for the
duration of a test, in this process only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

from shoal.broker.handlers import share_acknowledge, share_fetch
from shoal.broker.handlers.share_common import AckOutcome
from shoal.coordinator.group_coordinator import GroupCoordinator
from shoal.coordinator.offsets_log import OFFSETS_TOPIC
from shoal.coordinator.partition_txns import PartitionTxns
from shoal.protocol import ErrorCode
from shoal.storage import LogId, LogManager, PartitionLog
from shoal.storage.flush import Flusher


@contextlib.contextmanager
def ack_before_fsync(log_prefix: str = "") -> Iterator[None]:
    """acks=all answered as soon as the batch is written, before the fsync that makes it
    durable (Kafka's default without replicas; shoal promises better), in the logs whose
    name starts with ``log_prefix``."""
    original = PartitionLog.wait_durable

    def wait_durable(self: PartitionLog, offset: int) -> Future[None]:
        if not self.name.startswith(log_prefix):
            return original(self, offset)
        future: Future[None] = Future()
        future.set_result(None)
        return future

    PartitionLog.wait_durable = wait_durable  # type: ignore[method-assign]
    try:
        yield
    finally:
        PartitionLog.wait_durable = original  # type: ignore[method-assign]


@contextlib.contextmanager
def ack_on_another_logs_flush() -> Iterator[None]:
    """The flusher, having flushed one log, answers the acks=all appends waiting on every
    other log too, as if one fsync made all the files durable. Only a round in which some
    logs' fsyncs finish and others' do not (then a power loss) shows it: when every round
    finishes all of them, the others' own fsyncs come before anything can see the
    difference."""
    original = Flusher._run

    def run(self: Flusher, job: Any) -> None:
        original(self, job)
        for other in list(self._registered.values()):
            if other is job.plog or not isinstance(other, PartitionLog):
                continue
            with other._lock:
                waiters = [future for _, future in other._waiters]
                other._waiters.clear()
            for future in waiters:
                if future.set_running_or_notify_cancel():
                    future.set_result(None)

    Flusher._run = run  # type: ignore[method-assign]
    try:
        yield
    finally:
        Flusher._run = original  # type: ignore[method-assign]


def commit_before_fsync() -> contextlib.AbstractContextManager[None]:
    """OffsetCommit answered before its record in ``__consumer_offsets`` is fsynced."""
    return ack_before_fsync(OFFSETS_TOPIC)


@contextlib.contextmanager
def forget_aborted_transactions() -> Iterator[None]:
    """Fetch lists no aborted transaction: a read_committed client delivers aborted data."""
    original = PartitionTxns.aborted_overlapping

    def aborted_overlapping(self: PartitionTxns, start: int, end: int) -> list[Any]:
        return []

    PartitionTxns.aborted_overlapping = aborted_overlapping  # type: ignore[method-assign]
    try:
        yield
    finally:
        PartitionTxns.aborted_overlapping = original  # type: ignore[method-assign]


@contextlib.contextmanager
def failing_group_timer() -> Iterator[None]:
    """The group coordinator's timer raises once (a bug the broker logs and survives).

    Once: raising every time makes the timer spin (its deadline stays in the past), which the
    simulation reports as a loop that does not settle; this plant checks the logged path."""
    original = GroupCoordinator.advance
    raised = False

    def advance(self: GroupCoordinator) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise RuntimeError("planted: the group timer failed")
        original(self)

    GroupCoordinator.advance = advance  # type: ignore[method-assign]
    try:
        yield
    finally:
        GroupCoordinator.advance = original  # type: ignore[method-assign]


@contextlib.contextmanager
def commit_aborted_txn_offsets() -> Iterator[None]:
    """An aborted transaction's offsets are committed anyway (its marker read as COMMIT)."""
    original = GroupCoordinator.end_txn_offsets

    def end_txn_offsets(
        self: GroupCoordinator,
        producer_id: int,
        producer_epoch: int,
        coordinator_epoch: int,
        commit: bool,
    ) -> Any:
        return original(self, producer_id, producer_epoch, coordinator_epoch, True)

    GroupCoordinator.end_txn_offsets = end_txn_offsets  # type: ignore[method-assign]
    try:
        yield
    finally:
        GroupCoordinator.end_txn_offsets = original  # type: ignore[method-assign]


@contextlib.contextmanager
def delete_records_before_checkpoint() -> Iterator[None]:
    """DeleteRecords answered with the new log start in memory only: its checkpoint is left to
    the flusher's next periodic one, so a power loss before it brings the start back."""
    original = PartitionLog.delete_records

    def delete_records(self: PartitionLog, before_offset: int) -> int:
        with self._lock:
            if before_offset > self._log_start:
                self._log_start = before_offset
                # The epoch history follows the start as the real method does: only the
                # checkpoint is skipped, so the run fails for that reason and no other.
                self._epochs.truncate_from_start(before_offset)
            return self._log_start

    PartitionLog.delete_records = delete_records  # type: ignore[method-assign]
    try:
        yield
    finally:
        PartitionLog.delete_records = original  # type: ignore[method-assign]


@contextlib.contextmanager
def delete_topic_leaves_files() -> Iterator[None]:
    """DeleteTopics forgets a partition's log but leaves its files: the next start finds the
    directory again and serves the deleted data (under the name, if the topic is re-created)."""
    original = LogManager.delete

    def delete(self: LogManager, topic: str, partition: int) -> None:
        self.health.check()
        tp = LogId(topic, partition)
        plog = self._logs.pop(tp, None)
        self.offline.pop(tp, None)
        if plog is not None:
            plog.close()

    LogManager.delete = delete  # type: ignore[method-assign]
    try:
        yield
    finally:
        LogManager.delete = original  # type: ignore[method-assign]


@contextlib.contextmanager
def share_ack_before_fsync() -> Iterator[None]:
    """A share group's acknowledgement (ShareFetch's or ShareAcknowledge's) answered as soon
    as it is applied in memory: its state write runs, but the answer does not wait for the
    fsync (KIP-932 state the broker can lose after answering NONE)."""
    originals = (share_fetch.settled, share_acknowledge.settled)

    async def settled(outcome: AckOutcome) -> tuple[ErrorCode, str | None]:
        if isinstance(outcome, tuple):
            return outcome
        outcome.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved
        return ErrorCode.NONE, None

    share_fetch.settled = share_acknowledge.settled = settled
    try:
        yield
    finally:
        share_fetch.settled, share_acknowledge.settled = originals


PLANTS = {
    "ack-before-fsync": ack_before_fsync,
    "commit-before-fsync": commit_before_fsync,
    "forget-aborted-transactions": forget_aborted_transactions,
    "failing-group-timer": failing_group_timer,
    "commit-aborted-txn-offsets": commit_aborted_txn_offsets,
    "delete-records-before-checkpoint": delete_records_before_checkpoint,
    "delete-topic-leaves-files": delete_topic_leaves_files,
    "share-ack-before-fsync": share_ack_before_fsync,
}


@contextlib.contextmanager
def swap_in_unsynced_cleaned_segment() -> Iterator[None]:
    """The cleaner swaps a cleaned segment in without fsyncing it first (as if the cleaner's
    process had), so the swap's manifest commits to a file a power loss can empty: the records
    of the segments it replaced, acknowledged long ago, are gone."""
    original = PartitionLog.replace_with_cleaned

    def replace_with_cleaned(
        self: PartitionLog, old: list[Any], new: Any, *, durable: bool = False
    ) -> bool:
        new.save_indexes(self._fs)
        return original(self, old, new, durable=True)

    PartitionLog.replace_with_cleaned = replace_with_cleaned  # type: ignore[method-assign]
    try:
        yield
    finally:
        PartitionLog.replace_with_cleaned = original  # type: ignore[method-assign]
