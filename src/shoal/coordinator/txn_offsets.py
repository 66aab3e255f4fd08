"""Transactional offset commits (TxnOffsetCommit): pending until their transaction ends.

A consume-transform-produce loop commits its consumed offsets inside its transaction, so that
the outputs and the offsets become visible together or not at all. Until the transaction's
COMMIT reaches ``__consumer_offsets``, the offsets are *pending*: OffsetFetch does not return
them (and answers UNSTABLE_OFFSET_COMMIT to a require_stable fetch of those partitions); a
COMMIT makes them the group's committed offsets, an ABORT drops them.

They are kept in the offsets log like every other commit, so they survive a crash between
TxnOffsetCommit and the end of the transaction:

- pending offset: key ``{"k": "txn-offset", "pid", "group", "topic", "partition"}``, value as
  an ordinary offset commit's, in a transactional batch that carries the producer id and
  epoch and base sequence 0, as Kafka's group coordinator writes it (CoordinatorRuntime's
  MemoryRecordsBuilder); a snapshot of the offsets log writes them again so. The open
  transaction therefore holds the partition's last stable offset and DescribeProducers on
  ``__consumer_offsets`` shows it, as on Kafka. Older shoal wrote these batches without a
  sequence (base sequence -1) and without the transactional flag; replay reads both;
- end of a transaction: the COMMIT/ABORT marker (a control batch), as Kafka writes it. The
  broker's append checks it like any partition's marker, so a marker from an older producer
  epoch than the transaction's offsets (INVALID_PRODUCER_EPOCH) or an older coordinator epoch
  than the producer's last marker here (TRANSACTION_COORDINATOR_FENCED) is refused and ends
  nothing. Logs written by older shoal end a transaction with a record of key
  ``{"k": "txn-end", "pid"}`` and value ``{"commit": bool}``; replay still reads it.

Replay applies them in log order. A snapshot of the offsets log repeats the pending offsets,
so deleting the log before the snapshot loses none.
"""

from __future__ import annotations

import json
from typing import Any

from shoal.coordinator.offsets_log import CommittedOffset, Entry, TopicPartitionKey, offset_value

GroupPartition = tuple[str, TopicPartitionKey]
"""(group id, (topic, partition))."""


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def txn_offset_key(producer_id: int, group: str, topic: str, partition: int) -> bytes:
    return _dump(
        {
            "k": "txn-offset",
            "pid": producer_id,
            "group": group,
            "topic": topic,
            "partition": partition,
        }
    )


def _entry(
    producer_id: int, group: str, tp: TopicPartitionKey, committed: CommittedOffset
) -> Entry:
    """One pending offset's record in the offsets log."""
    return txn_offset_key(producer_id, group, *tp), offset_value(committed)


class PendingTxnOffsets:
    """Producer id -> the offsets its open transaction committed, by group and partition."""

    def __init__(self) -> None:
        self.by_producer: dict[int, dict[GroupPartition, CommittedOffset]] = {}
        self.epochs: dict[int, int] = {}
        """Producer id -> the epoch its offsets were written with (-1: unknown, a log of
        older shoal)."""

    def add(
        self,
        producer: tuple[int, int],
        group: str,
        offsets: dict[TopicPartitionKey, CommittedOffset],
    ) -> None:
        """Remember the offsets of ``producer`` (id, epoch) once their records
        (:meth:`entries_for`) are written."""
        producer_id, epoch = producer
        self.epochs[producer_id] = max(epoch, self.epochs.get(producer_id, -1))
        pending = self.by_producer.setdefault(producer_id, {})
        for tp, committed in offsets.items():
            pending[(group, tp)] = committed

    @staticmethod
    def entries_for(
        producer_id: int, group: str, offsets: dict[TopicPartitionKey, CommittedOffset]
    ) -> list[Entry]:
        """The records to log for pending offsets."""
        return [_entry(producer_id, group, tp, committed) for tp, committed in offsets.items()]

    def end(self, producer_id: int) -> dict[GroupPartition, CommittedOffset]:
        """The transaction ended: its offsets, to apply (commit) or forget (abort)."""
        self.epochs.pop(producer_id, None)
        return self.by_producer.pop(producer_id, {})

    def is_pending(self, group: str, tp: TopicPartitionKey) -> bool:
        return any((group, tp) in pending for pending in self.by_producer.values())

    def entries(self) -> dict[tuple[int, int], list[Entry]]:
        """Every pending offset as log records by (producer id, epoch), for a snapshot of the
        offsets log."""
        return {
            (pid, self.epochs.get(pid, -1)): [
                _entry(pid, group, tp, committed) for (group, tp), committed in pending.items()
            ]
            for pid, pending in self.by_producer.items()
        }
