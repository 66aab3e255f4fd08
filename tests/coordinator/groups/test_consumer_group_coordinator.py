"""KIP-848 groups in the coordinator: Kafka 4.4's answers to bad heartbeats, member-epoch
checks on commits, fencing on timeouts, and a restart that keeps members, epochs and
assignments (``__consumer_offsets``)."""

from __future__ import annotations

import dataclasses
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from shoal.coordinator.consumer_group import (
    ConsumerGroupError,
    ConsumerHeartbeat,
)
from shoal.coordinator.consumer_group_checks import check_heartbeat
from shoal.coordinator.group_config import GroupConfig
from shoal.coordinator.group_coordinator import GroupCoordinator
from shoal.coordinator.offsets_log import CommittedOffset, OffsetsLog
from shoal.protocol.errors import ErrorCode
from shoal.storage import StorageError
from shoal.testing.clock import FakeClock
from tests.coordinator.groups.test_offsets_log import Store

TOPICS = {"t": 4}


def _join(
    member_id: str, instance: str | None = None, topics: tuple[str, ...] = ("t",)
) -> ConsumerHeartbeat:
    return ConsumerHeartbeat(
        member_id=member_id,
        member_epoch=0,
        instance_id=instance,
        rebalance_timeout_ms=30_000,
        subscribed_topic_names=topics,
        owned={},
    )


def _beat(
    member_id: str,
    epoch: int,
    owned: dict[str, frozenset[int]] | None = None,
    instance: str | None = None,
) -> ConsumerHeartbeat:
    return ConsumerHeartbeat(
        member_id=member_id, member_epoch=epoch, instance_id=instance, owned=owned
    )


def _error(call: object) -> tuple[ErrorCode, str]:
    assert callable(call)
    with pytest.raises(ConsumerGroupError) as info:
        call()
    return info.value.error, info.value.message


@pytest.mark.parametrize(
    ("changes", "version", "message"),
    [
        ({"member_id": ""}, 1, "MemberId can't be empty."),
        ({"rebalance_timeout_ms": -1}, 1, "RebalanceTimeoutMs must be provided in first request."),
        ({"owned": {"t": frozenset({0})}}, 1, "TopicPartitions must be empty when (re-)joining."),
        ({"member_epoch": -3}, 1, "MemberEpoch is invalid."),
        ({"instance_id": ""}, 1, "InstanceId can't be empty."),
        ({"member_epoch": -2}, 1, "InstanceId can't be null."),
        (
            {"subscribed_topic_names": None},
            1,
            "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when "
            "(re-)joining.",
        ),
    ],
)
def test_bad_heartbeats_get_kafkas_invalid_request(
    changes: dict[str, object], version: int, message: str
) -> None:
    request = dataclasses.replace(_join("m"), **changes)  # type: ignore[arg-type]
    assert _error(
        lambda: check_heartbeat(
            "g", request, api_version=version, assignors=("uniform", "range"),
            owned_given=request.owned is not None,
        )
    ) == (ErrorCode.INVALID_REQUEST, message)  # fmt: skip


def test_unsupported_assignor_and_bad_regex() -> None:
    request = dataclasses.replace(_join("m"), server_assignor="sticky")
    assert _error(
        lambda: check_heartbeat(
            "g", request, api_version=1, assignors=("uniform", "range"), owned_given=True
        )
    ) == (
        ErrorCode.UNSUPPORTED_ASSIGNOR,
        "ServerAssignor sticky is not supported. Supported assignors: uniform, range.",
    )
    request = dataclasses.replace(_join("m"), subscribed_topic_regex="(")
    code, _ = _error(
        lambda: check_heartbeat(
            "g", request, api_version=1, assignors=("uniform",), owned_given=True
        )
    )
    assert code is ErrorCode.INVALID_REGULAR_EXPRESSION


