"""Idempotent producers on one partition: what each producer id wrote, and whether its next
batch may be appended.

A producer with ``enable.idempotence`` gets a producer id from InitProducerId and numbers the
records it sends to each partition from 0. A retry resends a batch with the same numbers, so the
broker can tell a retry from new data and append every batch exactly once.

The rules, checked in this order for a batch from a client. They are those of Kafka 4
(``ProducerStateEntry.findDuplicateBatch``, then ``ProducerAppendInfo.checkProducerEpoch`` and
``checkSequence``):

== ================= ================ ===================================== ========================
#  producer id known batch epoch      sequences                             verdict
== ================= ================ ===================================== ========================
1  yes               equal            first and last equal one of the last  duplicate: success with
                                      five batches'                         the original offsets
2  yes               lower            any                                   INVALID_PRODUCER_EPOCH
3  no                any              any                                   append
4  yes               higher           first == 0                            append; new epoch
5  yes               higher           first != 0                            OUT_OF_ORDER_SEQUENCE
6  yes               equal            first == last + 1 (INT32_MAX -> 0)    append
7  yes               equal            anything else                         OUT_OF_ORDER_SEQUENCE
== ================= ================ ===================================== ========================

Rule 3: since Kafka 2.5 (KIP-360) a producer id without state (expired, or its batches deleted
by retention) may start at any sequence; Produce no longer answers UNKNOWN_PRODUCER_ID. Rule 2:
since Kafka 2.7 a stale epoch on Produce is INVALID_PRODUCER_EPOCH, not PRODUCER_FENCED (the
code the transaction coordinator uses), so that clients can recover instead of failing fatally.

The state changes only through :meth:`PartitionProducers.record`, called after an append
succeeded (or when replaying the log at start-up), so a rejected or failed append changes
nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from shoal.invariant import invariant
from shoal.protocol import ErrorCode

SEQUENCE_MAX: Final = 2**31 - 1
"""Sequences are int32 and wrap from INT32_MAX to 0."""

EPOCH_MAX: Final = 2**15 - 1
"""Epochs are int16; InitProducerId never hands out a negative one."""

BATCHES_RETAINED: Final = 5
"""Kafka's NUM_BATCHES_TO_RETAIN. Idempotent clients keep at most five requests in flight per
partition (max.in.flight.requests.per.connection <= 5), so a retry is always of one of the last
five batches the broker appended."""

NO_SEQUENCE: Final = -1
"""The last sequence of an entry with no batch in its epoch (see ProducerEntry.last_sequence)."""

NO_TIMESTAMP: Final = -1
NO_COORDINATOR_EPOCH: Final = -1
"""The coordinator epoch of a producer no transaction marker has reached yet (Kafka's)."""

PRODUCER_ID_EXPIRATION_MS: Final = 24 * 3600 * 1000
"""Kafka's producer.id.expiration.ms default: a producer id silent this long is forgotten."""

PRODUCERS_MAX: Final = 10_000
"""Producer ids remembered per partition; past it the least recently active one is forgotten.
Kafka has no such cap, only expiry; without one, short-lived producers (a new id per process
start) could fill memory within the expiry period. A forgotten producer is treated like an
unknown one (rule 3), so only a retry of its own last batches could be appended twice, and an
id that has not appended while 10,000 others did has no batch in flight."""


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    """What is kept of an appended batch: enough to answer its retry with the same offsets."""

    first_sequence: int
    last_sequence: int
    first_offset: int
    last_offset: int
    timestamp_ms: int
    """The batch's maxTimestamp as stored (the append time on LogAppendTime topics)."""


@dataclass(frozen=True, slots=True)
class Append:
    """The batch is new and in sequence: append it, then :meth:`PartitionProducers.record` it."""


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A retry of a batch already in the log: answer success with its offsets, append nothing."""

    original: BatchMetadata


@dataclass(frozen=True, slots=True)
class Rejected:
    """Refuse the batch with this error; nothing changes."""

    error_code: ErrorCode
    message: str


Verdict = Append | Duplicate | Rejected
APPEND: Final = Append()


def next_sequence(sequence: int) -> int:
    return 0 if sequence == SEQUENCE_MAX else sequence + 1


class ProducerEntry:
    """One producer id on one partition: its epoch and its last batches, oldest first."""

    __slots__ = ("batches", "coordinator_epoch", "epoch", "last_seen_ms", "last_timestamp_ms")

    def __init__(
        self,
        epoch: int,
        last_seen_ms: int,
        coordinator_epoch: int = NO_COORDINATOR_EPOCH,
        last_timestamp_ms: int = NO_TIMESTAMP,
    ) -> None:
        self.epoch = epoch
        self.last_seen_ms = last_seen_ms
        """When the producer last appended here, on the broker's clock (for expiry)."""
        self.batches: deque[BatchMetadata] = deque(maxlen=BATCHES_RETAINED)
        self.coordinator_epoch = coordinator_epoch
        """The coordinator epoch of the producer's last transaction marker here: a marker
        from an older coordinator is a zombie's (Kafka's ProducerStateEntry.coordinatorEpoch)."""
        self.last_timestamp_ms = last_timestamp_ms
        """The max timestamp of the producer's last batch or transaction marker here, as
        stored (Kafka's lastTimestamp, which DescribeProducers reports)."""

    @property
    def last_sequence(self) -> int:
        """The last sequence appended in this epoch; NO_SEQUENCE (-1) when a transaction
        marker started the epoch and no batch followed yet, so the next must be 0."""
        return self.batches[-1].last_sequence if self.batches else NO_SEQUENCE

    def find(self, first_sequence: int, last_sequence: int) -> BatchMetadata | None:
        for batch in self.batches:
            if batch.first_sequence == first_sequence and batch.last_sequence == last_sequence:
                return batch
        return None


class PartitionProducers:
    """The idempotence state of one partition: producer id -> :class:`ProducerEntry`.

    Pure: no I/O, and time comes in as arguments. Entries are kept in order of last append
    (least recent first), which makes the :data:`PRODUCERS_MAX` eviction O(1).
    """

    def __init__(
        self,
        *,
        producers_max: int = PRODUCERS_MAX,
        expiration_ms: int = PRODUCER_ID_EXPIRATION_MS,
    ) -> None:
        invariant(producers_max > 0, "producers_max must be positive")
        invariant(expiration_ms > 0, "expiration_ms must be positive")
        self.producers_max = producers_max
        self.expiration_ms = expiration_ms
        self._entries: dict[int, ProducerEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, producer_id: int) -> ProducerEntry | None:
        return self._entries.get(producer_id)

    def items(self) -> Iterator[tuple[int, ProducerEntry]]:
        """``(producer id, entry)``, least recently active first."""
        return iter(self._entries.items())

    def check(
        self, producer_id: int, epoch: int, first_sequence: int, last_sequence: int
    ) -> Verdict:
        """The verdict on a client's batch (rules 1-7 of the module docstring). Changes nothing."""
        _check_ids(producer_id, epoch, first_sequence, last_sequence)
        entry = self._entries.get(producer_id)
        if entry is None:
            return APPEND  # rule 3
        if epoch == entry.epoch:
            original = entry.find(first_sequence, last_sequence)
            if original is not None:
                return Duplicate(original)  # rule 1
        if epoch < entry.epoch:
            return Rejected(  # rule 2
                ErrorCode.INVALID_PRODUCER_EPOCH,
                f"producer {producer_id} sent epoch {epoch}, older than its current epoch "
                f"{entry.epoch} on this partition; a newer instance of the producer took over",
            )
        if epoch > entry.epoch:
            if first_sequence == 0:
                return APPEND  # rule 4
            return Rejected(  # rule 5
                ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                f"producer {producer_id} started epoch {epoch} at sequence {first_sequence}; "
                "a new epoch must start at sequence 0",
            )
        expected = next_sequence(entry.last_sequence)
        if first_sequence == expected:
            return APPEND  # rule 6
        return Rejected(  # rule 7
            ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
            f"producer {producer_id} (epoch {epoch}) sent sequences {first_sequence}.."
            f"{last_sequence}; the next expected sequence is {expected}",
        )

    def record(self, producer_id: int, epoch: int, batch: BatchMetadata, now_ms: int) -> None:
        """Remember a batch that is now in the log (after an append, or replaying the log).

        A different epoch replaces the producer's batches: sequences restart with each epoch,
        so older batches can no longer be retried (rule 2 refuses them).
        """
        _check_ids(producer_id, epoch, batch.first_sequence, batch.last_sequence)
        invariant(batch.first_offset <= batch.last_offset, "a batch ends at or after its start")
        entry = self._entries.pop(producer_id, None)
        if entry is None:
            entry = ProducerEntry(epoch, now_ms)
            self._make_room()
        elif entry.epoch != epoch:
            entry.epoch = epoch
            entry.batches.clear()
        entry.batches.append(batch)  # the deque's maxlen drops the oldest of six
        entry.last_timestamp_ms = batch.timestamp_ms
        entry.last_seen_ms = max(entry.last_seen_ms, now_ms)
        self._entries[producer_id] = entry  # re-inserted: now the most recently active

    def check_marker(self, producer_id: int, epoch: int, coordinator_epoch: int) -> Rejected | None:
        """May a transaction marker from an operator or another coordinator be appended?
        Kafka's ProducerAppendInfo.appendEndTxnMarker checks the producer epoch, then the
        coordinator epoch. None when it may. Changes nothing."""
        refused = self.check_epoch(producer_id, epoch, "the marker's")
        entry = self._entries.get(producer_id)
        if refused is not None or entry is None:
            return refused
        if coordinator_epoch < entry.coordinator_epoch:
            return Rejected(
                ErrorCode.TRANSACTION_COORDINATOR_FENCED,
                f"the marker's coordinator epoch {coordinator_epoch} for producer {producer_id} "
                f"is older than the last one this partition saw ({entry.coordinator_epoch})",
            )
        return None

    def check_epoch(
        self, producer_id: int, epoch: int, what: str = "the batch's"
    ) -> Rejected | None:
        """The producer-epoch check alone (Kafka's ProducerAppendInfo.checkProducerEpoch): for
        a marker, and for a batch the broker's group coordinator writes for a transaction
        (a TxnOffsetCommit's: its sequence is left unchecked, Kafka's append origin
        COORDINATOR; older shoal wrote them without sequence).
        None when the epoch is not older than the partition's for the producer."""
        entry = self._entries.get(producer_id)
        if entry is None or epoch >= entry.epoch:
            return None
        return Rejected(
            ErrorCode.INVALID_PRODUCER_EPOCH,
            f"{what} producer epoch {epoch} of producer {producer_id} is older than "
            f"its epoch {entry.epoch} on this partition",
        )

    def record_epoch(self, producer_id: int, epoch: int, now_ms: int, timestamp_ms: int) -> None:
        """A batch without sequence (older shoal's, see :meth:`check_epoch`) was appended or
        replayed: a newer epoch becomes the producer's, as a marker's does; no sequence is
        remembered."""
        entry = self._entries.get(producer_id)
        coordinator_epoch = NO_COORDINATOR_EPOCH if entry is None else entry.coordinator_epoch
        self.record_marker(producer_id, epoch, now_ms, coordinator_epoch, timestamp_ms)

    def record_marker(
        self,
        producer_id: int,
        epoch: int,
        now_ms: int,
        coordinator_epoch: int = NO_COORDINATOR_EPOCH,
        timestamp_ms: int = NO_TIMESTAMP,
    ) -> None:
        """A transaction marker of the producer was appended (or replayed). A marker with a
        newer epoch (the coordinator fenced the producer, or a timeout aborted its
        transaction) moves the partition to that epoch, so the fenced instance's batches get
        INVALID_PRODUCER_EPOCH here, and the new epoch's first batch must have sequence 0.
        The marker's coordinator epoch and timestamp become the producer's, as Kafka
        records them."""
        invariant(producer_id >= 0 and 0 <= epoch <= EPOCH_MAX, "a marker has a producer")
        entry = self._entries.pop(producer_id, None)
        if entry is None:
            entry = ProducerEntry(epoch, now_ms)
            self._make_room()
        elif epoch > entry.epoch:
            entry.epoch = epoch
            entry.batches.clear()
        entry.coordinator_epoch = coordinator_epoch
        entry.last_timestamp_ms = timestamp_ms
        entry.last_seen_ms = max(entry.last_seen_ms, now_ms)
        self._entries[producer_id] = entry

    def restore(
        self,
        producer_id: int,
        epoch: int,
        batches: Iterable[BatchMetadata],
        last_seen_ms: int,
        coordinator_epoch: int = NO_COORDINATOR_EPOCH,
        last_timestamp_ms: int | None = None,
    ) -> None:
        """Put back an entry read from a snapshot (call in least-recently-active order).
        ``last_timestamp_ms`` None (a snapshot from before it was kept): the last batch's."""
        entry = ProducerEntry(epoch, last_seen_ms, coordinator_epoch)
        entry.batches.extend(batches)
        if last_timestamp_ms is not None:
            entry.last_timestamp_ms = last_timestamp_ms
        elif entry.batches:
            entry.last_timestamp_ms = entry.batches[-1].timestamp_ms
        self._entries.pop(producer_id, None)
        self._make_room()
        self._entries[producer_id] = entry

    def expire(self, now_ms: int) -> int:
        """Forget producer ids silent for :attr:`expiration_ms`; returns how many."""
        doomed = [
            pid
            for pid, entry in self._entries.items()
            if now_ms - entry.last_seen_ms >= self.expiration_ms
        ]
        for pid in doomed:
            del self._entries[pid]
        return len(doomed)

    def _make_room(self) -> None:
        while len(self._entries) >= self.producers_max:
            del self._entries[next(iter(self._entries))]


def _check_ids(producer_id: int, epoch: int, first_sequence: int, last_sequence: int) -> None:
    # The records layer already refused batches with such fields; reaching here with one is a bug.
    invariant(producer_id >= 0, f"producer id {producer_id} is not an idempotent producer's")
    invariant(0 <= epoch <= EPOCH_MAX, f"producer epoch {epoch} is out of range")
    invariant(
        0 <= first_sequence <= SEQUENCE_MAX and 0 <= last_sequence <= SEQUENCE_MAX,
        f"sequences {first_sequence}..{last_sequence} are out of range",
    )
