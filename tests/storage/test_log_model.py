"""A Hypothesis state machine drives PartitionLog and a plain list side by side.

Operations: append (real batches, every codec, random record timestamps), read at any offset
with any byte limit, roll, retention by time and by bytes, delete-records, clean close and
reopen, crash (power loss) and reopen, lookup by time. After every step the log must agree with
the model.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from shoal.records import Compression, SimpleRecord, build_batch, read_header
from shoal.storage import LogConfig, OffsetOutOfRangeError
from tests.storage.batches import payload_of
from tests.storage.support import Harness

NOW = 1_700_000_000_000


@dataclass(frozen=True)
class ModelBatch:
    base: int
    count: int
    payload: bytes  # the batch without baseOffset
    timestamps: tuple[int, ...]

    @property
    def next(self) -> int:
        return self.base + self.count


class PartitionLogMachine(RuleBasedStateMachine):
    @initialize(
        segment_bytes=st.sampled_from([300, 900, 4000, 1 << 20]),
        index_interval=st.sampled_from([1, 100, 4096]),
        retention_bytes=st.sampled_from([-1, 1500, 6000]),
    )
    def start(self, segment_bytes: int, index_interval: int, retention_bytes: int) -> None:
        self.h = Harness(
            config=LogConfig(
                segment_bytes=segment_bytes,
                index_interval_bytes=index_interval,
                retention_bytes=retention_bytes,
                retention_ms=60_000,
                checkpoint_interval_ms=10**12,
            )
        )
        self.h.open()
        self.batches: list[ModelBatch] = []
        self.start_offset = 0

    def teardown(self) -> None:
        if getattr(self, "h", None) is not None and self.h.manager is not None:
            self.h.manager.abandon()

    @property
    def end(self) -> int:
        return self.batches[-1].next if self.batches else self.start_offset

    @rule(
        # Single-record batches are common (low-rate producers) and stress offset edges.
        timestamps=st.one_of(
            st.lists(st.integers(-50_000, 50_000), min_size=1, max_size=1),
            st.lists(st.integers(-50_000, 50_000), min_size=1, max_size=6),
        ),
        value_size=st.integers(0, 300),
        codec=st.sampled_from(list(Compression)),
    )
    def append(self, timestamps: list[int], value_size: int, codec: Compression) -> None:
        records = [
            SimpleRecord(
                key=f"k{i}".encode(),
                value=bytes([i % 251]) * value_size,
                timestamp=self.h.clock.now_ms() + delta,
            )
            for i, delta in enumerate(timestamps)
        ]
        batch = build_batch(records, compression=codec)
        plog = self.h.log()
        info = plog.append(batch)
        plog.wait_durable(info.last_offset).result(timeout=10)
        assert info.base_offset == self.end
        assert info.last_offset == self.end + len(records) - 1
        self.batches.append(
            ModelBatch(
                self.end, len(records), payload_of(batch), tuple(r.timestamp or 0 for r in records)
            )
        )

    @rule(where=st.floats(0, 1), max_bytes=st.integers(1, 5000))
    def read(self, where: float, max_bytes: int) -> None:
        offset = self.start_offset + int(where * (self.end - self.start_offset))
        result = self.h.log().read(offset, max_bytes)
        if offset == self.end:
            assert result.data == b""
            return
        got = split(result.data)
        first = next(i for i, b in enumerate(self.batches) if b.next > offset)
        expected = self.batches[first : first + len(got)]
        assert got, "a read below the end returns at least one batch"
        assert [(b.base, b.payload) for b in expected] == got
        assert len(result.data) <= max_bytes or len(got) == 1
        assert result.next_offset == expected[-1].next

    @rule(where=st.floats(0, 1), max_offset_where=st.floats(0, 1))
    def read_below_a_limit(self, where: float, max_offset_where: float) -> None:
        span = self.end - self.start_offset
        offset = self.start_offset + int(where * span)
        limit = self.start_offset + int(max_offset_where * span)
        got = split(self.h.log().read(offset, 1 << 20, max_offset=limit).data)
        assert all(base < limit for base, _ in got)

    @rule()
    def read_out_of_range_is_refused(self) -> None:
        for offset in (self.end + 1, self.start_offset - 1):
            if offset < 0:
                continue
            try:
                self.h.log().read(offset, 100)
            except OffsetOutOfRangeError:
                continue
            raise AssertionError(f"read at {offset} outside the log was not refused")

    @rule()
    def roll(self) -> None:
        self.h.log().roll()

    @rule(ms=st.integers(0, 90_000))
    def retention(self, ms: int) -> None:
        self.h.clock.advance(ms)
        plog = self.h.log()
        plog.apply_retention()
        self._follow_log_start(plog.log_start_offset)
        config = plog.config
        if config.retention_bytes >= 0 and plog.segment_count > 1:
            assert plog.size_bytes - plog._segments[0].size < config.retention_bytes
        horizon = self.h.clock.now_ms() - config.retention_ms
        for segment in plog._segments[:1]:
            if plog.segment_count > 1:
                assert segment.max_timestamp >= horizon or segment.max_timestamp < 0

    @rule(where=st.floats(0, 1))
    def delete_records(self, where: float) -> None:
        target = self.start_offset + int(where * (self.end - self.start_offset))
        assert self.h.log().delete_records(target) == max(target, self.start_offset)
        self._follow_log_start(max(target, self.start_offset))

    def _follow_log_start(self, new_start: int) -> None:
        assert new_start >= self.start_offset
        self.start_offset = new_start
        self.batches = [b for b in self.batches if b.next > new_start]

    @rule()
    def close_and_reopen(self) -> None:
        self.h.close()
        self.h.open()

    @rule(keep_unsynced=st.booleans())
    def power_loss_and_reopen(self, keep_unsynced: bool) -> None:
        self.h.crash(keep_unsynced=keep_unsynced)
        self.h.open()

    @rule(delta=st.integers(-60_000, 60_000))
    def lookup_by_time(self, delta: int) -> None:
        target = self.h.clock.now_ms() + delta
        expected = None
        for b in self.batches:
            for i, ts in enumerate(b.timestamps):
                if b.base + i >= self.start_offset and ts >= target:
                    expected = (b.base + i, ts)
                    break
            if expected is not None:
                break
        found = self.h.log().offset_for_timestamp(target)
        assert (found if found is None else (found.offset, found.timestamp)) == expected

    @invariant()
    def offsets_agree(self) -> None:
        if getattr(self, "h", None) is None:
            return
        plog = self.h.log()
        assert plog.log_end_offset == self.end
        assert plog.log_start_offset == self.start_offset


def split(data: bytes) -> list[tuple[int, bytes]]:
    out, position = [], 0
    while position < len(data):
        header = read_header(data, position)
        out.append((header.base_offset, payload_of(data[position : position + header.size])))
        position += header.size
    return out


PartitionLogMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_partition_log_matches_model = PartitionLogMachine.TestCase
