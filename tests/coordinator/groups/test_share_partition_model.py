"""A model test of the KIP-932 share-partition state machine (shoal.coordinator.share_partition).

Hypothesis drives one share-partition on a fake clock: a producer appends records, three
members fetch (acquire), acknowledge what they hold with every acknowledgement type (ACCEPT,
RELEASE, REJECT, GAP), send bad acknowledgements (records they do not hold, bad types, bad
ranges), let time pass so locks expire, leave (their records are released), and the broker
restarts from its durable snapshot. A plain per-offset model says what each record must be;
after every step:

- every record's state and delivery count match the model, and the start offset is the
  first record not done;
- no record is delivered more than ``share.delivery.count.limit`` times, an acknowledged
  record is never acquired again, a record is acquired by one member at a time;
- a refused acknowledgement changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shoal.coordinator.share_partition import (
    AcknowledgementBatch,
    AcknowledgeType,
    RecordState,
    SharePartition,
    SharePartitionError,
    SharePartitionSettings,
)
from shoal.protocol.errors import ErrorCode
from shoal.testing.clock import FakeClock

LOCK_MS = 1_000
LIMIT = 3
MAX_LOCKS = 12
MEMBERS = ("m1", "m2", "m3")
SETTINGS = SharePartitionSettings(
    record_lock_duration_ms=LOCK_MS, delivery_count_limit=LIMIT, max_record_locks=MAX_LOCKS
)


@dataclass
class Rec:
    state: RecordState = RecordState.AVAILABLE
    count: int = 0
    owner: str | None = None
    deadline: float = 0.0


class SharePartitionModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.start = 4  # as if share.auto.offset.reset placed it past older records
        self.sp = SharePartition(self.clock, SETTINGS, self.start)
        self.log_end = self.start
        self.model: dict[int, Rec] = {}
        self.ever_acknowledged: set[int] = set()

    # -- the model's rules ----------------------------------------------------------------

    def _unlock(self, rec: Rec) -> None:
        rec.owner = None
        rec.state = RecordState.ARCHIVED if rec.count >= LIMIT else RecordState.AVAILABLE

    def _model_expire(self) -> None:
        now = self.clock.monotonic_ms()
        for rec in self.model.values():
            if rec.state is RecordState.ACQUIRED and rec.deadline <= now:
                self._unlock(rec)

    def _model_start(self) -> int:
        offset = self.start
        while offset in self.model and self.model[offset].state in (
            RecordState.ACKNOWLEDGED,
            RecordState.ARCHIVED,
        ):
            offset += 1
        return offset

    def _acquired_by(self, member: str) -> list[int]:
        return sorted(
            o
            for o, r in self.model.items()
            if r.state is RecordState.ACQUIRED and r.owner == member
        )

    # -- rules ----------------------------------------------------------------------------

    @rule(n=st.integers(1, 6))
    def produce(self, n: int) -> None:
        for offset in range(self.log_end, self.log_end + n):
            self.model[offset] = Rec()
        self.log_end += n

    @rule(member=st.sampled_from(MEMBERS), max_records=st.integers(1, 8))
    def fetch(self, member: str, max_records: int) -> None:
        self._model_expire()
        start = self._model_start()
        fetch_from = self.sp.next_fetch_offset()
        expected_from = min(
            (o for o, r in self.model.items() if o >= start and r.state is RecordState.AVAILABLE),
            default=self.log_end,
        )
        seen = [o for o in self.model if self.model[o].count > 0]
        end = max(seen) + 1 if seen else start
        expected_from = min(expected_from, max(end, start))
        assert fetch_from == expected_from
        ranges = self.sp.acquire(member, range(fetch_from, self.log_end), max_records)
        got = [
            (o, r.delivery_count) for r in ranges for o in range(r.first_offset, r.last_offset + 1)
        ]
        # What the model says the fetch must take, in offset order.
        want: list[tuple[int, int]] = []
        deadline = self.clock.monotonic_ms() + LOCK_MS
        for offset in range(fetch_from, self.log_end):
            if len(want) >= max_records:
                break
            rec = self.model[offset]
            if rec.count == 0 and offset >= end and end - self._model_start() >= MAX_LOCKS:
                break
            if rec.state is not RecordState.AVAILABLE:
                continue
            assert offset not in self.ever_acknowledged
            rec.state, rec.count, rec.owner, rec.deadline = (
                RecordState.ACQUIRED,
                rec.count + 1,
                member,
                deadline,
            )
            if offset >= end:
                end = offset + 1
            want.append((offset, rec.count))
        assert got == want

    @rule(
        member=st.sampled_from(MEMBERS),
        data=st.data(),
        kind=st.sampled_from(list(AcknowledgeType)),
        per_offset=st.booleans(),
    )
    def acknowledge(
        self, member: str, data: st.DataObject, kind: AcknowledgeType, per_offset: bool
    ) -> None:
        self._model_expire()
        held = self._acquired_by(member)
        if not held:
            return
        first = data.draw(st.sampled_from(held))
        # A contiguous run of held offsets from `first`.
        last = first
        while last + 1 in held and data.draw(st.booleans()):
            last += 1
        if per_offset:
            types = tuple(
                data.draw(st.sampled_from(list(AcknowledgeType))) for _ in range(first, last + 1)
            )
        else:
            types = (kind,)
        self.sp.acknowledge(member, [AcknowledgementBatch(first, last, types)])
        for i, offset in enumerate(range(first, last + 1)):
            t = types[0] if len(types) == 1 else types[i]
            rec = self.model[offset]
            if t is AcknowledgeType.ACCEPT:
                rec.state, rec.owner = RecordState.ACKNOWLEDGED, None
                self.ever_acknowledged.add(offset)
            elif t is AcknowledgeType.RELEASE:
                self._unlock(rec)
            else:
                rec.state, rec.owner = RecordState.ARCHIVED, None

    @rule(member=st.sampled_from(MEMBERS), data=st.data())
    def bad_acknowledge(self, member: str, data: st.DataObject) -> None:
        """A batch naming one offset the member does not hold, after a good one: refused whole."""
        self._model_expire()
        held = self._acquired_by(member)
        others = [o for o in range(self.start, self.log_end + 2) if o not in held]
        bad = data.draw(st.sampled_from(others))
        batches = [AcknowledgementBatch(o, o, (AcknowledgeType.ACCEPT,)) for o in held[:1]]
        batches.append(AcknowledgementBatch(bad, bad, (AcknowledgeType.ACCEPT,)))
        before = self.sp.snapshot()
        with pytest.raises(SharePartitionError) as refused:
            self.sp.acknowledge(member, batches)
        assert refused.value.code is ErrorCode.INVALID_RECORD_STATE
        assert self.sp.snapshot() == before

    @rule(member=st.sampled_from(MEMBERS), data=st.data())
    @precondition(lambda self: any(r.state is RecordState.ACQUIRED for r in self.model.values()))
    def malformed_acknowledge(self, member: str, data: st.DataObject) -> None:
        self._model_expire()
        held = self._acquired_by(member)
        if not held:
            return
        o = held[0]
        batch = data.draw(
            st.sampled_from(
                [
                    AcknowledgementBatch(o, o - 1, (1,)),
                    AcknowledgementBatch(o, o, (1, 1)),
                    AcknowledgementBatch(o, o, (9,)),
                ]
            )
        )
        before = self.sp.snapshot()
        with pytest.raises(SharePartitionError) as refused:
            self.sp.acknowledge(member, [batch])
        assert refused.value.code is ErrorCode.INVALID_REQUEST
        assert self.sp.snapshot() == before

    @rule(ms=st.sampled_from([1, LOCK_MS // 2, LOCK_MS - 1, LOCK_MS, 3 * LOCK_MS]))
    def time_passes(self, ms: int) -> None:
        self.clock.advance(ms)
        self._model_expire()
        self.sp.expire_locks()

    @rule(member=st.sampled_from(MEMBERS))
    def member_leaves(self, member: str) -> None:
        self._model_expire()
        for offset in self._acquired_by(member):
            self._unlock(self.model[offset])
        self.sp.release_member(member)

    @rule()
    def restart(self) -> None:
        self._model_expire()
        for rec in self.model.values():
            if rec.state is RecordState.ACQUIRED:
                self._unlock(rec)
        self.sp = SharePartition.restore(self.clock, SETTINGS, self.sp.snapshot())

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def matches_model(self) -> None:
        self._model_expire()
        self.sp.expire_locks()
        assert self.sp.start_offset == self._model_start()
        for offset, rec in self.model.items():
            if rec.count == 0:
                assert offset not in self.sp.records  # never delivered
                continue
            if offset < self.sp.start_offset:
                assert rec.state in (RecordState.ACKNOWLEDGED, RecordState.ARCHIVED)
                continue
            got = self.sp.records[offset]
            assert (got.state, got.delivery_count) == (rec.state, rec.count)
            if rec.state is RecordState.ACQUIRED:
                assert got.member_id == rec.owner
                assert got.lock_deadline_ms is not None
                assert got.lock_deadline_ms > self.clock.monotonic_ms()

    @invariant()
    def bounded(self) -> None:
        assert all(r.delivery_count <= LIMIT for r in self.sp.records.values())
        assert all(self.sp.start_offset <= o < self.sp.end_offset for o in self.sp.records)
        assert self.sp.end_offset - self.sp.start_offset <= MAX_LOCKS

    @invariant()
    def snapshot_round_trips(self) -> None:
        state = self.sp.snapshot()
        assert SharePartition.restore(self.clock, SETTINGS, state).snapshot() == state


SharePartitionModel.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_share_partition_model = SharePartitionModel.TestCase
