"""The classic group protocol as a pure state machine, driven by a fake clock."""

from __future__ import annotations

import itertools

import pytest

from shoal.coordinator.group import Group
from shoal.coordinator.group_state import (
    TRANSITIONS,
    GroupState,
    IllegalTransitionError,
    check_transition,
)
from shoal.protocol.errors import ErrorCode
from tests.coordinator.groups.machine import REBALANCE_MS, SESSION_MS, Machine

# -- the transition table ------------------------------------------------------------------


@pytest.mark.parametrize(("source", "target"), list(itertools.product(GroupState, GroupState)))
def test_transition_table_allows_exactly_what_it_lists(
    source: GroupState, target: GroupState
) -> None:
    if target in TRANSITIONS[source]:
        check_transition("g", source, target)
    else:
        with pytest.raises(IllegalTransitionError):
            check_transition("g", source, target)


def test_a_dead_group_cannot_come_back() -> None:
    m = Machine()
    m.stable_group(1)
    group = m.coordinator.groups["g"]
    group.mark_dead()
    assert group.state is GroupState.DEAD
    with pytest.raises(IllegalTransitionError):
        group._transition(GroupState.EMPTY)
    assert m.join().join.error is ErrorCode.COORDINATOR_NOT_AVAILABLE


@pytest.mark.parametrize("state", [GroupState.PREPARING_REBALANCE, GroupState.COMPLETING_REBALANCE])
def test_any_live_state_may_die(state: GroupState) -> None:
    m = Machine(delay_ms=1000)
    m.new_member()
    if state is GroupState.COMPLETING_REBALANCE:
        m.advance(1000)
    group = m.coordinator.groups["g"]
    assert group.state is state
    group.mark_dead()
    assert group.state is GroupState.DEAD


# -- JoinGroup -----------------------------------------------------------------------------


def test_first_join_gets_member_id_required_then_joins_with_it() -> None:
    m = Machine()
    first = m.join()
    assert first.join.error is ErrorCode.MEMBER_ID_REQUIRED
    member_id = first.join.member_id
    assert member_id.startswith("c-")
    # Handing out an id changes no state: the group is still empty and waits for no one.
    assert m.state() is GroupState.EMPTY
    second = m.join(member_id)
    result = second.join
    assert result.error is ErrorCode.NONE
    assert (result.member_id, result.leader_id, result.generation_id) == (member_id, member_id, 1)
    assert result.protocol_name == "range"
    assert [(x.member_id, x.metadata) for x in result.members] == [(member_id, b"range-meta")]
    assert m.state() is GroupState.COMPLETING_REBALANCE


def test_old_clients_join_without_member_id_required() -> None:
    m = Machine()
    answer = m.join(require_known_member_id=False)
    assert answer.join.error is ErrorCode.NONE
    assert answer.join.member_id


def test_a_pending_member_id_expires_after_the_session_timeout() -> None:
    m = Machine()
    member_id = m.join().join.member_id
    m.advance(SESSION_MS)
    assert m.join(member_id).join.error is ErrorCode.UNKNOWN_MEMBER_ID


def test_initial_delay_waits_and_is_extended_while_members_arrive() -> None:
    m = Machine(delay_ms=3000)
    _, a = m.new_member()
    assert m.state() is GroupState.PREPARING_REBALANCE
    m.advance(2000)
    _, b = m.new_member()
    m.advance(1000)  # the first delay ran out, but a member came meanwhile: wait again
    assert not a.done and not b.done
    m.advance(2999)
    assert not a.done
    m.advance(1)
    assert a.join.generation_id == b.join.generation_id == 1
    assert len(a.join.members) == 2  # one rebalance for both, not two
    assert m.state() is GroupState.COMPLETING_REBALANCE


def test_initial_delay_is_capped_by_the_rebalance_timeout() -> None:
    m = Machine(delay_ms=3000)
    _, a = m.new_member(rebalance_ms=4000)
    for _ in range(3):
        m.advance(1000)
        m.new_member(rebalance_ms=4000)
    assert not a.done
    m.advance(1000)
    assert a.join.error is ErrorCode.NONE


def test_join_validation() -> None:
    m = Machine()
    assert m.join(group_id="").join.error is ErrorCode.INVALID_GROUP_ID
    assert m.join(session_ms=10).join.error is ErrorCode.INVALID_SESSION_TIMEOUT
    assert m.join(protocols=()).join.error is ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert m.join(protocol_type="").join.error is ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert m.join("someone").join.error is ErrorCode.UNKNOWN_MEMBER_ID


