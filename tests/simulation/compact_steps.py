"""Log compaction in the simulation (a mixin of :class:`Simulation`): a compacted topic, an
idempotent producer writing keyed records and tombstones to it, and cleans of every compacted
log (this topic, and the internal ones the broker compacts) at the seed's moments, between
flusher rounds, crashes and power losses.

The log cleaner runs on the scheduler's thread (one :meth:`LogCleaner.clean_dirtiest` per step,
its thread never started), so a clean writes through the fault-injecting filesystem and a later
power loss may keep or drop what it did not fsync. Faults armed before a clean (ENOSPC, EIO)
fire inside it.

What a client of a compacted topic may rely on (Kafka's compaction guarantee), checked after
every step:

* for each key, the log's latest record is the key's latest acknowledged write or one sent after
  it (never an older one), and it sits at the acknowledged write's offset when it is that write;
* a key vanishes only if a tombstone for it was sent no earlier than its latest acknowledged
  write (a tombstone may go once ``delete.retention.ms`` has passed);
* every record is one that was sent, with its key and its value or tombstone, at most once
  (the producer is idempotent), and offsets only increase through the log.

Each record names its write in a header (``w``), which a tombstone has no value to carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from shoal.protocol import ErrorCode
from shoal.records import SimpleRecord, build_batch, read_header
from shoal.records.reader import iter_records
from shoal.storage import PartitionLog
from tests.simulation import producers as prod
from tests.simulation.model import Violation, read_batches
from tests.simulation.node import InFlight

if TYPE_CHECKING:
    from tests.simulation.sim import Simulation

    _Base = Simulation
else:
    _Base = object

COMPACT_TOPIC: Final = "cmp"
COMPACT_CONFIGS: Final = {
    "cleanup.policy": "compact",
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
    # Tombstones go within a run: the scheduler's clock advances by up to 700 s per step.
    "delete.retention.ms": "60000",
    # A roll every 5 s of the scheduler's clock too: the topic's few writes per run would not
    # fill the simulation's 2,000-byte segments (node.log_config), and only sealed segments
    # are cleaned.
    "segment.ms": "5000",
}
KEYS: Final = 5
RECORDS_MAX: Final = 4
TOMBSTONE_RATIO: Final = 0.2
VALUE_BYTES: Final = (100, 800)
"""Values this long fill the simulation's 2,000-byte segments in a few batches."""
MAX_DECODED_BYTES: Final = 1 << 20


@dataclass
class Write:
    index: int
    key: bytes
    value: bytes | None
    offset: int | None = None
    """Where the broker put it, once a Produce answered NONE (acknowledged)."""


@dataclass
class CompactModel:
    writes: list[Write] = field(default_factory=list)
    """Every record sent, in send order (one producer, one request at a time: offset order)."""
    pending: list[Write] = field(default_factory=list)
    """The writes of the producer's pending batch."""
    producer: prod.Producer = field(default_factory=lambda: prod.Producer("k0", idempotent=True))