def test_fencing_answers() -> None:
    coordinator = GroupCoordinator(FakeClock())
    answer = coordinator.consumer_heartbeat("g", _join("a"), TOPICS)
    assert answer.member_epoch == 1 and answer.assignment == {"t": frozenset(range(4))}
    assert (
        _error(lambda: coordinator.consumer_heartbeat("g", _beat("a", 7), TOPICS))[0]
        is ErrorCode.FENCED_MEMBER_EPOCH
    )
    assert (
        _error(lambda: coordinator.consumer_heartbeat("g", _beat("zz", 1), TOPICS))[0]
        is ErrorCode.UNKNOWN_MEMBER_ID
    )
    assert _error(lambda: coordinator.consumer_heartbeat("nope", _beat("a", 1), TOPICS)) == (
        ErrorCode.GROUP_ID_NOT_FOUND,
        "Consumer group nope not found.",
    )
    # A static member holds its instance id until it leaves with epoch -2.
    coordinator.consumer_heartbeat("g", _join("s1", "i1"), TOPICS)
    assert (
        _error(lambda: coordinator.consumer_heartbeat("g", _join("s2", "i1"), TOPICS))[0]
        is ErrorCode.UNRELEASED_INSTANCE_ID
    )


def test_revoked_partitions_move_only_after_the_owner_acknowledges() -> None:
    coordinator = GroupCoordinator(FakeClock())
    coordinator.consumer_heartbeat("g", _join("a"), TOPICS)
    b = coordinator.consumer_heartbeat("g", _join("b"), TOPICS)
    assert b.assignment == {}  # a still owns everything
    a = coordinator.consumer_heartbeat("g", _beat("a", 1, {"t": frozenset(range(4))}), TOPICS)
    kept = a.assignment
    assert kept is not None and len(kept["t"]) == 2 and a.member_epoch == 1  # asked to revoke
    b = coordinator.consumer_heartbeat("g", _beat("b", b.member_epoch, {}), TOPICS)
    assert b.assignment is None or b.assignment == {}  # not yet acknowledged
    coordinator.consumer_heartbeat("g", _beat("a", 1, kept), TOPICS)  # acknowledges
    b = coordinator.consumer_heartbeat("g", _beat("b", b.member_epoch, {}), TOPICS)
    assert b.assignment == {"t": frozenset(range(4)) - kept["t"]}


def test_commits_check_the_member_epoch() -> None:
    coordinator = GroupCoordinator(FakeClock())
    coordinator.consumer_heartbeat("g", _join("a"), TOPICS)
    offsets = {("t", 0): CommittedOffset(5)}
    assert coordinator.commit_offsets("g", "a", None, 1, offsets)[0] is ErrorCode.NONE
    assert coordinator.commit_offsets("g", "a", None, 0, offsets)[0] is ErrorCode.STALE_MEMBER_EPOCH
    assert coordinator.commit_offsets("g", "x", None, 1, offsets)[0] is ErrorCode.UNKNOWN_MEMBER_ID
    assert (
        coordinator.commit_offsets("g", "a", None, 1, offsets, 8)[0]
        is ErrorCode.UNSUPPORTED_VERSION
    )
    # An admin commit (epoch -1) needs an empty group.
    assert coordinator.commit_offsets("g", "", None, -1, offsets)[0] is ErrorCode.UNKNOWN_MEMBER_ID


def test_transactional_commits_check_the_member_epoch_as_kafka_does() -> None:
    """TxnOffsetCommit to a KIP-848 group goes through the group's own check (franz-go's
    TestTxnEtl/*/848 aborted every transaction while a classic group of the same id, made by
    the first commit, answered UNKNOWN_MEMBER_ID). It has no STALE_MEMBER_EPOCH: a stale
    epoch is ILLEGAL_GENERATION, any version may commit, and member fields are checked only
    when one is given."""
    coordinator = GroupCoordinator(FakeClock())
    coordinator.consumer_heartbeat("g", _join("a"), TOPICS)
    offsets = {("t", 0): CommittedOffset(5)}

    def commit(member_id: str, epoch: int) -> ErrorCode:
        return coordinator.txn_commit_offsets("g", (7, 0), member_id, None, epoch, offsets)[0]

    assert commit("a", 1) is ErrorCode.NONE
    assert commit("a", 1) is ErrorCode.NONE  # and again: no classic group took the id
    assert coordinator.group("g") is None
    assert commit("a", 0) is ErrorCode.ILLEGAL_GENERATION
    assert commit("x", 1) is ErrorCode.UNKNOWN_MEMBER_ID
    # No member fields at all (v0-2, or a producer given no group metadata): not checked.
    assert commit("", -1) is ErrorCode.NONE
    # A group that does not exist takes only commits without a generation.
    assert (
        coordinator.txn_commit_offsets("new", (7, 0), "m", None, 3, offsets)[0]
        is ErrorCode.ILLEGAL_GENERATION
    )
    assert coordinator.txn_commit_offsets("new", (7, 0), "", None, -1, offsets)[0] is ErrorCode.NONE


