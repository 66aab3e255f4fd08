"""Idempotent-producer state of every partition, kept across restarts.

Where the state lives: in memory, one :class:`PartitionProducers` per partition log, and on disk
in two places that together rebuild it exactly:

- the log itself: every batch header carries producer id, epoch and sequences;
- a snapshot (side file ``producer-state`` in the partition's directory) of the state as of
  some log offset, written every :data:`SNAPSHOT_INTERVAL_BATCHES` batches or
  :data:`SNAPSHOT_INTERVAL_BYTES` bytes appended, whichever comes first.

Rebuilding (on the first append to a partition after start-up): load the snapshot, then replay
the headers of the batches after its offset. A SIGKILL between append and acknowledgement leaves
the batch in the log (the page cache survives), so the replay finds it and the client's retry is
answered as a duplicate with the original offsets instead of being appended again.

The bound on start-up work: start-up itself does none of it; each partition is rebuilt on the
event loop at its first append, replaying the headers of at most about
:data:`SNAPSHOT_INTERVAL_BATCHES` batches or :data:`SNAPSHOT_INTERVAL_BYTES` of log (plus what was
appended while the last snapshot was being written). A header costs about 10 us to walk and
replay, so that is at most about 0.1 s, and milliseconds for the usual batches of kilobytes.
Without
a usable snapshot (first start of a directory written before snapshots existed, damaged snapshot,
or a snapshot newer than the log after a power loss) the replay covers the last
:data:`REPLAY_BYTES_WITHOUT_SNAPSHOT` of the log: producers seen only before that are forgotten,
which is safe for crash retries as long as the batches a client may still retry are among the
newest ones (up to five requests per producer and partition, each retried within
``delivery.timeout.ms``). That fallback is rare and costs at worst (batches of one small record)
a few seconds once. Producer ids silent for ``producer.id.expiration.ms`` (1 day) are forgotten
too, as in Kafka.

Transactions (:mod:`shoal.coordinator.partition_txns`) are rebuilt the same way: the snapshot
holds the open transactions (each one's first offset) and the aborted ranges, the replay
applies the transactional batches and markers after it. This is shoal's form of Kafka's
per-segment ``.txnindex``: as durable (the markers are in the fsynced log, the snapshot is
replaced atomically) and trimmed with retention, but kept as one list per partition. Without
a usable snapshot, the transaction part of the replay walks the headers of the whole log, not
just its newest bytes, because an aborted range is never safe to forget while its records
remain.

A snapshot newer than the log must not survive: if the lost tail were re-filled past the
snapshot's offset, the next start-up would trust a state describing batches that no longer
exist. So the rebuild replaces such a snapshot before the partition accepts an append.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Final

from shoal.buffers import Buffer
from shoal.clock import Clock
from shoal.coordinator.offsets_log import OFFSETS_TOPIC
from shoal.coordinator.partition_txns import PartitionTxns
from shoal.coordinator.producer_ids import ProducerIdAllocator
from shoal.coordinator.producer_snapshot import decode_snapshot, encode_snapshot
from shoal.coordinator.producer_state import (
    APPEND,
    PRODUCER_ID_EXPIRATION_MS,
    PRODUCERS_MAX,
    BatchMetadata,
    PartitionProducers,
    Verdict,
)
from shoal.records.control import transaction_marker
from shoal.records.errors import RecordsError
from shoal.records.header import BatchHeader
from shoal.storage import AppendInfo, LogClosedError, LogManager, PartitionLog, StorageError
from shoal.storage.fs import FileSystem

log = logging.getLogger(__name__)

SNAPSHOT_FILE: Final = "producer-state"
SNAPSHOT_INTERVAL_BATCHES: Final = 10_000
"""Appended batches between snapshots: a replay walks at most about this many headers (~0.1 s at
worst), while snapshots stay rare next to the appends' own fsyncs."""
SNAPSHOT_INTERVAL_BYTES: Final = 16 * 1024 * 1024
"""Appended bytes between snapshots: bounds what a replay reads when batches are large."""
REPLAY_BYTES_WITHOUT_SNAPSHOT: Final = 32 * 1024 * 1024
"""Log replayed when there is no usable snapshot: the newest batches, where those a client may
still retry are; twice the snapshot interval, so a rare fallback stays bounded too."""


