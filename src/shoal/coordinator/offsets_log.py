"""The ``__consumer_offsets`` log: committed offsets and group metadata as keyed records.

Every change is one record, appended through :mod:`shoal.storage` like any partition's data:

- offset commit: key ``{"k": "offset", "group", "topic", "partition"}``, value
  ``{"offset", "epoch", "metadata", "ts"}``; a null value (tombstone) deletes the offset;
- group metadata: key ``{"k": "group", "group"}``, value ``{"type", "generation",
  "protocol"}``; a tombstone deletes the group.
- a KIP-848 consumer group: key ``{"k": "consumer_group", "group"}``, value the whole group
  (:mod:`shoal.coordinator.consumer_group_record`); a tombstone deletes it.
- a group's configs (the GROUP config resource): key ``{"k": "group_config", "group"}``,
  value ``{name: value}``; a tombstone (or an empty value) clears them.

Keys and values are JSON (sorted keys, so equal keys are equal bytes): the state is small next
to the data logs, and anyone can read it with a consumer. Start-up replays the log from its
start; the last record of a key wins.

The log must not grow without bound. When it passes ``offsets_snapshot_bytes`` (and twice the
size of the last snapshot, so a large state does not snapshot in a loop), the whole current
state is appended again as a snapshot and, once that is durable, everything before it is
deleted (``delete_records``: whole segments go, which is why this log has small segments).
A crash at any point is safe: until the deletion, the older records are still there and
the snapshot only repeats what they say; after it, the snapshot alone says it all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Final

from shoal.clock import Clock
from shoal.coordinator.group_config import GroupConfig
from shoal.coordinator.keyed_log import Marker, keyed_entries
from shoal.coordinator.producer_state import Rejected
from shoal.protocol.errors import ErrorCode
from shoal.records import NO_SEQUENCE, SimpleRecord, build_batch
from shoal.records.control import build_control_batch
from shoal.storage import AppendInfo, LogConfig, PartitionLog, StorageError

log = logging.getLogger(__name__)

OFFSETS_TOPIC: Final = "__consumer_offsets"
RECORDS_PER_BATCH_MAX: Final = 1000
"""A commit of many partitions is split into batches of this many records: a batch stays far
below any size limit (a record is ~150 bytes), and replay decodes one batch at a time."""

TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp_ms: int = -1


@dataclass(frozen=True, slots=True)
class GroupRecord:
    protocol_type: str | None
    generation_id: int
    protocol_name: str | None


@dataclass
class ReplayedState:
    groups: dict[str, GroupRecord]
    offsets: dict[str, dict[TopicPartitionKey, CommittedOffset]]
    consumer_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    """KIP-848 groups by id: each the document of consumer_group_record."""
    group_configs: dict[str, dict[str, str]] = field(default_factory=dict)
    # Transactional offset commits (issue 14, transactions slice; see txn_offsets).
    pending: dict[int, dict[tuple[str, TopicPartitionKey], CommittedOffset]] = field(
        default_factory=dict
    )
    pending_epochs: dict[int, int] = field(default_factory=dict)
    """Producer id -> the epoch of its pending offsets' batches (-1 in logs of older shoal)."""


def _end_txn(state: ReplayedState, producer_id: int, commit: bool) -> None:
    state.pending_epochs.pop(producer_id, None)
    ended = state.pending.pop(producer_id, {})
    if commit:
        for (group_id, tp), committed in ended.items():
            state.offsets.setdefault(group_id, {})[tp] = committed


EPOCH_REFUSALS: Final = frozenset(
    {
        ErrorCode.INVALID_PRODUCER_EPOCH,
        ErrorCode.PRODUCER_FENCED,
        ErrorCode.TRANSACTION_COORDINATOR_FENCED,
    }
)
"""The broker's refusals of a batch of this log that are :class:`BatchRefused` (answered as
such); any other refusal (a storage failure) is a plain :class:`StorageError`."""


class BatchRefused(StorageError):
    """The broker's append refused a batch of this log: a transaction's offsets or marker
    from a producer epoch (or coordinator epoch) older than the partition's
    (:data:`EPOCH_REFUSALS`). Nothing was written; ``refused.error_code`` is the answer Kafka
    gives."""

    def __init__(self, refused: Rejected) -> None:
        super().__init__(refused.message)
        self.refused = refused


