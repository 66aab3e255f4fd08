"""The state of one share-partition (KIP-932): which records of a topic-partition a share
group has delivered, to whom, how often, and which are done.

Pure logic with an injected clock, as Kafka 4.4's ``SharePartition`` keeps it on the leader:

- the *start offset* is the first record not yet done (acknowledged or archived); every record
  below it is done. The *end offset* here is the first offset never acquired (exclusive;
  Kafka's ``endOffset`` is the last in-flight offset, one less);
- records between them are *in flight*, each Available, Acquired (by one member, under an
  acquisition lock that times out after ``share.record.lock.duration.ms``), Acknowledged or
  Archived. A record is acquired by a fetch, which adds one to its delivery count;
- an acknowledgement is ACCEPT (-> Acknowledged), RELEASE (-> Available, to be delivered
  again), REJECT (-> Archived) or GAP (the offset held no record: -> Archived). Only the
  member holding the lock may acknowledge, and one bad batch refuses the whole partition's
  acknowledgement (INVALID_RECORD_STATE) and changes nothing, as Kafka rolls back;
- a record that would become Available again (RELEASE, lock timeout, its member gone) after
  ``share.delivery.count.limit`` deliveries is Archived instead (Kafka's ``InFlightState``:
  AVAILABLE with deliveryCount >= maxDeliveryCount -> ARCHIVED);
- new records are acquired only while fewer than ``group.share.partition.max.record.locks``
  records are in flight, so a stuck consumer cannot pin an unbounded window (in Kafka's
  default ``batch_optimized`` acquisition the limit is soft by the rest of a stored batch:
  see :meth:`SharePartition.acquire`).

Time moves only through :meth:`expire_locks`, which every operation calls first, so a lock
past its deadline is never honoured. :meth:`snapshot` gives what must be durable
(Kafka's ``__share_group_state`` batches): an Acquired record is written as Available with
its delivery count (Archived if that count reached the limit), because a lock does not
survive a restart.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from shoal.clock import Clock
from shoal.protocol.errors import ErrorCode

DEFAULT_RECORD_LOCK_DURATION_MS: Final = 30_000
DEFAULT_DELIVERY_COUNT_LIMIT: Final = 5
DEFAULT_MAX_RECORD_LOCKS: Final = 2_000
"""Kafka 4.4's ``group.share.partition.max.record.locks`` default (records in flight)."""


class RecordState(IntEnum):
    """Kafka's ``RecordState`` ids (what ``__share_group_state`` stores)."""

    AVAILABLE = 0
    ACQUIRED = 1
    ACKNOWLEDGED = 2
    ARCHIVED = 4


class AcknowledgeType(IntEnum):
    """The AcknowledgeTypes of ShareFetch/ShareAcknowledge."""

    GAP = 0
    ACCEPT = 1
    RELEASE = 2
    REJECT = 3


_DONE: Final = frozenset({RecordState.ACKNOWLEDGED, RecordState.ARCHIVED})
_ACKNOWLEDGE_TYPES: Final[dict[int, AcknowledgeType]] = {int(t): t for t in AcknowledgeType}
"""Wire value -> AcknowledgeType (an unknown value is absent)."""


class SharePartitionError(Exception):
    """An operation Kafka refuses, with its error code; the partition is unchanged."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class SharePartitionSettings:
    record_lock_duration_ms: int = DEFAULT_RECORD_LOCK_DURATION_MS
    delivery_count_limit: int = DEFAULT_DELIVERY_COUNT_LIMIT
    max_record_locks: int = DEFAULT_MAX_RECORD_LOCKS


@dataclass(slots=True)
class InFlightRecord:
    state: RecordState
    delivery_count: int
    member_id: str | None = None
    lock_deadline_ms: float | None = None
    lock_id: int = 0
    """The acquisition that locked it (0: none): see ``SharePartition._locks``."""


@dataclass(frozen=True, slots=True)
class AcquiredRange:
    """A ShareFetch answer's AcquiredRecords entry: consecutive offsets with one count."""

    first_offset: int
    last_offset: int
    delivery_count: int


@dataclass(frozen=True, slots=True)
class AcknowledgementBatch:
    """One AcknowledgementBatches entry: one type for the whole range, or one per offset."""

    first_offset: int
    last_offset: int
    types: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class StateBatch:
    """A durable run of offsets with one state and delivery count."""

    first_offset: int
    last_offset: int
    state: RecordState
    delivery_count: int


@dataclass(frozen=True, slots=True)
class ShareState:
    """What a share-partition must keep across a restart."""

    start_offset: int
    batches: tuple[StateBatch, ...]