def test_session_timeout_fences_the_member() -> None:
    clock = FakeClock()
    coordinator = GroupCoordinator(
        clock, GroupConfig(consumer_session_timeout_ms=1000, consumer_heartbeat_interval_ms=100)
    )
    coordinator.consumer_heartbeat("g", _join("a"), TOPICS)
    clock.advance(1000)
    coordinator.advance()
    assert coordinator.consumer_groups["g"].members == {}
    assert (
        _error(lambda: coordinator.consumer_heartbeat("g", _beat("a", 1), TOPICS))[0]
        is ErrorCode.UNKNOWN_MEMBER_ID
    )


def test_members_epochs_and_assignments_survive_a_restart(tmp_path: Path) -> None:
    store = Store(tmp_path, GroupConfig())
    try:
        coordinator = GroupCoordinator(FakeClock(), store.config, store.open())
        coordinator.consumer_heartbeat("g", _join("a"), TOPICS)
        coordinator.consumer_heartbeat("g", _join("b", "inst"), TOPICS)
        coordinator.consumer_heartbeat("g", _beat("a", 1, {"t": frozenset(range(4))}), TOPICS)
        before = coordinator.consumer_groups["g"]
        snapshot = {
            m.member_id: (m.member_epoch, m.assigned, m.pending_revocation, m.state)
            for m in before.members.values()
        }
        reloaded = GroupCoordinator(FakeClock(), store.config, store.open())
        after = reloaded.consumer_groups["g"]
        assert (after.group_epoch, after.assignment_epoch) == (
            before.group_epoch,
            before.assignment_epoch,
        )
        assert {
            m.member_id: (m.member_epoch, m.assigned, m.pending_revocation, m.state)
            for m in after.members.values()
        } == snapshot
        assert after.static_members == {"inst": "b"}
        assert after.target == before.target
        assert "g" not in reloaded.groups
        # The member carries on with its epoch, no rejoin needed.
        epoch = snapshot["a"][0]
        answer = reloaded.consumer_heartbeat("g", _beat("a", epoch, dict(snapshot["a"][1])), TOPICS)
        assert answer.member_epoch >= epoch
    finally:
        store.close()


def test_a_classic_member_of_a_consumer_group_round_trips_through_its_record() -> None:
    from shoal.coordinator.consumer_group import ClassicMembership
    from shoal.coordinator.consumer_group_record import group_document, group_from_document

    clock = FakeClock()
    coordinator = GroupCoordinator(clock)
    coordinator.consumer_heartbeat("g", _join("a"), TOPICS)
    group = coordinator.consumer_groups["g"]
    group.members["a"].classic = ClassicMembership(7000, (("range", b"\x00\x01meta"),))
    back = group_from_document("g", group_document(group), clock, group.settings)
    assert back.members["a"].classic == ClassicMembership(7000, (("range", b"\x00\x01meta"),))
    assert back.members["a"].session_deadline_ms == clock.monotonic_ms() + 7000