def test_members_must_share_a_protocol_and_type() -> None:
    m = Machine()
    m.stable_group(1)
    other = m.join(protocols=(("sticky", b""),)).join
    assert other.error is ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert m.join(protocol_type="connect").join.error is ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert m.state() is GroupState.STABLE


def test_protocol_is_chosen_by_vote_among_common_ones() -> None:
    m = Machine(delay_ms=100)
    m.new_member(protocols=(("range", b"a"), ("roundrobin", b"a"), ("x", b"")))
    m.new_member(protocols=(("roundrobin", b"b"), ("range", b"b")))
    _, c = m.new_member(protocols=(("roundrobin", b"c"), ("range", b"c")))
    m.advance(200)  # members arrived during the delay: it was extended once
    assert c.join.protocol_name == "roundrobin"


def test_group_max_size() -> None:
    m = Machine(max_size=2)
    m.stable_group(2)
    assert m.join().join.error is ErrorCode.GROUP_MAX_SIZE_REACHED


# -- the rebalance cycle -------------------------------------------------------------------


def test_full_cycle_join_sync_stable() -> None:
    m = Machine()
    leader, follower = m.stable_group(2)
    group = m.coordinator.groups["g"]
    assert group.leader_id == leader
    assert group.members[follower].assignment == follower.encode()
    assert group.generation_id == 2  # the second member's arrival made a second generation


def test_follower_sync_waits_for_the_leader() -> None:
    m = Machine(delay_ms=100)
    a_id, a = m.new_member()
    b_id, _ = m.new_member()
    m.advance(200)  # b arrived during the delay: it was extended once
    leader = a.join.leader_id
    follower = b_id if leader == a_id else a_id
    generation = a.join.generation_id
    parked = m.sync(follower, generation)
    assert not parked.done
    m.sync(leader, generation, {follower: b"F", leader: b"L"})
    assert parked.sync.assignment == b"F"
    assert parked.sync.protocol_type == "consumer" and parked.sync.protocol_name == "range"
    assert m.state() is GroupState.STABLE


def test_sync_errors() -> None:
    m = Machine()
    (leader,) = m.stable_group(1)
    gen = m.coordinator.groups["g"].generation_id
    assert m.sync(leader, gen + 1).sync.error is ErrorCode.ILLEGAL_GENERATION
    assert m.sync("ghost", gen).sync.error is ErrorCode.UNKNOWN_MEMBER_ID
    assert m.sync(leader, gen, group_id="nope").sync.error is ErrorCode.UNKNOWN_MEMBER_ID
    wrong = m.sync(leader, gen, protocol_name="roundrobin").sync
    assert wrong.error is ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert m.sync(leader, gen).sync.assignment == leader.encode()  # Stable: answered at once
    m.new_member()  # a newcomer: PreparingRebalance
    assert m.sync(leader, gen).sync.error is ErrorCode.REBALANCE_IN_PROGRESS


def test_new_member_triggers_rebalance_seen_through_heartbeat() -> None:
    m = Machine()
    leader, follower = m.stable_group(2)
    gen = m.coordinator.groups["g"].generation_id
    assert m.heartbeat(follower, gen) == "NONE"
    newcomer, parked = m.new_member()
    assert m.state() is GroupState.PREPARING_REBALANCE  # Stable -> PreparingRebalance
    assert m.heartbeat(leader, gen) == "REBALANCE_IN_PROGRESS"
    assert m.heartbeat(follower, gen) == "REBALANCE_IN_PROGRESS"
    a, b = m.join(leader), m.join(follower)
    assert parked.join.generation_id == a.join.generation_id == b.join.generation_id == gen + 1
    assert len(a.join.members) == 3 and b.join.members == ()
    assert m.heartbeat(newcomer, gen) == "ILLEGAL_GENERATION"
    assert m.heartbeat(newcomer, gen + 1) == "NONE"  # heartbeats in CompletingRebalance are fine


def test_heartbeat_errors() -> None:
    m = Machine()
    (leader,) = m.stable_group(1)
    gen = m.coordinator.groups["g"].generation_id
    assert m.heartbeat("ghost", gen) == "UNKNOWN_MEMBER_ID"
    assert m.heartbeat(leader, gen, group_id="unknown") == "UNKNOWN_MEMBER_ID"
    assert m.heartbeat(leader, gen - 1) == "ILLEGAL_GENERATION"
    assert m.heartbeat(leader, gen) == "NONE"