class SharePartition:
    def __init__(self, clock: Clock, settings: SharePartitionSettings, start_offset: int) -> None:
        if start_offset < 0:
            raise ValueError(f"start offset {start_offset} < 0")
        self.clock = clock
        self.settings = settings
        self.start_offset = start_offset
        self.end_offset = start_offset
        self.records: dict[int, InFlightRecord] = {}
        """In-flight records by offset, all in [start_offset, end_offset)."""
        # Every fetch, acknowledgement and parked fetch asks where the first Available record
        # is, whether a lock has expired and when the next one does: answered from these two
        # heaps (stale entries dropped as they surface), not by scanning the up to
        # max_record_locks in-flight records each time.
        self._available: list[int] = []
        """Offsets that became Available (a min-heap; an entry is stale once acquired)."""
        self._locks: list[tuple[float, int, int, int]] = []
        """(deadline, lock id, first offset, last offset) per acquired range (a min-heap)."""
        self._held: dict[int, int] = {}
        """Lock id -> records still Acquired under it; a lock not here is stale."""
        self._next_lock_id = 1

    # -- restart ------------------------------------------------------------------------

    def snapshot(self) -> ShareState:
        # Called for every state write (up to max_record_locks records, on the event loop):
        # runs are found with plain locals and a StateBatch made once per run, not once per
        # record (that made the snapshot most of a share group's broker time per record).
        batches: list[StateBatch] = []
        limit = self.settings.delivery_count_limit
        first = last = -2
        run_state: RecordState | None = None
        run_count = -1
        for offset in sorted(self.records):
            record = self.records[offset]
            state, count = record.state, record.delivery_count
            if state is RecordState.ACQUIRED:
                # Written as the lock's expiry would leave it: a restart ends every lock.
                state = RecordState.ARCHIVED if count >= limit else RecordState.AVAILABLE
            if offset == last + 1 and state is run_state and count == run_count:
                last = offset
                continue
            if run_state is not None:
                batches.append(StateBatch(first, last, run_state, run_count))
            first = last = offset
            run_state, run_count = state, count
        if run_state is not None:
            batches.append(StateBatch(first, last, run_state, run_count))
        # Done batches at the front (a lock ended past the limit) move the start past them.
        start = self.start_offset
        skip = 0
        while skip < len(batches) and batches[skip].first_offset == start:
            if batches[skip].state not in _DONE:
                break
            start = batches[skip].last_offset + 1
            skip += 1
        return ShareState(start, tuple(batches[skip:]))

    @classmethod
    def restore(
        cls, clock: Clock, settings: SharePartitionSettings, state: ShareState
    ) -> SharePartition:
        partition = cls(clock, settings, state.start_offset)
        for batch in state.batches:
            if batch.first_offset < state.start_offset or batch.last_offset < batch.first_offset:
                raise ValueError(f"state batch {batch} outside start offset {state.start_offset}")
            if batch.state is RecordState.ACQUIRED:
                raise ValueError(f"state batch {batch} is acquired (locks are not durable)")
            for offset in range(batch.first_offset, batch.last_offset + 1):
                partition.records[offset] = InFlightRecord(batch.state, batch.delivery_count)
                if batch.state is RecordState.AVAILABLE:
                    heapq.heappush(partition._available, offset)
            partition.end_offset = max(partition.end_offset, batch.last_offset + 1)
        partition._advance_start()
        return partition

    # -- acquisition --------------------------------------------------------------------

    def next_fetch_offset(self) -> int:
        """Where the next fetch must read: the first Available in-flight record, else the end."""
        self.expire_locks()
        available = self._available
        while available:
            offset = available[0]
            record = self.records.get(offset)
            if record is not None and record.state is RecordState.AVAILABLE:
                return offset
            heapq.heappop(available)  # acquired or done since it became Available
        return self.end_offset

    def can_acquire(self) -> bool:
        """Whether a fetch may acquire anything now (Kafka's ``canAcquireRecords``): an
        Available record in flight, or room in the window for records past its end. When
        not, a fetch need not read the log at all."""
        if self.next_fetch_offset() < self.end_offset:
            return True
        return self.end_offset - self.start_offset < self.settings.max_record_locks

    def acquire(
        self,
        member_id: str,
        offsets: Iterable[int],
        max_records: int,
        archived: frozenset[int] = frozenset(),
        batch_end: Callable[[int], int] | None = None,
    ) -> list[AcquiredRange]:
        """Lock up to ``max_records`` of the records the broker read (their offsets, ascending,
        from :meth:`next_fetch_offset` on) for ``member_id``; the ranges it now holds. Those
        of ``offsets`` also in ``archived`` (records of aborted transactions, for a
        read_committed group) are Archived on first sight instead: never delivered.

        ``batch_end`` (the last offset of the stored batch holding an offset) asks for Kafka's
        ``batch_optimized`` acquisition (its default ``share.acquire.mode``, and all a
        ShareFetch before v2 knows): where ``max_records`` or the in-flight window stops the
        acquisition of new records inside a stored batch, the rest of that batch is acquired
        too (``SharePartition.acquireNewBatchRecords`` acquires to
        ``lastOffsetFromBatchWithRequestOffset``), so the limits are soft by up to a batch.
        Without it (``record_limit``) they are exact."""
        self.expire_locks()
        deadline = self.clock.monotonic_ms() + self.settings.record_lock_duration_ms
        lock_id = self._next_lock_id
        self._next_lock_id += 1
        acquired: list[tuple[int, int]] = []
        last_new: int | None = None
        """The last offset this call took into the window (a new record)."""
        rest_of_batch = -1
        """New records up to this offset are acquired whatever the limits (batch_optimized)."""
        # Once per record read (MaxRecords of them and more): the attributes it reads are
        # taken into locals first.
        records, start, max_locks = self.records, self.start_offset, self.settings.max_record_locks
        available, acquired_state = RecordState.AVAILABLE, RecordState.ACQUIRED
        for offset in offsets:
            if offset < start:
                continue
            record = records.get(offset)
            if record is None and offset < self.end_offset:
                continue  # below the end and not in flight: done before a restart
            full = record is None and self.end_offset - start >= max_locks
            if offset > rest_of_batch and (full or len(acquired) >= max_records):
                if batch_end is None or last_new is None or last_new != offset - 1:
                    break
                rest_of_batch = batch_end(last_new)
                if offset > rest_of_batch:
                    break  # the limit fell on a batch boundary
            if record is None:
                last_new = offset
                self.end_offset = offset + 1
                if offset in archived:
                    records[offset] = InFlightRecord(RecordState.ARCHIVED, 0)
                    continue
                record = records[offset] = InFlightRecord(available, 0)
            elif record.state is not available:
                continue
            record.state = acquired_state
            record.delivery_count += 1
            record.member_id = member_id
            record.lock_deadline_ms = deadline
            record.lock_id = lock_id
            acquired.append((offset, record.delivery_count))
        if acquired:
            self._held[lock_id] = len(acquired)
            heapq.heappush(self._locks, (deadline, lock_id, acquired[0][0], acquired[-1][0]))
        if archived:
            self._advance_start()  # archived records at the front are done
        return _ranges(acquired)

    def skip_to(self, offset: int) -> None:
        """Records below ``offset`` no longer exist (log start moved past them): archive them."""
        if offset <= self.start_offset:
            return
        for o in list(self.records):
            if o < offset:
                self._unlock(self.records.pop(o))
        self.start_offset = offset
        self.end_offset = max(self.end_offset, offset)
        self._advance_start()

    # -- acknowledgement ----------------------------------------------------------------

    def acknowledge(self, member_id: str, batches: Sequence[AcknowledgementBatch]) -> None:
        """Apply every batch or none (INVALID_RECORD_STATE / INVALID_REQUEST, unchanged)."""
        self.expire_locks()
        planned: dict[int, AcknowledgeType] = {}
        for batch in batches:
            self._check_batch(member_id, batch, planned)
        for offset, kind in planned.items():
            record = self.records[offset]
            self._unlock(record)
            if kind is AcknowledgeType.ACCEPT:
                record.state = RecordState.ACKNOWLEDGED
            elif kind is AcknowledgeType.RELEASE:
                self._make_available(offset, record)
            else:
                record.state = RecordState.ARCHIVED
        self._advance_start()

    def _check_batch(
        self, member_id: str, batch: AcknowledgementBatch, planned: dict[int, AcknowledgeType]
    ) -> None:
        first, last = batch.first_offset, batch.last_offset
        if last < first:
            raise SharePartitionError(
                ErrorCode.INVALID_REQUEST, f"last offset {last} < first offset {first}"
            )
        count = last - first + 1
        if len(batch.types) not in (1, count):
            raise SharePartitionError(
                ErrorCode.INVALID_REQUEST,
                f"{len(batch.types)} acknowledge types for {count} offsets (want 1 or {count})",
            )
        types = batch.types
        single = len(types) == 1
        records = self.records
        for i, offset in enumerate(range(first, last + 1)):
            # Once per acknowledged record: the type is looked up in a table, not made by the
            # enum's constructor.
            raw = types[0] if single else types[i]
            kind = _ACKNOWLEDGE_TYPES.get(raw)
            if kind is None:
                raise SharePartitionError(
                    ErrorCode.INVALID_REQUEST, f"unknown acknowledge type {raw}"
                )
            record = records.get(offset)
            if (
                record is None
                or record.state is not RecordState.ACQUIRED
                or record.member_id != member_id
                or offset in planned
            ):
                raise SharePartitionError(
                    ErrorCode.INVALID_RECORD_STATE,
                    f"offset {offset} is not acquired by member {member_id}",
                )
            planned[offset] = kind

    def release_member(self, member_id: str) -> bool:
        """The member left or its session ended: what it holds is Available again (or
        Archived past the delivery limit). Whether it held anything."""
        self.expire_locks()
        released = False
        for offset, record in self.records.items():
            if record.state is RecordState.ACQUIRED and record.member_id == member_id:
                self._make_available(offset, record)
                released = True
        self._advance_start()
        return released

    def give_back(self, member_id: str, ranges: Iterable[AcquiredRange]) -> bool:
        """A fetch acquired ``ranges`` for ``member_id`` but was never answered (its request
        was cancelled: the connection went): those of its records the member still holds
        under that acquisition are Available again with the delivery count they had, as if
        never acquired, since no consumer saw them. Whether any was."""
        self.expire_locks()
        given = False
        for acquired in ranges:
            for offset in range(acquired.first_offset, acquired.last_offset + 1):
                record = self.records.get(offset)
                if (
                    record is None
                    or record.state is not RecordState.ACQUIRED
                    or record.member_id != member_id
                    or record.delivery_count != acquired.delivery_count
                ):
                    continue  # acknowledged, expired or acquired again since
                self._unlock(record)
                record.delivery_count -= 1
                record.state = RecordState.AVAILABLE
                heapq.heappush(self._available, offset)
                given = True
        return given

    # -- time ---------------------------------------------------------------------------

    def expire_locks(self) -> list[int]:
        """Locks past their deadline are released; the offsets that were freed."""
        now = self.clock.monotonic_ms()
        expired: list[int] = []
        locks = self._locks
        while locks and locks[0][0] <= now:
            _, lock_id, first, last = heapq.heappop(locks)
            if lock_id not in self._held:
                continue  # every record it locked was acknowledged or released
            for offset in range(first, last + 1):
                record = self.records.get(offset)
                if record is not None and record.lock_id == lock_id:
                    self._make_available(offset, record)
                    expired.append(offset)
        if expired:
            self._advance_start()
        return sorted(expired)

    def next_lock_deadline_ms(self) -> float | None:
        locks = self._locks
        while locks and locks[0][1] not in self._held:
            heapq.heappop(locks)  # nothing held under it any more
        return locks[0][0] if locks else None

    # -- internals ----------------------------------------------------------------------

    def _unlocked_state(self, record: InFlightRecord) -> RecordState:
        if record.delivery_count >= self.settings.delivery_count_limit:
            return RecordState.ARCHIVED
        return RecordState.AVAILABLE

    def _unlock(self, record: InFlightRecord) -> None:
        if record.lock_id:
            held = self._held.get(record.lock_id, 0) - 1
            if held > 0:
                self._held[record.lock_id] = held
            else:
                self._held.pop(record.lock_id, None)
        record.member_id = None
        record.lock_deadline_ms = None
        record.lock_id = 0

    def _make_available(self, offset: int, record: InFlightRecord) -> None:
        self._unlock(record)
        record.state = self._unlocked_state(record)
        if record.state is RecordState.AVAILABLE:
            heapq.heappush(self._available, offset)

    def _advance_start(self) -> None:
        # Done records at the front leave the in-flight window; the start moves past them.
        while self.start_offset < self.end_offset:
            record = self.records.get(self.start_offset)
            if record is not None and record.state not in _DONE:
                break
            self.records.pop(self.start_offset, None)
            self.start_offset += 1


def _ranges(acquired: Sequence[tuple[int, int]]) -> list[AcquiredRange]:
    # Once per acquired record: runs found with plain locals, an AcquiredRange made per run.
    out: list[AcquiredRange] = []
    first = last = -2
    run_count = -1
    for offset, count in acquired:
        if offset == last + 1 and count == run_count:
            last = offset
            continue
        if run_count >= 0:
            out.append(AcquiredRange(first, last, run_count))
        first = last = offset
        run_count = count
    if run_count >= 0:
        out.append(AcquiredRange(first, last, run_count))
    return out