@dataclass
class _Partition:
    log: PartitionLog
    state: PartitionProducers
    txns: PartitionTxns
    bytes_since_snapshot: int = 0
    batches_since_snapshot: int = 0
    snapshot_in_flight: threading.Event = field(default_factory=threading.Event)
    """Set while a snapshot is being written (on a worker thread): one at a time, in order."""


class SnapshotJob:
    """A snapshot to write off the event loop: call :meth:`run` on a worker thread."""

    def __init__(self, partition: _Partition, payload: bytes, log_offset: int) -> None:
        self._partition = partition
        self.payload = payload
        self.log_offset = log_offset

    def run(self) -> None:
        plog = self._partition.log
        try:
            plog.write_side_file(SNAPSHOT_FILE, self.payload)
        except LogClosedError:
            pass  # the partition was closed or deleted meanwhile: nothing left to speed up
        except StorageError as exc:
            # Not fatal: the previous snapshot stays valid, start-up just replays more.
            log.warning("%s: could not save the producer-state snapshot: %s", plog.name, exc)
        finally:
            self._partition.snapshot_in_flight.clear()


class Producers:
    """The broker's idempotence coordinator: producer ids and every partition's state.

    Called from the broker's event loop only (except :meth:`SnapshotJob.run`), so that the
    check, the append and :meth:`on_append` of one batch happen with no other append between.
    """

    def __init__(
        self,
        fs: FileSystem,
        logs: LogManager,
        clock: Clock,
        *,
        snapshot_interval_batches: int = SNAPSHOT_INTERVAL_BATCHES,
        snapshot_interval_bytes: int = SNAPSHOT_INTERVAL_BYTES,
        replay_bytes_without_snapshot: int = REPLAY_BYTES_WITHOUT_SNAPSHOT,
        producers_max: int = PRODUCERS_MAX,
        expiration_ms: int = PRODUCER_ID_EXPIRATION_MS,
    ) -> None:
        self.ids = ProducerIdAllocator(fs, logs.path, clock, fail_directory=logs.health.fail)
        self._clock = clock
        self._snapshot_interval_batches = snapshot_interval_batches
        self._snapshot_interval_bytes = snapshot_interval_bytes
        self._replay_bytes_without_snapshot = replay_bytes_without_snapshot
        self._producers_max = producers_max
        self._expiration_ms = expiration_ms
        self._partitions: dict[tuple[str, int], _Partition] = {}

    def state(self, topic: str, partition: int, plog: PartitionLog) -> PartitionProducers:
        """The partition's state, rebuilt from snapshot and log on first use (or when the log
        object changed: the topic was deleted and created again). Raises :class:`StorageError`
        if the log cannot be read; the next call tries again."""
        return self._partition(topic, partition, plog).state

    def txns(self, topic: str, partition: int, plog: PartitionLog) -> PartitionTxns:
        """The partition's open and aborted transactions (rebuilt like :meth:`state`)."""
        return self._partition(topic, partition, plog).txns

    def loaded_txns(self, topic: str, partition: int, plog: PartitionLog) -> PartitionTxns | None:
        """The partition's transactions if its state is loaded, else None (never rebuilds:
        for readers that can do without, such as a read_uncommitted Fetch reporting the LSO)."""
        entry = self._partitions.get((topic, partition))
        return entry.txns if entry is not None and entry.log is plog else None

    def check(
        self,
        topic: str,
        partition: int,
        plog: PartitionLog,
        header: BatchHeader,
        batch: Buffer,
    ) -> Verdict:
        """May this batch be appended? Batches without a producer id always may. A transaction
        marker (``batch``, only the broker writes one: its own coordinator's or an operator's
        through WriteTxnMarkers) is checked as Kafka's ProducerAppendInfo checks it, whoever
        wrote it: an older producer epoch or an older coordinator epoch than the partition's
        last for that producer is refused (:meth:`PartitionProducers.check_marker`)."""
        state = self.state(topic, partition, plog)
        if not header.has_producer_id:
            return APPEND
        if header.is_control:
            marker = transaction_marker(batch)
            if marker is None:
                return APPEND
            refused = state.check_marker(
                header.producer_id, header.producer_epoch, marker.coordinator_epoch
            )
            return APPEND if refused is None else refused
        if topic == OFFSETS_TOPIC or header.base_sequence < 0:
            # The group coordinator's records of a TxnOffsetCommit (only the broker writes to
            # __consumer_offsets; a batch with a producer id and no sequence is one that older
            # shoal wrote: clients' are refused by the records layer), checked as Kafka checks
            # its coordinators' batches (append origin COORDINATOR): the producer epoch only,
            # not the sequence (each batch starts at 0).
            refused = state.check_epoch(header.producer_id, header.producer_epoch)
            return APPEND if refused is None else refused
        return state.check(
            header.producer_id, header.producer_epoch, header.base_sequence, header.last_sequence
        )

    def on_append(
        self,
        topic: str,
        partition: int,
        plog: PartitionLog,
        header: BatchHeader,
        info: AppendInfo,
        batch: Buffer,
    ) -> SnapshotJob | None:
        """Record an appended batch; returns a snapshot to write when one is due."""
        entry = self._partition(topic, partition, plog)
        if header.is_control:
            marker = transaction_marker(batch)  # validated by its writer, the broker
            if marker is not None:
                entry.state.record_marker(
                    header.producer_id,
                    header.producer_epoch,
                    self._clock.now_ms(),
                    marker.coordinator_epoch,
                    header.max_timestamp,
                )
                entry.txns.on_marker(header.producer_id, marker.commit, info.base_offset)
        elif header.has_producer_id and header.base_sequence < 0:
            entry.state.record_epoch(
                header.producer_id,
                header.producer_epoch,
                self._clock.now_ms(),
                header.max_timestamp,
            )
        elif header.has_producer_id:
            if header.is_transactional:
                entry.txns.on_transactional_batch(header.producer_id, info.base_offset)
            appended = BatchMetadata(
                header.base_sequence,
                header.last_sequence,
                info.base_offset,
                info.last_offset,
                header.max_timestamp,
            )
            entry.state.record(
                header.producer_id, header.producer_epoch, appended, self._clock.now_ms()
            )
        entry.bytes_since_snapshot += header.size
        entry.batches_since_snapshot += 1
        due = (
            entry.bytes_since_snapshot >= self._snapshot_interval_bytes
            or entry.batches_since_snapshot >= self._snapshot_interval_batches
        )
        if not due or entry.snapshot_in_flight.is_set():
            return None
        entry.state.expire(self._clock.now_ms())
        entry.txns.trim(plog.log_start_offset)
        entry.bytes_since_snapshot = entry.batches_since_snapshot = 0
        entry.snapshot_in_flight.set()
        offset = plog.log_end_offset
        return SnapshotJob(entry, encode_snapshot(entry.state, offset, entry.txns), offset)

    def forget(self, topic: str, partition: int) -> None:
        """Drop a partition's state once its log is deleted, to free the memory (correctness
        does not need it: a re-created partition has a new log object and is rebuilt)."""
        self._partitions.pop((topic, partition), None)

    # -- rebuilding -----------------------------------------------------------------------

    def _partition(self, topic: str, partition: int, plog: PartitionLog) -> _Partition:
        key = (topic, partition)
        entry = self._partitions.get(key)
        if entry is None or entry.log is not plog:
            entry = self._rebuild(plog)
            self._partitions[key] = entry
        return entry

    def _rebuild(self, plog: PartitionLog) -> _Partition:
        now_ms = self._clock.now_ms()
        state = PartitionProducers(
            producers_max=self._producers_max, expiration_ms=self._expiration_ms
        )
        txns = PartitionTxns()
        raw = plog.read_side_file(SNAPSHOT_FILE)
        snapshot = decode_snapshot(raw) if raw is not None else None
        end = plog.log_end_offset
        stale = snapshot is not None and snapshot.log_offset > end
        if snapshot is not None and not stale:
            snapshot.restore_into(state, txns)
            start = walk_from = snapshot.log_offset
        else:
            start = plog.offset_before_end(self._replay_bytes_without_snapshot)
            # Transactions are not forgotten like old producers: an aborted range anywhere in
            # the log must stay hidden from read_committed readers, and a transaction left
            # open must hold the last stable offset. So without a snapshot the whole log's
            # headers are walked for them (headers only, and only in this rare case).
            walk_from = plog.log_start_offset
        replayed_bytes = replayed_batches = 0
        for header in plog.headers_from(walk_from):
            replayed_bytes += header.size
            replayed_batches += 1
            if header.is_control:
                self._replay_marker(
                    plog, header, state if header.last_offset >= start else None, txns, now_ms
                )
                continue
            if header.has_producer_id and header.is_transactional:
                txns.on_transactional_batch(header.producer_id, header.base_offset)
            # A batch that straddles ``start`` counts: DeleteRecords may put the log start
            # (where the walk starts without a snapshot) inside a batch its producer may still
            # retry (found by tests/simulation: the retry was stored twice after a restart).
            # A producer's batch without sequence is older shoal's group coordinator's (see check).
            if header.last_offset < start or not header.has_producer_id:
                continue
            if header.base_sequence < 0:
                state.record_epoch(
                    header.producer_id, header.producer_epoch, now_ms, header.max_timestamp
                )
            else:
                batch = BatchMetadata(
                    header.base_sequence,
                    header.last_sequence,
                    header.base_offset,
                    header.last_offset,
                    header.max_timestamp,
                )
                # Replayed producers count as active now: their batches are the newest in the
                # log, and a client may be about to retry one.
                state.record(header.producer_id, header.producer_epoch, batch, now_ms)
        state.expire(now_ms)
        txns.trim(plog.log_start_offset)
        entry = _Partition(plog, state, txns, replayed_bytes, replayed_batches)
        if stale:
            plog.write_side_file(SNAPSHOT_FILE, encode_snapshot(state, plog.log_end_offset, txns))
            entry.bytes_since_snapshot = entry.batches_since_snapshot = 0
        log.info(
            "%s: producer state rebuilt (%s, %d batches replayed from offset %d): %d producers",
            plog.name,
            "snapshot newer than the log, replaced"
            if stale
            else ("from snapshot" if snapshot is not None else "no snapshot"),
            replayed_batches,
            start,
            len(state),
        )
        return entry

    @staticmethod
    def _replay_marker(
        plog: PartitionLog,
        header: BatchHeader,
        state: PartitionProducers | None,
        txns: PartitionTxns,
        now_ms: int,
    ) -> None:
        """A control batch met in the replay: its record says COMMIT or ABORT (a marker
        batch is tiny, so reading it whole costs one small read)."""
        if not header.has_producer_id:
            return
        data = plog.read(header.base_offset, header.size).data
        try:
            marker = transaction_marker(memoryview(data)[: header.size])
        except RecordsError as exc:
            # CRC-checked at recovery, so a bug rather than damage; the log is still served.
            log.error("%s: unreadable control batch at %d: %s", plog.name, header.base_offset, exc)
            return
        if marker is not None:
            if state is not None:
                state.record_marker(
                    header.producer_id,
                    header.producer_epoch,
                    now_ms,
                    marker.coordinator_epoch,
                    header.max_timestamp,
                )
            txns.on_marker(header.producer_id, marker.commit, header.base_offset)
