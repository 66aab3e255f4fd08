"""KIP-932 share-group membership and Kafka 4.4's simple assignor (shoal.coordinator.share_*)."""

from __future__ import annotations

import pytest

from shoal.coordinator.share_assignor import simple_assign
from shoal.coordinator.share_group import ShareGroup, ShareGroupError, ShareGroupSettings
from shoal.protocol.errors import ErrorCode
from shoal.testing.clock import FakeClock


def _counts(assignment: dict[str, dict[str, frozenset[int]]]) -> dict[str, int]:
    return {m: sum(len(ps) for ps in a.values()) for m, a in assignment.items()}


def test_fewer_members_than_partitions_split_them() -> None:
    out = simple_assign({"a": ["t"], "b": ["t"]}, {"t": 5}, {})
    assert sorted(_counts(out).values()) == [2, 3]
    assert out["a"]["t"] | out["b"]["t"] == frozenset(range(5))
    assert not out["a"]["t"] & out["b"]["t"]


def test_more_members_than_partitions_share_each() -> None:
    members = {m: ["t"] for m in "abcde"}
    out = simple_assign(members, {"t": 2}, {})
    # ceil(5/2) = 3 members per partition: 6 slots, Kafka's quotas ceil(1.2(i+1)) - ceil(1.2i).
    assert [_counts(out)[m] for m in "abcde"] == [2, 1, 1, 1, 1]
    holders = [sum(p in a.get("t", ()) for a in out.values()) for p in range(2)]
    assert holders == [3, 3]


def test_one_partition_goes_to_every_member_and_sticks() -> None:
    first = simple_assign({"a": ["t"], "b": ["t"]}, {"t": 1}, {})
    assert first == {"a": {"t": frozenset({0})}, "b": {"t": frozenset({0})}}
    out = simple_assign({"a": ["t"], "b": ["t"], "c": ["u"]}, {"t": 2, "u": 1}, first)
    assert out["c"] == {"u": frozenset({0})}
    assert out["a"]["t"] | out["b"]["t"] == frozenset({0, 1})


def test_heartbeat_join_leave_and_fencing() -> None:
    clock = FakeClock()
    group = ShareGroup("g", clock, ShareGroupSettings(session_timeout_ms=1000))
    a = group.heartbeat("a", 0, ("t",), {"t": 2})
    assert (a.member_epoch, a.assignment) == (2, {"t": frozenset({0, 1})})
    b = group.heartbeat("b", 0, ("t",), {"t": 2})
    assert b.member_epoch == 3
    again = group.heartbeat("a", 2, None, {"t": 2})
    assert again.member_epoch == 3 and again.assignment is not None  # moved on, told
    assert group.heartbeat("a", 3, None, {"t": 2}).assignment is None
    with pytest.raises(ShareGroupError) as fenced:
        group.heartbeat("b", 1, None, {"t": 2})
    assert fenced.value.code is ErrorCode.FENCED_MEMBER_EPOCH
    with pytest.raises(ShareGroupError) as unknown:
        group.heartbeat("z", 5, None, {"t": 2})
    assert unknown.value.code is ErrorCode.UNKNOWN_MEMBER_ID
    assert group.heartbeat("b", -1, None, {"t": 2}).member_epoch == -1
    clock.advance(1000)
    assert group.expire_sessions() == ["a"]
    assert group.state == "Empty"


@pytest.mark.parametrize(
    ("member_id", "epoch", "subscription", "message"),
    [
        ("", 0, ("t",), "MemberId can't be empty."),
        ("m", 0, None, "SubscribedTopicNames must be set in first request."),
        ("m", -2, ("t",), "MemberEpoch is invalid."),
    ],
)
def test_bad_heartbeats_refused(
    member_id: str, epoch: int, subscription: tuple[str, ...] | None, message: str
) -> None:
    group = ShareGroup("g", FakeClock(), ShareGroupSettings())
    with pytest.raises(ShareGroupError) as refused:
        group.heartbeat(member_id, epoch, subscription, {"t": 1})
    assert (refused.value.code, refused.value.message) == (ErrorCode.INVALID_REQUEST, message)
    assert group.members == {}