def offsets_log_config(base: LogConfig, config: GroupConfig) -> LogConfig:
    """The log settings of ``__consumer_offsets``: the broker's durability, no retention
    (the snapshot is what bounds it) and small segments."""
    return LogConfig(
        segment_bytes=config.offsets_segment_bytes,
        segment_ms=base.segment_ms,
        index_interval_bytes=base.index_interval_bytes,
        retention_bytes=-1,
        retention_ms=-1,
        flush_policy=base.flush_policy,
        flush_interval_ms=base.flush_interval_ms,
        checkpoint_interval_ms=base.checkpoint_interval_ms,
    )


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def offset_key(group: str, topic: str, partition: int) -> bytes:
    return _dump({"k": "offset", "group": group, "topic": topic, "partition": partition})


def offset_value(committed: CommittedOffset) -> bytes:
    return _dump(
        {
            "offset": committed.offset,
            "epoch": committed.leader_epoch,
            "metadata": committed.metadata,
            "ts": committed.commit_timestamp_ms,
        }
    )


def group_key(group: str) -> bytes:
    return _dump({"k": "group", "group": group})


def consumer_group_key(group: str) -> bytes:
    return _dump({"k": "consumer_group", "group": group})


def consumer_group_value(document: dict[str, Any]) -> bytes:
    return _dump(document)


def group_config_key(group: str) -> bytes:
    return _dump({"k": "group_config", "group": group})


def group_config_value(configs: dict[str, str]) -> bytes:
    return _dump(configs)


def group_value(record: GroupRecord) -> bytes:
    return _dump(
        {
            "type": record.protocol_type,
            "generation": record.generation_id,
            "protocol": record.protocol_name,
        }
    )


def _committed(value: dict[str, Any]) -> CommittedOffset:
    return CommittedOffset(
        int(value["offset"]), int(value["epoch"]), str(value["metadata"]), int(value["ts"])
    )


Entry = tuple[bytes, bytes | None]
"""One record to write: key and value (None for a tombstone)."""

BatchWriter = Callable[[bytes], AppendInfo]
"""Appends one batch to the offsets log: the broker's append operation (which also wakes Fetch
requests parked on the log), or ``plog.append`` where there is no broker (unit tests). Raises
:class:`shoal.storage.StorageError` when the batch could not be written."""