def test_group_configs_apply_to_the_group_and_survive_a_restart(tmp_path: Path) -> None:
    from shoal.coordinator.group_configs import GroupConfigError

    store = Store(tmp_path, GroupConfig())
    try:
        coordinator = GroupCoordinator(FakeClock(), store.config, store.open())
        coordinator.consumer_heartbeat("g", _join("a"), TOPICS)
        with pytest.raises(GroupConfigError, match="must be in the range 45000 to 60000"):
            coordinator.set_group_configs("g", {"consumer.session.timeout.ms": "10"})
        coordinator.set_group_configs("g", {"consumer.heartbeat.interval.ms": "7000"})
        # The live group answers with it at once.
        assert (
            coordinator.consumer_heartbeat("g", _beat("a", 1), TOPICS).heartbeat_interval_ms == 7000
        )
        reloaded = GroupCoordinator(FakeClock(), store.config, store.open())
        assert reloaded.group_configs == {"g": {"consumer.heartbeat.interval.ms": "7000"}}
        assert reloaded.consumer_groups["g"].settings.heartbeat_interval_ms == 7000
    finally:
        store.close()


def test_an_older_epoch_commits_only_partitions_owned_since_then() -> None:
    """KIP-1251 (Kafka 4.4): a commit that crossed the heartbeat moving its member on."""
    coordinator = GroupCoordinator(FakeClock())
    coordinator.consumer_heartbeat("g", _join("a"), TOPICS)  # a: epoch 1, all of t
    coordinator.consumer_heartbeat("g", _join("b"), TOPICS)  # group epoch 2
    a = coordinator.consumer_heartbeat("g", _beat("a", 1, {"t": frozenset(range(4))}), TOPICS)
    assert a.assignment is not None
    kept = sorted(a.assignment["t"])
    coordinator.consumer_heartbeat("g", _beat("a", 1, a.assignment), TOPICS)  # acknowledges
    assert coordinator.consumer_groups["g"].members["a"].member_epoch == 2
    revoked = sorted(set(range(4)) - set(kept))

    def commit(epoch: int, partitions: list[int]) -> ErrorCode:
        offsets = {("t", p): CommittedOffset(1) for p in partitions}
        return coordinator.commit_offsets("g", "a", None, epoch, offsets)[0]

    assert commit(1, kept) is ErrorCode.NONE
    assert commit(1, revoked[:1]) is ErrorCode.STALE_MEMBER_EPOCH
    assert commit(1, [kept[0], revoked[0]]) is ErrorCode.STALE_MEMBER_EPOCH  # all or nothing
    assert commit(0, kept) is ErrorCode.STALE_MEMBER_EPOCH
    assert commit(3, kept) is ErrorCode.STALE_MEMBER_EPOCH
    assert commit(2, kept) is ErrorCode.NONE


def test_a_member_that_never_revokes_is_fenced_after_its_rebalance_timeout() -> None:
    clock = FakeClock()
    coordinator = GroupCoordinator(clock)
    coordinator.consumer_heartbeat("g", _join("a"), TOPICS)  # rebalance timeout 30 s
    coordinator.consumer_heartbeat("g", _join("b"), TOPICS)
    # a is asked to revoke half of t, and keeps heartbeating without doing it.
    coordinator.consumer_heartbeat("g", _beat("a", 1, {"t": frozenset(range(4))}), TOPICS)
    for _ in range(4):
        clock.advance(6_000)
        coordinator.consumer_heartbeat("g", _beat("a", 1, {"t": frozenset(range(4))}), TOPICS)
        coordinator.consumer_heartbeat("g", _beat("b", 2, {}), TOPICS)
        coordinator.advance()
    assert "a" in coordinator.consumer_groups["g"].members  # 24 of its 30 s
    clock.advance(6_000)
    coordinator.advance()
    group = coordinator.consumer_groups["g"]
    assert "a" not in group.members
    # b now gets everything.
    b = coordinator.consumer_heartbeat("g", _beat("b", 2, {}), TOPICS)
    assert b.assignment == {"t": frozenset(range(4))}


def test_a_commit_to_a_group_that_is_not_there_is_told_so_from_v9() -> None:
    """Kafka's validateOffsetCommit: GROUP_ID_NOT_FOUND from v9 (both protocols' clients
    understand it), ILLEGAL_GENERATION before, and a simple group for a commit without one."""
    coordinator = GroupCoordinator(FakeClock())
    offsets = {("t", 0): CommittedOffset(5)}
    assert coordinator.commit_offsets("gone", "a", None, 3, offsets, 9)[0] is (
        ErrorCode.GROUP_ID_NOT_FOUND
    )
    assert coordinator.commit_offsets("gone", "a", None, 3, offsets, 8)[0] is (
        ErrorCode.ILLEGAL_GENERATION
    )
    assert "gone" not in coordinator.groups
    assert coordinator.commit_offsets("simple", "", None, -1, offsets, 9)[0] is ErrorCode.NONE