def test_rebalance_timeout_drops_members_that_do_not_rejoin() -> None:
    m = Machine()
    leader, follower = m.stable_group(2)
    # The leader rejoins (asking for a rebalance); the follower's session is long enough that
    # only the rebalance timeout can end the join phase.
    m.coordinator.groups["g"].members[follower].session_timeout_ms = 10 * REBALANCE_MS
    m.heartbeat(follower, m.coordinator.groups["g"].generation_id)
    parked = m.join(leader)
    assert not parked.done
    m.advance(REBALANCE_MS - 1)
    assert not parked.done
    m.advance(1)
    assert [x.member_id for x in parked.join.members] == [leader]
    assert m.heartbeat(follower, parked.join.generation_id) == "UNKNOWN_MEMBER_ID"


def test_leader_rejoin_with_same_protocols_rebalances_but_follower_does_not() -> None:
    m = Machine()
    leader, follower = m.stable_group(2)
    gen = m.coordinator.groups["g"].generation_id
    again = m.join(follower)
    assert again.join.generation_id == gen and again.join.members == ()
    assert m.state() is GroupState.STABLE
    m.join(leader)
    assert m.state() is GroupState.PREPARING_REBALANCE


def test_duplicate_join_in_completing_rebalance_gets_the_same_answer() -> None:
    m = Machine()
    member_id, first = m.new_member()
    again = m.join(member_id)
    assert again.join == first.join
    assert m.state() is GroupState.COMPLETING_REBALANCE


def test_changed_protocols_in_completing_rebalance_restart_the_rebalance() -> None:
    m = Machine()
    member_id, _ = m.new_member()
    parked = m.join(member_id, protocols=(("roundrobin", b""),))
    # CompletingRebalance -> PreparingRebalance -> (everyone joined) CompletingRebalance
    assert parked.join.generation_id == 2 and parked.join.protocol_name == "roundrobin"


# -- timeouts ------------------------------------------------------------------------------