class OffsetsLog:
    def __init__(
        self, plog: PartitionLog, config: GroupConfig, clock: Clock, write: BatchWriter
    ) -> None:
        self.plog = plog
        self._write = write
        self._config = config
        self._clock = clock
        self._snapshot_bytes = 0
        self._snapshot_in_flight = False

    # -- writing --------------------------------------------------------------------------

    def append(
        self, entries: Iterable[Entry], producer: tuple[int, int] | None = None
    ) -> Future[None] | None:
        """Append records (in batches); returns the future of their durability, or None if
        there was nothing to write. Raises :class:`shoal.storage.StorageError` if the write
        fails, in which case nothing after the failed batch was written.

        ``producer`` (id, epoch): records of that producer's transaction (TxnOffsetCommit's).
        Their batches are transactional and carry the id, the epoch and base sequence 0, as
        Kafka's group coordinator writes them (CoordinatorRuntime's MemoryRecordsBuilder): the
        partition's producer state knows the producer's epoch and checks the transaction's
        marker against it (:meth:`append_marker`), the open transaction holds the partition's
        last stable offset, and DescribeProducers shows it. The sequence is not checked (the
        coordinator's own writes, Kafka's append origin COORDINATOR); a batch from an epoch
        older than the partition's raises :class:`BatchRefused`."""
        producer_id, producer_epoch = (-1, -1) if producer is None else producer
        transactional = producer is not None
        records = [SimpleRecord(key, value) for key, value in entries]
        last = None
        now = self._clock.now_ms()
        for start in range(0, len(records), RECORDS_PER_BATCH_MAX):
            chunk = records[start : start + RECORDS_PER_BATCH_MAX]
            batch = build_batch(
                chunk,
                base_timestamp=now,
                producer_id=producer_id,
                producer_epoch=producer_epoch,
                base_sequence=0 if transactional else NO_SEQUENCE,
                transactional=transactional,
            )
            info = self._write(batch)
            last = info.last_offset
        if last is None:
            return None
        return self.plog.wait_durable(last)

    def append_marker(
        self, producer_id: int, producer_epoch: int, coordinator_epoch: int, commit: bool
    ) -> Future[None]:
        """Append the COMMIT or ABORT marker of the producer's transaction (a control batch,
        as Kafka writes it here); returns its durability. The broker's append checks it as
        any partition's marker: :class:`BatchRefused` for an older producer epoch
        (INVALID_PRODUCER_EPOCH) or coordinator epoch (TRANSACTION_COORDINATOR_FENCED), and
        then nothing was written. Raises :class:`shoal.storage.StorageError` otherwise."""
        batch = build_control_batch(
            producer_id,
            producer_epoch,
            commit=commit,
            coordinator_epoch=coordinator_epoch,
            timestamp=self._clock.now_ms(),
        )
        info = self._write(batch)
        return self.plog.wait_durable(info.last_offset)

    # -- replay ---------------------------------------------------------------------------

    def replay(self) -> ReplayedState:
        state = ReplayedState({}, {})
        for entry in keyed_entries(self.plog):
            if isinstance(entry, Marker):
                _end_txn(state, entry.producer_id, entry.commit)
                continue
            key, value, epoch = entry
            try:
                decoded = None if value is None else json.loads(value)
                self._apply(state, json.loads(key), decoded, epoch)
            except (ValueError, KeyError, TypeError) as exc:
                # Written by shoal itself, so this is damage or a future format; skip the record
                # rather than refuse to start, and say so.
                log.error("skipping an unreadable record in %s: %s", OFFSETS_TOPIC, exc)
        return state

    @staticmethod
    def _apply(
        state: ReplayedState, key: dict[str, Any], value: dict[str, Any] | None, epoch: int
    ) -> None:
        if key["k"] == "snapshot":
            return
        if key["k"] == "txn-end" and value is not None:  # written by shoal before markers
            _end_txn(state, int(key["pid"]), bool(value["commit"]))
            return
        group = str(key["group"])
        if key["k"] == "txn-offset" and value is not None:
            tp = (str(key["topic"]), int(key["partition"]))
            state.pending.setdefault(int(key["pid"]), {})[(group, tp)] = _committed(value)
            state.pending_epochs[int(key["pid"])] = epoch
            return
        if key["k"] == "offset":
            tp = (str(key["topic"]), int(key["partition"]))
            offsets = state.offsets.setdefault(group, {})
            if value is None:
                offsets.pop(tp, None)
                if not offsets:
                    del state.offsets[group]
            else:
                offsets[tp] = _committed(value)
        elif key["k"] == "group_config":
            if value:
                state.group_configs[group] = {str(k): str(v) for k, v in value.items()}
            else:
                state.group_configs.pop(group, None)
        elif key["k"] == "consumer_group":
            if value is None:
                state.consumer_groups.pop(group, None)
            else:
                state.consumer_groups[group] = value
        elif key["k"] == "group":
            if value is None:
                state.groups.pop(group, None)
            else:
                state.groups[group] = GroupRecord(
                    value["type"], int(value["generation"]), value["protocol"]
                )

    # -- snapshots ------------------------------------------------------------------------

    def snapshot_due(self) -> bool:
        if self._snapshot_in_flight:
            return False
        threshold = max(self._config.offsets_snapshot_bytes, 2 * self._snapshot_bytes)
        return self.plog.size_bytes > threshold

    def write_snapshot(
        self, entries: list[Entry], pending: Mapping[tuple[int, int], list[Entry]] | None = None
    ) -> tuple[Future[None], int] | None:
        """Append the whole state; returns (durability, first offset of the snapshot).
        ``pending``: the open transactions' offsets by (producer id, epoch), written in
        batches that carry them, as when they were committed (:meth:`append`).

        Call :meth:`finish_snapshot` with that offset once the future is done.
        """
        first = self.plog.log_end_offset
        before = self.plog.size_bytes
        durable = self.append(entries)
        for producer, producer_entries in (pending or {}).items():
            written = self.append(producer_entries, producer if producer[1] >= 0 else None)
            durable = durable if written is None else written
        if durable is None:
            # Nothing to keep: an empty snapshot is a marker record, so the deletion below has
            # an offset to cut at.
            durable = self.append([(_dump({"k": "snapshot"}), None)])
        if durable is None:  # pragma: no cover - append of one record returns a future
            return None
        self._snapshot_in_flight = True
        self._snapshot_bytes = self.plog.size_bytes - before
        return durable, first

    def finish_snapshot(self, first_offset: int) -> None:
        """Delete everything before the (durable) snapshot; blocking file work."""
        try:
            self.plog.delete_records(first_offset)
        finally:
            self._snapshot_in_flight = False

    def abandon_snapshot(self) -> None:
        self._snapshot_in_flight = False