class _FailingAppends:
    """The offsets log's append, failing with a storage error while ``failing`` is set."""

    def __init__(self, append: Any) -> None:
        self.append = append
        self.failing = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failing:
            raise StorageError("injected: no space left on device")
        return self.append(*args, **kwargs)


def test_a_heartbeat_whose_state_cannot_be_written_changes_nothing(tmp_path: Path) -> None:
    """No member is told an epoch or an assignment a restart would forget: the heartbeat fails
    with NOT_COORDINATOR (Kafka's answer to a coordinator write's storage error) and the group
    is as it was last written; the member then carries on as it was."""
    store = Store(tmp_path, GroupConfig())
    try:
        plog = store.open().plog
        appends = _FailingAppends(plog.append)
        log = OffsetsLog(plog, store.config, FakeClock(), appends)
        coordinator = GroupCoordinator(FakeClock(), store.config, log)
        coordinator.consumer_heartbeat("g", _join("a"), TOPICS)
        first = coordinator.consumer_heartbeat("g", _beat("a", 1, {}), TOPICS)
        written = (coordinator.consumer_groups["g"].group_epoch, set(first.assignment or {}))

        appends.failing = True
        assert _error(lambda: coordinator.consumer_heartbeat("g", _join("b"), TOPICS))[0] is (
            ErrorCode.NOT_COORDINATOR
        )
        group = coordinator.consumer_groups["g"]
        assert set(group.members) == {"a"}
        assert group.group_epoch == written[0]
        # A group whose very first write fails is not there at all.
        assert _error(lambda: coordinator.consumer_heartbeat("h", _join("c"), TOPICS))[0] is (
            ErrorCode.NOT_COORDINATOR
        )
        assert "h" not in coordinator.consumer_groups

        appends.failing = False
        joined = coordinator.consumer_heartbeat("g", _join("b"), TOPICS)
        assert joined.member_epoch > written[0]
        reloaded = GroupCoordinator(FakeClock(), store.config, store.open())
        assert set(reloaded.consumer_groups["g"].members) == {"a", "b"}
        assert "h" not in reloaded.consumer_groups
    finally:
        store.close()


def test_a_heartbeat_waits_for_the_groups_last_write_and_rewrites_one_that_failed(
    tmp_path: Path,
) -> None:
    """A heartbeat that changes nothing repeats state whose record may not be durable yet: it
    waits for that write (Kafka defers a read behind pending writes). Once that write failed
    to become durable, the next heartbeat writes the group again and waits for the new write;
    it used to answer at once from state a restart could forget (found by the simulation)."""
    store = Store(tmp_path, GroupConfig())
    try:
        coordinator = GroupCoordinator(FakeClock(), store.config, store.open())
        log = coordinator.offsets_log
        assert log is not None
        written: list[Future[None]] = []
        real_append = log.append

        def append(*args: Any, **kwargs: Any) -> Future[None] | None:
            real_append(*args, **kwargs)
            written.append(Future())  # durability as the test decides
            return written[-1]

        log.append = append  # type: ignore[method-assign]
        _, joined = coordinator.consumer_heartbeat_durably("g", _join("a"), TOPICS)
        assert joined is written[-1]
        _, unchanged = coordinator.consumer_heartbeat_durably("g", _beat("a", 1, {}), TOPICS)
        assert unchanged is joined and len(written) == 1
        joined.set_exception(StorageError("injected: the fsync failed"))
        _, again = coordinator.consumer_heartbeat_durably("g", _beat("a", 1, {}), TOPICS)
        assert len(written) == 2 and again is written[-1]
        again.set_result(None)
        _, settled = coordinator.consumer_heartbeat_durably("g", _beat("a", 1, {}), TOPICS)
        assert settled is None
    finally:
        store.close()
