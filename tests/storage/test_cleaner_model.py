"""A Hypothesis state machine drives a compacted PartitionLog, its cleaner, and a plain model.

Operations: produce batches of keyed records (values, tombstones, idempotent producers, every
codec), clean at random moments (small offset maps, so that cleans often stop partway), let the
clock run (tombstones' delete horizons pass), roll, read anywhere with any byte limit, close and
reopen. After every step:

- below the cleaner checkpoint the log holds exactly the latest record of each key (a tombstone
  may be gone once its horizon passed, never before); from there on, every record produced;
- offsets only increase, and the last batch of each idempotent producer not yet expired
  (``producer.id.expiration.ms``, short here so the clock passes it) is still in the log;
- every read returns whole batches with valid CRCs, starting with the batch holding the offset
  asked for or, when that record was compacted away, the next one.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from shoal.records import Compression, SimpleRecord, build_batch, crc_matches, read_header
from shoal.storage import LogConfig
from shoal.storage.cleaner import read_cleaner_checkpoint
from tests.storage.cleaning import read_batches, run_clean
from tests.storage.support import Harness

KEYS = [f"k{i}".encode() for i in range(6)]
DELETE_RETENTION_MS = 5_000
PRODUCER_ID_EXPIRATION_MS = 3_000
"""Short, so that producers expire within a run (the clock moves up to 4 s a step)."""


@dataclass(frozen=True)
class Produced:
    offset: int
    key: bytes
    value: bytes | None


class CompactedLogMachine(RuleBasedStateMachine):
    @initialize(segment_bytes=st.sampled_from([300, 700, 2000]))
    def start(self, segment_bytes: int) -> None:
        self.h = Harness(
            config=LogConfig(
                segment_bytes=segment_bytes,
                checkpoint_interval_ms=10**12,
                compact=True,
                retention_ms=-1,
                delete_retention_ms=DELETE_RETENTION_MS,
            )
        )
        self.h.open()
        self.produced: list[Produced] = []
        self.last_batch_of: dict[int, int] = {}
        """Producer id -> base offset of its last batch."""
        self.last_batch_time_of: dict[int, int] = {}
        """Producer id -> the timestamp of its last batch (what its expiry counts from)."""
        self.sequence: dict[int, int] = {}
        self.tombstone_removable_from: dict[int, int] = {}
        """Tombstone offset -> the time from which a clean may remove it (its horizon)."""

    def teardown(self) -> None:
        if getattr(self, "h", None) is not None and self.h.manager is not None:
            self.h.manager.abandon()

    @rule(
        records=st.lists(
            st.tuples(st.sampled_from(KEYS), st.one_of(st.none(), st.binary(max_size=40))),
            min_size=1,
            max_size=5,
        ),
        producer=st.sampled_from([None, 1, 2]),
        codec=st.sampled_from(list(Compression)),
    )
    def produce(
        self, records: list[tuple[bytes, bytes | None]], producer: int | None, codec: Compression
    ) -> None:
        plog = self.h.log()
        now = self.h.clock.now_ms()
        fields = {}
        if producer is not None:
            sequence = self.sequence.get(producer, 0)
            fields = {"producer_id": producer, "producer_epoch": 0, "base_sequence": sequence}
            self.sequence[producer] = sequence + len(records)
        batch = build_batch(
            [SimpleRecord(k, v, timestamp=now) for k, v in records], compression=codec, **fields
        )
        info = plog.append(batch)
        if producer is not None:
            self.last_batch_of[producer] = info.base_offset
            self.last_batch_time_of[producer] = now
        for i, (key, value) in enumerate(records):
            self.produced.append(Produced(info.base_offset + i, key, value))

    @rule(count=st.integers(2, 12), seed=st.integers(0, 2**16))
    def produce_many(self, count: int, seed: int) -> None:
        """Several single-record batches: enough to roll segments between cleans."""
        for i in range(count):
            key = KEYS[(seed + i * 7) % len(KEYS)]
            value = None if (seed + i) % 9 == 0 else f"{seed}-{i}".encode()
            self.produce([(key, value)], None if i % 3 else 1 + (seed % 2), Compression.NONE)

    @rule(map_bytes=st.sampled_from([100, 200, 1 << 20]))
    def clean(self, map_bytes: int) -> None:
        plog = self.h.log()
        before = read_cleaner_checkpoint(plog) or 0
        ctx = run_clean(
            plog,
            self.h.clock.now_ms(),
            map_bytes=map_bytes,
            producer_id_expiration_ms=PRODUCER_ID_EXPIRATION_MS,
        )
        after = read_cleaner_checkpoint(plog) or 0
        assert after >= before, "the cleaner checkpoint only moves forward"
        if ctx is not None:
            event(
                "a clean ran"
                if ctx.stats.records_kept < ctx.stats.records_read
                else "nothing removed"
            )
            # A batch of the segments this clean rewrote that keeps a tombstone gets a horizon
            # this far ahead, unless it had one; that includes tombstones past the end of the
            # map, in the same segments (Kafka's filterTo stamps every retained tombstone's
            # batch, mapped or not).
            now = self.h.clock.now_ms()
            for batch in read_batches(plog):
                header = batch.header
                if not header.attributes & 0x40:
                    continue
                for record in batch.records:
                    if record.value is None and record.offset not in self.tombstone_removable_from:
                        assert header.base_timestamp == now + DELETE_RETENTION_MS
                        self.tombstone_removable_from[record.offset] = header.base_timestamp

    @rule(ms=st.integers(0, 4_000))
    def time_passes(self, ms: int) -> None:
        self.h.clock.advance(ms)

    @rule()
    def roll(self) -> None:
        self.h.log().roll()

    @rule()
    def reopen(self) -> None:
        self.h.close()
        self.h.open()

    @rule(where=st.floats(0, 1), max_bytes=st.integers(1, 3000))
    def read_anywhere(self, where: float, max_bytes: int) -> None:
        plog = self.h.log()
        start, end = plog.log_start_offset, plog.log_end_offset
        offset = start + int(where * (end - start))
        result = plog.read(offset, max_bytes)
        data = memoryview(result.data)
        position, previous = 0, -1
        while position < len(data):
            header = read_header(data, position)
            assert position + header.size <= len(data), "a read returns whole batches"
            assert crc_matches(data, position, header.size)
            assert header.base_offset > previous
            previous = header.base_offset
            position += header.size
        if offset == end or not any(True for _ in plog.headers_from(offset)):
            # Nothing from here to the end: the cleaner removed every batch past the offset
            # (the active segment is empty). Kafka answers such a Fetch with no records too.
            assert not data
            return
        assert data, "a read below the end returns a batch"
        first = read_header(data)
        kept = [b.header for b in read_batches(plog)]
        holding = next(h for h in kept if h.last_offset >= offset)
        assert first.base_offset == holding.base_offset
        assert result.next_offset > offset

    @invariant()
    def log_matches_model(self) -> None:
        if getattr(self, "h", None) is None or self.h.manager is None:
            return
        plog = self.h.log()
        checkpoint = read_cleaner_checkpoint(plog) or 0
        batches = read_batches(plog)
        got = [(r.offset, r.key, r.value) for b in batches for r in b.records]
        assert [o for o, _, _ in got] == sorted({o for o, _, _ in got}), "offsets only increase"
        latest = {r.key: r for r in self.produced if r.offset < checkpoint}
        now = self.h.clock.now_ms()
        for offset, key, value in got:
            if offset < checkpoint:
                assert latest[key].offset == offset and latest[key].value == value
        present = {o for o, _, _ in got}
        for record in latest.values():
            if record.offset in present:
                continue
            removable = self.tombstone_removable_from.get(record.offset)
            assert record.value is None and removable is not None and removable <= now, (
                f"latest record of {record.key!r} at {record.offset} is missing"
            )
        assert [(o, k, v) for o, k, v in got if o >= checkpoint] == [
            (r.offset, r.key, r.value) for r in self.produced if r.offset >= checkpoint
        ]
        bases = {b.header.base_offset for b in batches}
        live = {
            offset
            for pid, offset in self.last_batch_of.items()
            if now - self.last_batch_time_of[pid] < PRODUCER_ID_EXPIRATION_MS
        }
        if len(live) < len(self.last_batch_of):
            event("a producer expired")
        assert live <= bases, "a live producer's last batch went"


TestCompactedLog = CompactedLogMachine.TestCase
TestCompactedLog.settings = settings(
    max_examples=50,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
