"""KIP-932 share sessions (shoal.broker.share_groups): epoch 0 opens (replacing an old
session), each later request carries the epoch the last one was given, -1 closes."""

from __future__ import annotations

import pytest

from shoal.broker.share_groups import MAX_EPOCH, ShareGroups, ShareSessionError, next_epoch
from shoal.coordinator.share_partition import RecordState, SharePartition, SharePartitionSettings
from shoal.protocol import ErrorCode
from shoal.testing.clock import FakeClock


def test_session_epochs() -> None:
    shares = ShareGroups(FakeClock())
    with pytest.raises(ShareSessionError) as missing:
        shares.session("g", "m", 1, set(), set())
    assert missing.value.code is ErrorCode.SHARE_SESSION_NOT_FOUND
    opened = shares.session("g", "m", 0, {("t", 0), ("t", 1)}, set())
    assert opened is not None and opened.epoch == 1
    with pytest.raises(ShareSessionError) as stale:
        shares.session("g", "m", 2, set(), set())
    assert stale.value.code is ErrorCode.INVALID_SHARE_SESSION_EPOCH
    later = shares.session("g", "m", 1, {("u", 0)}, {("t", 1)})
    assert later is not None and later.epoch == 2
    assert later.partitions == {("t", 0), ("u", 0)}
    reopened = shares.session("g", "m", 0, {("v", 0)}, set())
    assert reopened is not None and reopened.partitions == {("v", 0)} and reopened.epoch == 1
    assert shares.session("g", "m", -1, set(), set()) is None
    with pytest.raises(ShareSessionError):
        shares.session("g", "m", 1, set(), set())
    assert next_epoch(MAX_EPOCH) == 1


def test_a_session_ends_with_the_connection_that_opened_it() -> None:
    """Kafka 4.4's share-session cache maps each connection to the session it opened last and
    ends that session when the connection closes, releasing what its member holds."""
    clock = FakeClock()
    shares = ShareGroups(clock)
    woken: list[tuple[str, int]] = []
    shares.wake = lambda topic, index: woken.append((topic, index))
    sp = shares.partitions[("g", "t", 0)] = SharePartition(clock, SharePartitionSettings(), 0)
    assert sp.acquire("m", range(3), 3)
    shares.session("g", "m", 0, {("t", 0)}, set(), "conn-1")
    shares.session("g", "other", 0, {("t", 0)}, set(), "conn-2")
    shares.connection_closed("conn-9")  # no session of its own: nothing happens
    assert ("g", "m") in shares.sessions and woken == []
    shares.connection_closed("conn-1")
    assert ("g", "m") not in shares.sessions and ("g", "other") in shares.sessions
    assert woken == [("t", 0)]
    assert all(r.state is RecordState.AVAILABLE for r in sp.records.values())
    shares.connection_closed("conn-1")  # once only
    assert woken == [("t", 0)]
    # A session already closed (epoch -1) before its connection went: nothing left to end.
    assert shares.session("g", "other", -1, set(), set()) is None
    shares.connection_closed("conn-2")
    assert woken == [("t", 0)]


def test_closing_an_old_connection_keeps_the_session_reopened_on_a_new_one() -> None:
    """A member that reopened its session on connection B (after a reconnect) keeps it, and
    its records, when the server only then notices that connection A is gone: Kafka 4.4's
    cache marks A's entry stale when B's session replaces it (found in review: the old
    connection's close ended the new session and released its records for redelivery)."""
    clock = FakeClock()
    shares = ShareGroups(clock)
    woken: list[tuple[str, int]] = []
    shares.wake = lambda topic, index: woken.append((topic, index))
    sp = shares.partitions[("g", "t", 0)] = SharePartition(clock, SharePartitionSettings(), 0)
    shares.session("g", "m", 0, {("t", 0)}, set(), "conn-A")
    on_b = shares.session("g", "m", 0, {("t", 0)}, set(), "conn-B")
    assert sp.acquire("m", range(5), 5)
    shares.connection_closed("conn-A")
    assert shares.sessions.get(("g", "m")) is on_b and woken == []
    assert all(r.state is RecordState.ACQUIRED for r in sp.records.values())
    shares.connection_closed("conn-B")
    assert ("g", "m") not in shares.sessions and woken == [("t", 0)]


def test_a_session_closed_with_epoch_minus_one_is_forgotten_by_its_connection() -> None:
    """After a close (-1) and a reopen on another connection, the first connection's close
    ends nothing."""
    shares = ShareGroups(FakeClock())
    shares.session("g", "m", 0, {("t", 0)}, set(), "conn-A")
    assert shares.session("g", "m", -1, set(), set()) is None
    reopened = shares.session("g", "m", 0, {("t", 0)}, set(), "conn-B")
    shares.connection_closed("conn-A")
    assert shares.sessions.get(("g", "m")) is reopened
