"""Committed offsets and group metadata survive a restart through ``__consumer_offsets``, and
the log's snapshots keep it bounded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.coordinator.group_config import GroupConfig
from shoal.coordinator.group_coordinator import GroupCoordinator
from shoal.coordinator.group_state import GroupState
from shoal.coordinator.offsets_log import (
    OFFSETS_TOPIC,
    CommittedOffset,
    OffsetsLog,
    offsets_log_config,
)
from shoal.protocol.errors import ErrorCode
from shoal.storage import LogConfig, LogManager
from shoal.testing.clock import FakeClock
from tests.coordinator.groups.machine import SESSION_MS, Machine


class Store:
    """A data directory with the offsets log, reopened at will (a broker restart)."""

    def __init__(self, path: Path, config: GroupConfig) -> None:
        self.path = str(path)
        self.config = config
        self.logs: LogManager | None = None

    def open(self) -> OffsetsLog:
        self.close()
        self.logs = LogManager.open(self.path)
        plog = self.logs.get(OFFSETS_TOPIC, 0) or self.logs.create(
            OFFSETS_TOPIC, 0, offsets_log_config(LogConfig(), self.config)
        )
        plog.update_config(offsets_log_config(LogConfig(), self.config))
        return OffsetsLog(plog, self.config, FakeClock(), plog.append)

    def close(self) -> None:
        if self.logs is not None:
            self.logs.close()
            self.logs = None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(
        tmp_path, GroupConfig(offsets_snapshot_bytes=64 * 1024, offsets_segment_bytes=16 * 1024)
    )
    yield s
    s.close()


def _commit(coordinator: GroupCoordinator, group: str, offsets: dict[tuple[str, int], int]) -> None:
    error, errors, durable = coordinator.commit_offsets(
        group,
        "",
        None,
        -1,
        {tp: CommittedOffset(o, 3, f"meta-{o}", 1000) for tp, o in offsets.items()},
    )
    assert error is ErrorCode.NONE and not errors
    assert durable is not None
    durable.result(timeout=10)


def test_offsets_and_groups_are_replayed_at_start(store: Store) -> None:
    m = Machine(offsets_log=store.open())
    m.stable_group(2)
    generation = m.coordinator.groups["g"].generation_id
    _commit(m.coordinator, "simple", {("t", 0): 5, ("t", 1): 7})
    _commit(m.coordinator, "simple", {("t", 0): 6})

    reloaded = GroupCoordinator(FakeClock(), store.config, store.open())
    assert reloaded.fetch_offsets("simple", None) == {
        ("t", 0): CommittedOffset(6, 3, "meta-6", 1000),
        ("t", 1): CommittedOffset(7, 3, "meta-7", 1000),
    }
    group = reloaded.groups["g"]
    # Members are not persisted: the group comes back Empty, its generation kept.
    assert group.state is GroupState.EMPTY and group.members == {}
    assert group.generation_id == generation and group.protocol_type == "consumer"


def test_deleted_offsets_and_groups_stay_deleted(store: Store) -> None:
    coordinator = GroupCoordinator(FakeClock(), store.config, store.open())
    _commit(coordinator, "a", {("t", 0): 1, ("t", 1): 2})
    _commit(coordinator, "b", {("t", 0): 3})
    assert coordinator.delete_offsets("a", [("t", 1)]) == (
        ErrorCode.NONE,
        {("t", 1): ErrorCode.NONE},
    )
    assert coordinator.delete_group("b") is ErrorCode.NONE

    reloaded = GroupCoordinator(FakeClock(), store.config, store.open())
    assert reloaded.fetch_offsets("a", None) == {("t", 0): CommittedOffset(1, 3, "meta-1", 1000)}
    assert "b" not in reloaded.groups and reloaded.fetch_offsets("b", None) == {}


def test_offset_delete_refuses_topics_the_group_is_subscribed_to() -> None:
    m = Machine()
    # A consumer subscription: version 0, one topic "t".
    subscription = b"\x00\x00" + b"\x00\x00\x00\x01" + b"\x00\x01t" + b"\xff\xff\xff\xff"
    member_id, _ = m.new_member(protocols=(("range", subscription),))
    gen = m.coordinator.groups["g"].generation_id
    m.coordinator.commit_offsets("g", member_id, None, gen, {("t", 0): CommittedOffset(1)})
    m.coordinator.commit_offsets("g", member_id, None, gen, {("u", 0): CommittedOffset(1)})
    error, errors = m.coordinator.delete_offsets("g", [("t", 0), ("u", 0)])
    assert error is ErrorCode.NONE
    assert errors == {("t", 0): ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC, ("u", 0): ErrorCode.NONE}
    assert m.coordinator.delete_offsets("nope", [])[0] is ErrorCode.GROUP_ID_NOT_FOUND
    m.advance(SESSION_MS)


def test_snapshots_bound_the_log_and_keep_the_state(store: Store) -> None:
    offsets_log = store.open()
    coordinator = GroupCoordinator(FakeClock(), store.config, offsets_log)
    snapshots = 0
    for i in range(3000):
        _commit(coordinator, f"g{i % 7}", {("t", i % 5): i})
        pending = coordinator.maybe_snapshot()
        if pending is not None:
            pending.durable.result(timeout=10)
            offsets_log.finish_snapshot(pending.first_offset)
            snapshots += 1
        # The state is 35 offsets; the log never holds much more than the threshold.
        assert offsets_log.plog.size_bytes < 2 * store.config.offsets_snapshot_bytes
    assert snapshots >= 3
    assert offsets_log.plog.log_start_offset > 0
    expected = {g: coordinator.fetch_offsets(g, None) for g in coordinator.groups}

    reloaded = GroupCoordinator(FakeClock(), store.config, store.open())
    assert {g: reloaded.fetch_offsets(g, None) for g in reloaded.groups} == expected
    assert len(expected) == 7 and all(len(v) == 5 for v in expected.values())


def test_a_crash_between_snapshot_and_deletion_loses_nothing(store: Store) -> None:
    offsets_log = store.open()
    coordinator = GroupCoordinator(FakeClock(), store.config, offsets_log)
    for i in range(800):
        _commit(coordinator, "g", {("t", i % 3): i})
    _commit(coordinator, "gone", {("t", 0): 1})
    coordinator.delete_group("gone")
    pending = coordinator.maybe_snapshot()
    assert pending is not None
    pending.durable.result(timeout=10)
    # No finish_snapshot: the process died here. Old records and the snapshot are both kept.
    reloaded = GroupCoordinator(FakeClock(), store.config, store.open())
    assert reloaded.fetch_offsets("g", None) == coordinator.fetch_offsets("g", None)
    assert "gone" not in reloaded.groups