class CompactSteps(_Base):
    compact: CompactModel

    def _produce_compacted(self) -> None:
        model = self.compact
        producer = model.producer
        if self._producer_busy(producer):
            return
        if producer.pending is None:
            model.pending = [self._new_write() for _ in range(self.rng.randint(1, RECORDS_MAX))]
            batch = build_batch(
                [
                    SimpleRecord(w.key, w.value, headers=[("w", str(w.index).encode())])
                    for w in model.pending
                ],
                base_timestamp=self.clock.now_ms(),
                producer_id=producer.producer_id,
                producer_epoch=producer.epoch,
                base_sequence=producer.next_sequence.get(0, 0),
            )
            producer.pending = prod.Pending(0, batch, -1)
            verb = "produce"
        else:
            verb = "retry"
        pending = producer.pending
        self._note(
            f"k0: {verb} {COMPACT_TOPIC} seq={read_header(pending.batch).base_sequence} "
            f"writes {[(w.index, w.key.decode(), w.value is None) for w in model.pending]}"
        )
        producer.flight = self._send(
            prod.PRODUCE,
            prod.produce_values(COMPACT_TOPIC, pending),
            lambda f: self._on_produce_compacted(pending, f),
        )

    def _new_write(self) -> Write:
        index = len(self.compact.writes)
        key = f"key-{self.rng.randrange(KEYS)}".encode()
        size = self.rng.randint(*VALUE_BYTES)
        value = None if self.rng.random() < TOMBSTONE_RATIO else f"v{index}".encode().ljust(size)
        write = Write(index, key, value)
        self.compact.writes.append(write)
        return write

    def _on_produce_compacted(self, pending: prod.Pending, flight: InFlight) -> None:
        model = self.compact
        producer = model.producer
        producer.flight = None
        part = self.node.answer(flight).responses[0].partition_responses[0]
        error = ErrorCode(part.error_code)
        base = int(part.base_offset)
        self._note(f"k0: {COMPACT_TOPIC} -> {error.name} at {base}")
        if error is ErrorCode.NONE:
            for i, write in enumerate(model.pending):
                write.offset = base + i
            header = read_header(pending.batch)
            producer.next_sequence[0] = header.base_sequence + header.record_count
            producer.pending = None
        elif error in prod.RETRIABLE:
            pass  # resent as is, same sequence: the broker must not store it twice
        elif error in (
            ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
            ErrorCode.UNKNOWN_PRODUCER_ID,
            ErrorCode.INVALID_PRODUCER_EPOCH,
        ):
            producer.producer_id = -1  # a new session; the pending writes' outcome is unknown
            producer.pending = None
        else:
            raise Violation(f"k0: unexpected answer {error.name}: {part.error_message}")

    def _clean_logs(self) -> None:
        cleaner = self.node.cleaner
        assert cleaner is not None
        cleaned = cleaner.clean_dirtiest()
        ratios = {n: round(r, 2) for n, r in sorted(cleaner.metrics.dirty_ratio.items())}
        self._note(f"clean the dirtiest log: {'cleaned' if cleaned else 'none'} {ratios}")
        self.stats.cleans += cleaned

    def _compact_restarted(self) -> None:
        self.compact.producer.flight = None  # the pending batch is retried as it was

    def _check_compacted(self) -> None:
        assert self.node.broker is not None
        plog = self.node.broker.partition(COMPACT_TOPIC, 0)
        if plog is None:
            raise Violation(f"partition {COMPACT_TOPIC}-0 is missing")
        writes = self.compact.writes
        latest: dict[bytes, tuple[int, Write]] = {}
        seen: set[int] = set()
        for offset, key, value, index in _stored_records(plog):
            write = writes[index] if 0 <= index < len(writes) else None
            if write is None or write.key != key or write.value != value:
                raise Violation(f"{COMPACT_TOPIC}: record at {offset} is no write that was sent")
            if index in seen:
                raise Violation(f"{COMPACT_TOPIC}: write {index} is stored twice")
            seen.add(index)
            if write.offset is not None and write.offset != offset:
                raise Violation(
                    f"{COMPACT_TOPIC}: write {index} acknowledged at {write.offset}, found at "
                    f"{offset}"
                )
            latest[key] = (offset, write)
        last_acked: dict[bytes, Write] = {}
        for write in writes:
            if write.offset is not None:
                last_acked[write.key] = write
        for key, acked in last_acked.items():
            found = latest.get(key)
            if found is None:
                if not any(w.key == key and w.value is None for w in writes[acked.index :]):
                    raise Violation(
                        f"{COMPACT_TOPIC}: key {key.decode()} is lost (its write {acked.index} "
                        f"was acknowledged at {acked.offset}, no tombstone sent since)"
                    )
            elif found[1].index < acked.index:
                raise Violation(
                    f"{COMPACT_TOPIC}: key {key.decode()}'s latest record is write "
                    f"{found[1].index} at {found[0]}, older than the acknowledged write "
                    f"{acked.index} at {acked.offset}"
                )


def _stored_records(plog: PartitionLog) -> list[tuple[int, bytes, bytes | None, int]]:
    """(offset, key, value, write index) of every record from the log start to its end; offsets
    must rise through the log (compaction leaves gaps, never a step back)."""
    out: list[tuple[int, bytes, bytes | None, int]] = []
    last = -1
    for header, batch in read_batches(plog):
        if header.base_offset <= last:
            raise Violation(f"{COMPACT_TOPIC}: batch at {header.base_offset} after {last}")
        for record in iter_records(batch, max_uncompressed_bytes=MAX_DECODED_BYTES):
            at = header.base_offset + record.offset_delta
            if at <= last or at > header.base_offset + header.last_offset_delta:
                raise Violation(f"{COMPACT_TOPIC}: record offset {at} out of order")
            last = at
            names = dict(record.headers)
            if record.key is None or "w" not in names:
                raise Violation(f"{COMPACT_TOPIC}: record at {at} has no key or no write")
            out.append((at, record.key, record.value, int(names["w"])))
        last = header.base_offset + header.last_offset_delta
    return out