def test_session_timeout_expires_a_silent_member() -> None:
    m = Machine()
    leader, follower = m.stable_group(2)
    gen = m.coordinator.groups["g"].generation_id
    for _ in range(3):
        m.advance(SESSION_MS // 2)
        assert m.heartbeat(leader, gen) in ("NONE", "REBALANCE_IN_PROGRESS")
    assert follower not in m.coordinator.groups["g"].members
    assert m.state() is GroupState.PREPARING_REBALANCE
    assert m.heartbeat(leader, gen) == "REBALANCE_IN_PROGRESS"
    assert m.join(leader).join.generation_id == gen + 1


def test_everyone_expiring_empties_the_group() -> None:
    m = Machine()
    m.stable_group(2)
    m.advance(SESSION_MS)
    assert m.state() is GroupState.EMPTY  # Stable -> PreparingRebalance -> Empty
    assert m.coordinator.groups["g"].members == {}


def test_sync_timeout_removes_members_that_never_synced() -> None:
    m = Machine(delay_ms=100)
    # Sessions outlive the rebalance timeout: only the sync deadline can act here.
    timeouts = {"session_ms": 60_000, "rebalance_ms": 5_000}
    a_id, a = m.new_member(**timeouts)
    b_id, _ = m.new_member(**timeouts)
    m.advance(200)  # b arrived during the delay: it was extended once
    leader = a.join.leader_id
    follower = b_id if leader == a_id else a_id
    parked = m.sync(follower, a.join.generation_id)
    m.advance(4999)
    assert not parked.done
    m.advance(1)  # the leader never sent its assignment
    assert parked.sync.error is ErrorCode.REBALANCE_IN_PROGRESS
    assert leader not in m.coordinator.groups["g"].members
    # CompletingRebalance -> PreparingRebalance, and the follower, rejoining, is alone.
    assert m.state() is GroupState.PREPARING_REBALANCE
    assert [x.member_id for x in m.join(follower, **timeouts).join.members] == [follower]


def test_join_phase_waits_for_pending_member_ids_until_they_expire() -> None:
    m = Machine()
    (leader,) = m.stable_group(1)
    m.join()  # MEMBER_ID_REQUIRED: a member id is pending, no rebalance yet
    assert m.state() is GroupState.STABLE
    parked = m.join(leader)  # the leader asks for a rebalance
    assert not parked.done
    m.advance(SESSION_MS)
    assert parked.join.error is ErrorCode.NONE


# -- LeaveGroup ----------------------------------------------------------------------------


def test_batched_leave() -> None:
    m = Machine()
    ids = m.stable_group(3)
    error, outcomes = m.coordinator.leave("g", [(ids[1], None), ("ghost", None), (ids[2], None)])
    assert error is ErrorCode.NONE
    assert [o.error for o in outcomes] == [
        ErrorCode.NONE,
        ErrorCode.UNKNOWN_MEMBER_ID,
        ErrorCode.NONE,
    ]
    assert m.state() is GroupState.PREPARING_REBALANCE
    assert list(m.coordinator.groups["g"].members) == [ids[0]]
    m.coordinator.leave("g", [(ids[0], None)])
    assert m.state() is GroupState.EMPTY
    error, outcomes = m.coordinator.leave("unknown", [("x", None)])
    assert error is ErrorCode.UNKNOWN_MEMBER_ID


def test_leaving_during_completing_rebalance_restarts_it() -> None:
    m = Machine(delay_ms=100)
    a_id, a = m.new_member()
    b_id, _ = m.new_member()
    m.advance(200)  # b arrived during the delay: it was extended once
    follower = b_id if a.join.leader_id == a_id else a_id
    assert m.state() is GroupState.COMPLETING_REBALANCE
    parked = m.sync(follower, a.join.generation_id)
    m.coordinator.leave("g", [(a.join.leader_id, None)])  # before the leader's assignment
    assert m.state() is GroupState.PREPARING_REBALANCE
    assert parked.sync.error is ErrorCode.REBALANCE_IN_PROGRESS


# -- static membership ---------------------------------------------------------------------


def _static_pair(m: Machine) -> tuple[str, str, int]:
    a = m.join(instance="i-a")
    assert a.join.error is ErrorCode.NONE  # static members skip MEMBER_ID_REQUIRED
    b = m.join(instance="i-b")
    a2 = m.join(a.join.member_id, instance="i-a")
    gen = a2.join.generation_id
    m.sync(a2.join.leader_id, gen, {a.join.member_id: b"A", b.join.member_id: b"B"})
    assert m.state() is GroupState.STABLE
    return a.join.member_id, b.join.member_id, gen


def test_static_member_restart_keeps_its_slot_without_rebalance() -> None:
    m = Machine()
    a_old, b_id, gen = _static_pair(m)
    again = m.join(instance="i-a")  # a restarted process: no member id yet
    a_new = again.join.member_id
    assert again.join.error is ErrorCode.NONE and a_new != a_old
    assert again.join.generation_id == gen
    assert m.state() is GroupState.STABLE
    assert m.sync(a_new, gen, instance="i-a").sync.assignment == b"A"
    # The old incarnation is fenced everywhere.
    assert m.heartbeat(a_old, gen, instance="i-a") == "FENCED_INSTANCE_ID"
    assert m.sync(a_old, gen, instance="i-a").sync.error is ErrorCode.FENCED_INSTANCE_ID
    assert m.join(a_old, instance="i-a").join.error is ErrorCode.FENCED_INSTANCE_ID
    assert m.coordinator.commit_offsets("g", a_old, "i-a", gen, {})[0] is (
        ErrorCode.FENCED_INSTANCE_ID
    )
    _, outcomes = m.coordinator.leave("g", [(a_old, "i-a")])
    assert outcomes[0].error is ErrorCode.FENCED_INSTANCE_ID
    assert m.heartbeat(b_id, gen, instance="i-b") == "NONE"


def test_static_leader_restart_is_told_to_skip_assignment() -> None:
    m = Machine()
    a_old, _, _ = _static_pair(m)
    leader_instance = "i-a" if m.coordinator.groups["g"].leader_id == a_old else "i-b"
    again = m.join(instance=leader_instance)
    assert again.join.skip_assignment and again.join.leader_id == again.join.member_id
    assert m.state() is GroupState.STABLE


def test_static_member_with_new_protocols_rebalances() -> None:
    m = Machine()
    _static_pair(m)
    m.join(instance="i-a", protocols=(("range", b"changed"),))
    assert m.state() is GroupState.PREPARING_REBALANCE


def test_static_member_leaves_by_instance_id() -> None:
    m = Machine()
    _, b_id, _ = _static_pair(m)
    _, outcomes = m.coordinator.leave("g", [("", "i-b"), ("", "i-unknown")])
    assert [o.error for o in outcomes] == [ErrorCode.NONE, ErrorCode.UNKNOWN_MEMBER_ID]
    assert b_id not in m.coordinator.groups["g"].members


# -- offset commit checks ------------------------------------------------------------------


def test_commit_checks() -> None:
    from shoal.coordinator.offsets_log import CommittedOffset

    m = Machine()
    one = {("t", 0): CommittedOffset(5, metadata="m")}
    # A group that exists only for its offsets: generation -1 "simple" commits.
    assert m.coordinator.commit_offsets("simple", "", None, -1, one)[0] is ErrorCode.NONE
    assert m.coordinator.groups["simple"].state is GroupState.EMPTY
    # A group that is not there: GROUP_ID_NOT_FOUND from v9 (the latest), ILLEGAL_GENERATION
    # before (Kafka's validateOffsetCommit).
    assert m.coordinator.commit_offsets("nope", "x", None, 3, one)[0] is (
        ErrorCode.GROUP_ID_NOT_FOUND
    )
    assert m.coordinator.commit_offsets("nope", "x", None, 3, one, 8)[0] is (
        ErrorCode.ILLEGAL_GENERATION
    )
    leader, follower = m.stable_group(2)
    gen = m.coordinator.groups["g"].generation_id
    commit = m.coordinator.commit_offsets
    assert commit("g", leader, None, gen, one)[0] is ErrorCode.NONE
    assert commit("g", leader, None, gen + 1, one)[0] is ErrorCode.ILLEGAL_GENERATION
    assert commit("g", "ghost", None, gen, one)[0] is ErrorCode.UNKNOWN_MEMBER_ID
    assert commit("g", "", None, -1, one)[0] is ErrorCode.UNKNOWN_MEMBER_ID  # not empty
    big = {("t", 1): CommittedOffset(1, metadata="x" * 5000)}
    error, errors, _ = commit("g", leader, None, gen, big)
    assert error is ErrorCode.NONE and errors == {("t", 1): ErrorCode.OFFSET_METADATA_TOO_LARGE}
    m.new_member()  # PreparingRebalance: the current generation may still commit
    assert commit("g", follower, None, gen, one)[0] is ErrorCode.NONE
    m.join(leader)
    answer = m.join(follower)  # everyone is back: CompletingRebalance
    assert commit("g", follower, None, answer.join.generation_id, one)[0] is (
        ErrorCode.REBALANCE_IN_PROGRESS
    )
    # TxnOffsetCommit (Kafka's ClassicGroup.validateOffsetCommit, transactional): the group's
    # state does not matter, member fields are checked only when given.
    txn = m.coordinator.txn_commit_offsets
    new_gen = answer.join.generation_id
    assert txn("g", (7, 0), follower, None, new_gen, one)[0] is ErrorCode.NONE
    assert txn("g", (7, 0), "", None, -1, one)[0] is ErrorCode.NONE  # v0-2: no member fields
    assert txn("g", (7, 0), "", None, new_gen, one)[0] is ErrorCode.UNKNOWN_MEMBER_ID
    assert txn("g", (7, 0), follower, None, new_gen + 1, one)[0] is ErrorCode.ILLEGAL_GENERATION
    assert m.coordinator.fetch_offsets("g", [("t", 0), ("t", 9)]) == {
        ("t", 0): one[("t", 0)],
        ("t", 9): None,
    }


def test_delete_group_only_when_empty() -> None:
    m = Machine()
    m.stable_group(1)
    assert m.coordinator.delete_group("g") is ErrorCode.NON_EMPTY_GROUP
    assert m.coordinator.delete_group("nope") is ErrorCode.GROUP_ID_NOT_FOUND
    group = m.coordinator.groups["g"]
    m.advance(SESSION_MS)
    assert group.state is GroupState.EMPTY
    assert m.coordinator.delete_group("g") is ErrorCode.NONE
    assert group.state is GroupState.DEAD  # Empty -> Dead
    assert "g" not in m.coordinator.groups


def test_next_deadline_is_none_without_groups_and_timers() -> None:
    m = Machine()
    assert m.coordinator.next_deadline_ms() is None
    m.stable_group(1)
    assert m.coordinator.next_deadline_ms() == m.clock.monotonic_ms() + SESSION_MS
    assert isinstance(m.coordinator.groups["g"], Group)
