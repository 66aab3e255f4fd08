"""Log compaction: one clean of one partition log, as Apache Kafka's log cleaner does it.

A compacted log keeps, for each key, at least its latest record. The log is seen as three
parts (Kafka's ``LogToClean``)::

    log start        first dirty offset           first uncleanable offset      log end
       |  clean (already compacted)  |  dirty (cleanable)  |  uncleanable (active segment,
       |                             |                     |  younger than min.compaction.lag.ms)

One clean:

1. **Map** (:func:`build_offset_map`): read the dirty part in offset order and record each key's
   latest offset in a bounded :class:`~shoal.storage.offset_map.OffsetMap`. When the map is full
   the clean covers only what was mapped; the next clean continues from there.
2. **Rewrite**: every segment from the log start to the end of the map, grouped so that
   consecutive small segments merge into one (together at most ``segment.bytes``), is rewritten
   batch by batch (:func:`filter_batch`) into a new segment beside the old ones, which then takes
   their place (:mod:`shoal.storage.swap`, crash-safe). A record stays when it is the latest of
   its key, or lies past the map; a tombstone (null value) stays until its batch's delete horizon
   (``delete.retention.ms`` after the clean that first kept it) has passed; a record without a
   key goes. Batches keep their offsets, producer fields and timestamps (see
   :mod:`shoal.records.rewrite`); the last batch of a producer still in the producer state
   stays, even emptied, so idempotent producer state rebuilds the same. A producer silent for
   ``producer.id.expiration.ms`` is no longer in that state (Kafka's
   ``ProducerStateManager.removeExpiredProducers``), so its batches are cleaned like any others
   (:func:`active_producers`).
3. **Checkpoint**: the end of the map becomes the next first dirty offset.

Transaction markers and aborted transactions follow :mod:`shoal.storage.cleaner_txn`.

This module runs on the cleaner's thread (:mod:`shoal.storage.cleaner_thread`), never on the
event loop: it reads and writes files and may sleep to honour the I/O throttle. A clean is
planned there (:func:`plan_clean`) and executed (:func:`execute_clean`) either there too or, in
the broker, in the cleaner's own process (:mod:`shoal.storage.cleaner_process`), which writes
into a :class:`CleanTarget` that has the thread swap each group in.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Final, Protocol

from shoal.records.errors import RecordsError
from shoal.records.header import BatchHeader, read_header
from shoal.records.reader import iter_records
from shoal.records.record import Record
from shoal.records.rewrite import delete_horizon_ms, rebuild_batch, rebuild_empty
from shoal.storage.cleaner_txn import (
    LogTransactions,
    NoTransactionCleaning,
    OpenTransactionScan,
    TransactionCleaning,
    read_log_transactions,
)
from shoal.storage.errors import StorageError
from shoal.storage.index import MAX_RELATIVE
from shoal.storage.log import CLEANER_CHECKPOINT_FILE, PartitionLog
from shoal.storage.offset_map import OffsetMap
from shoal.storage.segment import Segment

log = logging.getLogger(__name__)

MAX_DECODED_BATCH_BYTES: Final = 64 * 1024 * 1024
"""Bound on one batch's decompressed size while cleaning (a stored batch passed the produce
limits, so this only guards against damage)."""
_CHECKPOINT: Final = struct.Struct(">q")
PRODUCER_ID_EXPIRATION_MS_DEFAULT: Final = 24 * 3600 * 1000
"""Kafka's producer.id.expiration.ms default (1 day): a producer whose last batch is older than
this, with no transaction open, has left the producer state."""


class CleanAborted(Exception):
    """The clean stopped before its end (shutdown, or the log changed under it); nothing of it
    was swapped in past the last completed group."""


@dataclass(frozen=True, slots=True)
class Cleanable:
    """Where a log stands for compaction (Kafka's LogToClean)."""

    first_dirty: int
    first_uncleanable: int
    clean_bytes: int
    dirty_bytes: int
    due_by_max_lag: bool
    """A dirty segment is older than max.compaction.lag.ms: clean whatever the ratio."""

    @property
    def dirty_ratio(self) -> float:
        total = self.clean_bytes + self.dirty_bytes
        return self.dirty_bytes / total if total else 0.0


@dataclass
class CleanStats:
    """What cleans did, for logs and metrics (counters only grow)."""

    bytes_read: int = 0
    bytes_written: int = 0
    batches_read: int = 0
    records_read: int = 0
    records_kept: int = 0
    segments_replaced: int = 0


@dataclass
class CleanContext:
    """What one clean of one log needs besides the log."""

    now_ms: int
    offset_map: OffsetMap
    transactions: TransactionCleaning = field(default_factory=NoTransactionCleaning)
    """Replaced by :func:`clean` with what it reads of the log's transactions."""
    delete_retention_ms: int = 24 * 3600 * 1000
    """The log's delete.retention.ms when the clean started."""
    producer_id_expiration_ms: int = PRODUCER_ID_EXPIRATION_MS_DEFAULT
    """The broker's producer.id.expiration.ms: whose last batch the clean must keep."""
    throttle: Callable[[int], None] = lambda _bytes: None
    """Called with every byte count read or written: sleeps to honour the I/O rate."""
    should_stop: Callable[[], bool] = lambda: False
    stats: CleanStats = field(default_factory=CleanStats)


# -- the checkpoint ------------------------------------------------------------------------


def read_cleaner_checkpoint(plog: PartitionLog) -> int | None:
    payload = plog.read_side_file(CLEANER_CHECKPOINT_FILE)
    if payload is None or len(payload) != _CHECKPOINT.size:
        return None
    offset: int = _CHECKPOINT.unpack(payload)[0]
    return offset


def write_cleaner_checkpoint(plog: PartitionLog, offset: int) -> None:
    plog.write_side_file(CLEANER_CHECKPOINT_FILE, _CHECKPOINT.pack(offset))


# -- what is cleanable ---------------------------------------------------------------------


def spans(segments: list[Segment], end: int) -> list[tuple[Segment, int]]:
    """Each segment with the offset where the next begins (its span includes any gap)."""
    ends = [s.base_offset for s in segments[1:]] + [end]
    return list(zip(segments, ends[: len(segments)], strict=True))


def assess(
    plog: PartitionLog,
    checkpoint: int | None,
    now_ms: int,
    scan: OpenTransactionScan | None = None,
) -> Cleanable:
    """The log's clean, dirty and uncleanable parts now (Kafka's LogCleanerManager rules).

    ``scan``: the log's scan for open transactions kept from the last look (the cleaner
    thread keeps one per log), so that only what was appended since is walked."""
    config = plog.config
    segments, log_start, limit = plog.cleanable_segments()
    # A checkpoint outside the log (it was truncated, or records deleted) restarts from the
    # log start, as Kafka does.
    first_dirty = checkpoint if checkpoint is not None and log_start <= checkpoint else log_start
    uncleanable = [limit]
    unstable = (scan or OpenTransactionScan()).first_unstable_offset(plog.headers_from, first_dirty)
    if unstable is not None:
        # Never clean at or past an open transaction's first record: if it aborts, the
        # committed values before it must still be there (Kafka's firstUncleanableOffset).
        uncleanable.append(unstable)
    if config.min_compaction_lag_ms > 0:
        for segment, end in spans(segments, limit):
            if end > first_dirty and segment.max_timestamp > now_ms - config.min_compaction_lag_ms:
                uncleanable.append(segment.base_offset)
                break
    first_uncleanable = max(min(uncleanable), log_start)
    first_dirty = min(first_dirty, first_uncleanable)
    clean_bytes = dirty_bytes = 0
    earliest_dirty: Segment | None = None
    for segment, end in spans(segments, limit):
        if end <= first_dirty:
            clean_bytes += segment.size
        elif end <= first_uncleanable:
            dirty_bytes += segment.size
            earliest_dirty = earliest_dirty or segment
    due = False
    if config.max_compaction_lag_ms < 2**63 - 1 and earliest_dirty is not None:
        first_timestamp = earliest_dirty.first_batch_timestamp()
        due = 0 <= first_timestamp < now_ms - config.max_compaction_lag_ms
    return Cleanable(first_dirty, first_uncleanable, clean_bytes, dirty_bytes, due)


def is_due(cleanable: Cleanable, min_ratio: float) -> bool:
    if cleanable.dirty_bytes == 0:
        return False
    return cleanable.due_by_max_lag or cleanable.dirty_ratio >= min_ratio


# -- one clean -----------------------------------------------------------------------------


class CleanTarget(Protocol):
    """Where a clean writes: the log itself (a clean on the cleaner's thread), or the cleaner's
    own process (:mod:`shoal.storage.cleaner_process`), which writes the cleaned segments and
    asks the broker's process to swap each one in."""

    @property
    def name(self) -> str: ...

    def new_cleaned_segment(self, base_offset: int) -> Segment: ...

    def replace_with_cleaned(self, old: list[Segment], new: Segment) -> bool: ...

    def discard_cleaned_segment(self, segment: Segment) -> None: ...


@dataclass(frozen=True, slots=True)
class CleanPlan:
    """What a clean works from, read from the log before the clean starts (header walks only):
    the segments, which of them are dirty, the log's transactions and its active producers."""

    segments: list[Segment]
    dirty: list[Segment]
    first_dirty: int
    first_uncleanable: int
    transactions: LogTransactions
    producers: dict[int, ProducerLast]
    segment_bytes: int


def plan_clean(
    plog: PartitionLog, cleanable: Cleanable, now_ms: int, expiration_ms: int
) -> CleanPlan:
    """Read what a clean of ``plog`` needs (on the caller's thread: no record is decoded)."""
    segments, log_start, limit = plog.cleanable_segments()
    dirty = [
        s
        for s, end in spans(segments, limit)
        if end > cleanable.first_dirty and s.base_offset < cleanable.first_uncleanable
    ]
    # The whole log's transactions: an aborted range or a marker may lie anywhere before the
    # end of the map, and a marker's transaction may have batches in the clean part. The same
    # walk of the headers finds each producer's last batch: one pass on this thread, not two.
    last_batches = ProducersLastBatches()
    transactions = read_log_transactions(plog, log_start, each=last_batches.add)
    # Batches appended after this walk only make the clean keep a batch it could have emptied.
    producers = active_producers(
        last_batches.last,
        open_transactions=transactions.open_first.keys(),
        now_ms=now_ms,
        expiration_ms=expiration_ms,
    )
    return CleanPlan(
        segments,
        dirty,
        cleanable.first_dirty,
        cleanable.first_uncleanable,
        transactions,
        producers,
        plog.config.segment_bytes,
    )


def clean(plog: PartitionLog, cleanable: Cleanable, ctx: CleanContext) -> int:
    """Clean ``plog`` up to what the map can hold; returns the new first dirty offset (the
    caller checkpoints it). Raises :class:`CleanAborted` when stopped or when the log changed
    under the clean, and :class:`StorageError` for damaged data."""
    plan = plan_clean(plog, cleanable, ctx.now_ms, ctx.producer_id_expiration_ms)
    return execute_clean(plog, plan, ctx)


def execute_clean(target: CleanTarget, plan: CleanPlan, ctx: CleanContext) -> int:
    """Map the dirty part of ``plan`` and rewrite its segments group by group into ``target``;
    returns the new first dirty offset."""
    ctx.transactions = plan.transactions
    build_offset_map(plan.dirty, plan.first_dirty, plan.first_uncleanable, ctx)
    end = ctx.offset_map.latest_offset + 1
    if end <= plan.first_dirty:
        return plan.first_dirty
    to_clean = [s for s in plan.segments if s.base_offset < end]
    for group in group_segments(to_clean, plan.segment_bytes):
        clean_group(target, group, plan.producers, ctx)
    return end


def build_offset_map(segments: list[Segment], start: int, stop: int, ctx: CleanContext) -> None:
    """Map each key of the batches in ``[start, stop)`` to its latest offset, until full."""
    offset_map = ctx.offset_map
    offset_map.clear()
    for segment in segments:
        for header, data in _batches(segment, start, ctx):
            if header.base_offset >= stop:
                return
            if header.is_control or ctx.transactions.is_aborted(header):
                offset_map.advance(header.last_offset)
                continue
            for record in _records(segment, header, data):
                offset = header.base_offset + record.offset_delta
                if record.key is None or offset < start:
                    continue
                if not offset_map.room_for(1) and offset_map.get(record.key) < 0:
                    return  # full: the clean ends at the last record mapped
                offset_map.put(record.key, offset)
            offset_map.advance(header.last_offset)


@dataclass(frozen=True, slots=True)
class ProducerLast:
    last_data_offset: int
    """Last offset of the producer's last data batch, -1 if it wrote only markers."""
    epoch: int
    last_timestamp: int
    """maxTimestamp of the producer's last batch, data or marker (Kafka's
    ProducerStateEntry.lastTimestamp, which its expiry is measured from)."""


class ProducersLastBatches:
    """For each producer id in the log, where its last data batch ends and its latest epoch,
    folded from the batch headers of a walk of the whole log (:meth:`add` each, in order).

    Kafka takes this from its producer-state manager; storage knows no producer state, so the
    cleaner walks the batch headers (no record bytes). Batches appended after the walk only
    make the clean keep a batch it could have emptied.
    """

    def __init__(self) -> None:
        self.last: dict[int, ProducerLast] = {}

    def add(self, header: BatchHeader) -> None:
        if not header.has_producer_id:
            return
        if header.is_control:
            previous = self.last.get(header.producer_id)
            data_offset = previous.last_data_offset if previous is not None else -1
        else:
            data_offset = header.last_offset
        self.last[header.producer_id] = ProducerLast(
            data_offset, header.producer_epoch, header.max_timestamp
        )


def active_producers(
    producers: dict[int, ProducerLast],
    *,
    open_transactions: Collection[int],
    now_ms: int,
    expiration_ms: int,
) -> dict[int, ProducerLast]:
    """The producers still in the producer state: Kafka keeps only their last batches
    (``LogCleaner`` takes ``lastRecordsOfActiveProducers``). A producer leaves it when its last
    batch's timestamp is ``expiration_ms`` old and it has no transaction open (Kafka's
    ``isProducerExpired``); from then on a retry of its batches could not be recognised anyway,
    so keeping them would only hold dead bytes forever.

    The broker's own producer state may forget a producer a little earlier or later (it measures
    from the append's arrival); either way is safe: a batch kept longer only costs bytes, and a
    producer the cleaner takes as expired is one the broker treats as new after its next
    restart, which is what expiry means."""
    return {
        pid: last
        for pid, last in producers.items()
        if pid in open_transactions or now_ms - last.last_timestamp < expiration_ms
    }


def group_segments(segments: list[Segment], max_bytes: int) -> Iterator[list[Segment]]:
    """Consecutive segments, together at most ``max_bytes`` and within one segment's offset
    span (Kafka's groupSegmentsBySize): small cleaned segments merge into one."""
    i = 0
    while i < len(segments):
        group = [segments[i]]
        size = segments[i].size
        i += 1
        while i < len(segments):
            candidate = segments[i]
            last = candidate.next_offset - 1
            if size + candidate.size > max_bytes or (
                candidate.size and last - group[0].base_offset > MAX_RELATIVE
            ):
                break
            group.append(candidate)
            size += candidate.size
            i += 1
        yield group


def clean_group(
    plog: CleanTarget,
    group: list[Segment],
    producers: dict[int, ProducerLast],
    ctx: CleanContext,
) -> None:
    """Rewrite ``group`` into one new segment and swap it in."""
    new = plog.new_cleaned_segment(group[0].base_offset)
    try:
        for segment in group:
            for header, data in _batches(segment, segment.base_offset, ctx):
                if ctx.should_stop():
                    raise CleanAborted(f"{plog.name}: clean stopped")
                kept = filter_batch(segment, header, data, producers, ctx)
                if kept is None:
                    continue
                kept_header = header if kept is data else read_header(kept)
                # A cleaned batch keeps the epoch it was written in (the history refers to it).
                new.append(header.base_offset, kept, kept_header, header.partition_leader_epoch)
                ctx.stats.bytes_written += len(kept)
                ctx.throttle(len(kept))
        if not plog.replace_with_cleaned(group, new):
            raise CleanAborted(f"{plog.name}: segments changed during the clean")
        ctx.stats.segments_replaced += len(group)
    except BaseException:
        plog.discard_cleaned_segment(new)
        raise


def filter_batch(
    segment: Segment,
    header: BatchHeader,
    data: bytes,
    producers: dict[int, ProducerLast],
    ctx: CleanContext,
) -> bytes | None:
    """The batch as the clean keeps it: ``data`` itself, a rebuilt batch, or None (removed)."""
    keep_empty = header.has_producer_id and _is_last_of_producer(header, producers)
    if header.is_control:
        # A marker stays while its transaction has a batch in the log; then it gets a delete
        # horizon like a tombstone and goes once that has passed (cleaner_txn).
        if not ctx.transactions.can_discard_marker(header):
            return data
        horizon = delete_horizon_ms(header)
        if horizon is None:
            stamped = ctx.now_ms + ctx.delete_retention_ms
            return rebuild_batch(header, _records(segment, header, data), delete_horizon=stamped)
        if horizon <= ctx.now_ms and not keep_empty:
            return None
        return data
    records = _records(segment, header, data)
    ctx.stats.records_read += len(records)
    if ctx.transactions.is_aborted(header):
        kept: list[Record] = []
    else:
        kept = [r for r in records if _retain(header, r, ctx)]
    ctx.stats.records_kept += len(kept)
    horizon = delete_horizon_ms(header)
    needs_horizon = horizon is None and any(r.value is None for r in kept)
    if len(kept) == len(records) and not needs_horizon:
        return data
    if kept:
        if needs_horizon:
            horizon = ctx.now_ms + ctx.delete_retention_ms
        return rebuild_batch(header, kept, delete_horizon=horizon)
    if keep_empty:
        return rebuild_empty(header)
    return None


def _retain(header: BatchHeader, record: Record, ctx: CleanContext) -> bool:
    """Kafka's Cleaner.shouldRetainRecord."""
    offset = header.base_offset + record.offset_delta
    if offset > ctx.offset_map.latest_offset:
        return True  # past what was mapped: a later clean decides
    if record.key is None:
        return False  # a compacted log has no use for a record without a key
    if offset < ctx.offset_map.get(record.key):
        return False
    if record.value is not None:
        return True
    horizon = delete_horizon_ms(header)
    return horizon is None or ctx.now_ms < horizon


def _is_last_of_producer(header: BatchHeader, producers: dict[int, ProducerLast]) -> bool:
    last = producers.get(header.producer_id)
    if last is None:
        return False
    if last.last_data_offset >= 0:
        return not header.is_control and header.last_offset == last.last_data_offset
    return header.is_control and header.producer_epoch == last.epoch


# -- reading -------------------------------------------------------------------------------


def _batches(
    segment: Segment, start: int, ctx: CleanContext
) -> Iterator[tuple[BatchHeader, bytes]]:
    """Header and bytes of each batch of ``segment`` that ends at or past ``start``."""
    try:
        for position, header in segment.batches_from(max(start, segment.base_offset)):
            data = segment.read_batch(position, header.size)
            ctx.stats.bytes_read += header.size
            ctx.stats.batches_read += 1
            ctx.throttle(header.size)
            yield header, data
    except FileNotFoundError as exc:
        # Retention or DeleteRecords removed it meanwhile; other I/O errors fail the directory
        # (the cleaner thread).
        raise CleanAborted(f"{segment.path} was removed during the clean") from exc


def _records(segment: Segment, header: BatchHeader, data: bytes) -> list[Record]:
    try:
        return list(iter_records(data, max_uncompressed_bytes=MAX_DECODED_BATCH_BYTES))
    except RecordsError as exc:
        raise StorageError(
            f"cleaner found a damaged batch at offset {header.base_offset} of {segment.path}: "
            f"{exc}; the partition is left uncleaned"
        ) from exc
