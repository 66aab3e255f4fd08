"""One classic consumer group: members, generations and the rebalance protocol.

Pure logic with an injected clock. Requests that Kafka answers only when a rebalance completes
(JoinGroup, SyncGroup) take a callback; the group calls it, exactly once, when the answer is
known, which may be at once, during a later request of another member, or in :meth:`expire`
when a timer runs out. Callbacks must not call back into the group.

Timers (all on ``clock.monotonic_ms``): a member's session (heartbeat) deadline; a pending
member id's deadline (MEMBER_ID_REQUIRED issued, rejoin not yet seen); the end of the join phase
(rebalance timeout, or the initial delay of a group that was empty); the end of the sync phase.
:meth:`next_deadline_ms` says when :meth:`expire` next has work to do.

How the protocol runs (as Kafka's classic GroupCoordinator does it):

- A new dynamic member joining with v4+ gets MEMBER_ID_REQUIRED and a fresh member id; it
  rejoins with that id at once and then counts as a member. Older versions join directly.
- Any join of a new member, a member leaving or expiring, or a known member asking with changed
  protocols moves the group to PreparingRebalance. Members learn it from Heartbeat
  (REBALANCE_IN_PROGRESS) and rejoin; the join phase ends when every member has rejoined and no
  member id is pending, or when the rebalance timeout runs out (members that did not rejoin
  are removed). Then the generation goes up, a protocol every member supports is chosen by
  vote, and every member gets its JoinGroup answer; the leader gets the member list.
- The leader's SyncGroup carries the assignment; every member's SyncGroup is answered with its
  part, and the group is Stable.
- Static members (group.instance.id) keep their slot: a restarted instance joining with an empty
  member id takes over its old slot under a new member id, without a rebalance when the group is
  Stable and its protocols did not change; the old member id is fenced (FENCED_INSTANCE_ID).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from shoal.clock import Clock
from shoal.coordinator.group_config import GroupConfig
from shoal.coordinator.group_state import GroupState, check_transition
from shoal.invariant import invariant
from shoal.protocol.errors import ErrorCode

Protocols = tuple[tuple[str, bytes], ...]
"""A member's supported protocols in its order of preference: (name, metadata)."""


@dataclass(frozen=True, slots=True)
class JoinRequest:
    member_id: str
    group_instance_id: str | None
    protocol_type: str
    protocols: Protocols
    session_timeout_ms: int
    rebalance_timeout_ms: int
    client_id: str = ""
    client_host: str = ""
    require_known_member_id: bool = True
    """JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED."""


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """A SyncGroup: the leader brings the assignment of every member; followers bring none."""

    member_id: str
    group_instance_id: str | None
    generation_id: int
    assignments: dict[str, bytes]
    protocol_type: str | None = None
    """SyncGroup v5+: must match the group's, if given."""
    protocol_name: str | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    member_id: str
    group_instance_id: str | None
    generation_id: int


@dataclass(frozen=True, slots=True)
class LeaveRequest:
    """A LeaveGroup: one member (v0-v2) or several (v3+, KIP-345), each as (member id, group
    instance id)."""

    members: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, slots=True)
class JoinMember:
    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinResult:
    error: ErrorCode
    member_id: str = ""
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str = ""
    skip_assignment: bool = False
    members: tuple[JoinMember, ...] = ()


@dataclass(frozen=True, slots=True)
class SyncResult:
    error: ErrorCode
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


JoinCallback = Callable[[JoinResult], None]
SyncCallback = Callable[[SyncResult], None]


@dataclass(frozen=True, slots=True)
class LeaveOutcome:
    member_id: str
    group_instance_id: str | None
    error: ErrorCode


@dataclass
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocols: Protocols
    assignment: bytes = b""
    heartbeat_deadline_ms: float = 0.0
    awaiting_join: JoinCallback | None = None
    awaiting_sync: SyncCallback | None = None

    def metadata_for(self, protocol: str | None) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        return b""


def _new_member_id(prefix: str) -> str:
    # Kafka's form: the client id (or instance id) and a random UUID.
    return f"{prefix}-{uuid.uuid4()}"


@dataclass
class _JoinPhase:
    deadline_ms: float
    initial_delay: bool = False
    """The group was empty: wait out the delay even if everyone has joined."""
    delay_limit_ms: float = 0.0
    """An initial delay is extended, while members arrive, up to this."""
    member_added: bool = False


@dataclass
class Group:
    group_id: str
    clock: Clock
    config: GroupConfig = field(default_factory=GroupConfig)
    new_member_id: Callable[[str], str] = _new_member_id
    state: GroupState = GroupState.EMPTY
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)
    """group.instance.id -> the member id that currently holds it."""
    pending_members: dict[str, float] = field(default_factory=dict)
    """Member ids handed out with MEMBER_ID_REQUIRED -> deadline for the rejoin."""
    _join_phase: _JoinPhase | None = None
    _sync_deadline_ms: float | None = None
    metadata_changed: bool = False
    """Set when what is persisted of the group (generation, protocol) changed; the coordinator
    writes it and clears the flag."""

    # -- state ----------------------------------------------------------------------------

    def _transition(self, target: GroupState) -> None:
        check_transition(self.group_id, self.state, target)
        self.state = target

    def mark_dead(self) -> None:
        self._transition(GroupState.DEAD)
        self._join_phase = None
        self._sync_deadline_ms = None

    @property
    def is_empty(self) -> bool:
        return not self.members and not self.pending_members

    def _now(self) -> float:
        return self.clock.monotonic_ms()

    def _rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def _touch(self, member: Member) -> None:
        member.heartbeat_deadline_ms = self._now() + member.session_timeout_ms

    # -- JoinGroup ------------------------------------------------------------------------

    def join(self, request: JoinRequest, respond: JoinCallback) -> None:
        if self.state is GroupState.DEAD:
            # A deleted group: the client retries and finds a fresh one.
            respond(JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE, request.member_id))
            return
        if not self._supports(request):
            respond(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, request.member_id))
            return
        if request.member_id == "":
            self._join_new(request, respond)
        else:
            self._join_known(request, respond)

    def _supports(self, request: JoinRequest) -> bool:
        if not request.protocol_type or not request.protocols:
            return False
        others = [m for m in self.members.values() if m.member_id != request.member_id]
        if not others:
            return True
        if request.protocol_type != self.protocol_type:
            return False
        names = {name for name, _ in request.protocols}
        for member in others:
            names &= {name for name, _ in member.protocols}
        return bool(names)

    def _join_new(self, request: JoinRequest, respond: JoinCallback) -> None:
        instance = request.group_instance_id
        if instance is not None and self.static_members.get(instance) in self.members:
            self._replace_static_member(request, respond)
            return
        if len(self.members) + len(self.pending_members) >= self.config.max_size:
            respond(JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED))
            return
        member_id = self.new_member_id(instance or request.client_id or "member")
        if instance is None and request.require_known_member_id:
            self.pending_members[member_id] = self._now() + request.session_timeout_ms
            respond(JoinResult(ErrorCode.MEMBER_ID_REQUIRED, member_id))
            return
        self._add_member(member_id, request, respond)

    def _join_known(self, request: JoinRequest, respond: JoinCallback) -> None:
        member_id = request.member_id
        if member_id in self.pending_members:
            del self.pending_members[member_id]
            self._add_member(member_id, request, respond)
            return
        error = self._check_member(member_id, request.group_instance_id)
        if error is not ErrorCode.NONE:
            respond(JoinResult(error, member_id))
            return
        member = self.members[member_id]
        member.client_id, member.client_host = request.client_id, request.client_host
        member.session_timeout_ms = request.session_timeout_ms
        member.rebalance_timeout_ms = request.rebalance_timeout_ms
        changed = member.protocols != request.protocols
        if self.state is GroupState.PREPARING_REBALANCE:
            member.protocols = request.protocols
            self._await_join(member, respond)
            self._maybe_complete_join()
        elif self.state is GroupState.COMPLETING_REBALANCE and not changed:
            # The member lost our answer: the same answer again.
            respond(self._join_result(member, with_members=member_id == self.leader_id))
        elif self.state is GroupState.STABLE and not changed and member_id != self.leader_id:
            # Nothing to change: the follower may SyncGroup for the current generation.
            self._touch(member)
            respond(self._join_result(member, with_members=False))
        else:
            # Changed protocols, or the leader asks: that is a request for a rebalance.
            member.protocols = request.protocols
            self._await_join(member, respond)
            self._prepare_rebalance()

    def _await_join(self, member: Member, respond: JoinCallback) -> None:
        previous = member.awaiting_join
        member.awaiting_join = respond
        if previous is not None:
            # The member sent JoinGroup again before the first was answered (a client retry
            # after its request timed out): the older request is superseded.
            previous(JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member.member_id))

    def _add_member(self, member_id: str, request: JoinRequest, respond: JoinCallback) -> None:
        if not self.members:
            self.protocol_type = request.protocol_type
        member = Member(
            member_id,
            request.group_instance_id,
            request.client_id,
            request.client_host,
            request.session_timeout_ms,
            request.rebalance_timeout_ms,
            request.protocols,
            awaiting_join=respond,
        )
        self.members[member_id] = member
        if request.group_instance_id is not None:
            self.static_members[request.group_instance_id] = member_id
        if self.state is GroupState.PREPARING_REBALANCE:
            phase = self._join_phase
            if phase is not None and phase.initial_delay:
                phase.member_added = True
            self._maybe_complete_join()
        else:
            self._prepare_rebalance()

    def _replace_static_member(self, request: JoinRequest, respond: JoinCallback) -> None:
        instance = request.group_instance_id
        invariant(instance is not None, "only static members are replaced")
        old_id = self.static_members[str(instance)]
        member = self.members.pop(old_id)
        new_id = self.new_member_id(str(instance))
        # Whoever still waits under the old member id is the fenced, older instance.
        if member.awaiting_join is not None:
            member.awaiting_join(JoinResult(ErrorCode.FENCED_INSTANCE_ID, old_id))
            member.awaiting_join = None
        if member.awaiting_sync is not None:
            member.awaiting_sync(SyncResult(ErrorCode.FENCED_INSTANCE_ID))
            member.awaiting_sync = None
        member.member_id = new_id
        member.client_id, member.client_host = request.client_id, request.client_host
        member.session_timeout_ms = request.session_timeout_ms
        member.rebalance_timeout_ms = request.rebalance_timeout_ms
        self.members[new_id] = member
        self.static_members[str(instance)] = new_id
        if self.leader_id == old_id:
            self.leader_id = new_id
        changed = member.protocols != request.protocols
        member.protocols = request.protocols
        if self.state is GroupState.PREPARING_REBALANCE:
            member.awaiting_join = respond
            self._maybe_complete_join()
        elif changed:
            member.awaiting_join = respond
            self._prepare_rebalance()
        else:
            # Stable or CompletingRebalance with the same protocols: keep the generation and
            # the assignment; a leader is told to skip computing a new one (JoinGroup v9).
            self._touch(member)
            leader = new_id == self.leader_id
            respond(self._join_result(member, with_members=leader, skip_assignment=leader))

    def _join_result(
        self, member: Member, *, with_members: bool, skip_assignment: bool = False
    ) -> JoinResult:
        members: tuple[JoinMember, ...] = ()
        if with_members:
            members = tuple(
                JoinMember(m.member_id, m.group_instance_id, m.metadata_for(self.protocol_name))
                for m in self.members.values()
            )
        return JoinResult(
            ErrorCode.NONE,
            member.member_id,
            self.generation_id,
            self.protocol_type,
            self.protocol_name,
            self.leader_id or "",
            skip_assignment,
            members,
        )

    # -- rebalancing ----------------------------------------------------------------------

    def _prepare_rebalance(self) -> None:
        if self.state is GroupState.COMPLETING_REBALANCE:
            # The assignment being distributed is void: those waiting for it must rejoin.
            for member in self.members.values():
                if member.awaiting_sync is not None:
                    callback, member.awaiting_sync = member.awaiting_sync, None
                    callback(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
            self._sync_deadline_ms = None
        was_empty = self.state is GroupState.EMPTY
        self._transition(GroupState.PREPARING_REBALANCE)
        now = self._now()
        timeout = self._rebalance_timeout_ms()
        delay = self.config.initial_rebalance_delay_ms
        if was_empty and delay > 0:
            self._join_phase = _JoinPhase(
                now + min(delay, timeout), initial_delay=True, delay_limit_ms=now + timeout
            )
        else:
            self._join_phase = _JoinPhase(now + timeout)
            self._maybe_complete_join()

    def _maybe_complete_join(self) -> None:
        phase = self._join_phase
        if self.state is not GroupState.PREPARING_REBALANCE or phase is None:
            return
        if phase.initial_delay:
            return
        everyone = all(m.awaiting_join is not None for m in self.members.values())
        if everyone and not self.pending_members:
            self._complete_join()

    def _complete_join(self) -> None:
        """End the join phase: drop who did not rejoin, start the next generation."""
        for member in [m for m in self.members.values() if m.awaiting_join is None]:
            self._remove_member(member)
        self._join_phase = None
        self.generation_id += 1
        self.metadata_changed = True
        if not self.members:
            self.protocol_name = None
            self.leader_id = None
            self._transition(GroupState.EMPTY)
            return
        self.protocol_name = self._select_protocol()
        if self.leader_id not in self.members:
            self.leader_id = next(iter(self.members))
        self._transition(GroupState.COMPLETING_REBALANCE)
        now = self._now()
        self._sync_deadline_ms = now + self._rebalance_timeout_ms()
        answers: list[tuple[JoinCallback, JoinResult]] = []
        for member in self.members.values():
            callback = member.awaiting_join
            invariant(callback is not None, "every remaining member awaits its join answer")
            if callback is None:  # pragma: no cover - the invariant raised
                continue
            member.awaiting_join = None
            member.heartbeat_deadline_ms = now + member.session_timeout_ms
            leader = member.member_id == self.leader_id
            answers.append((callback, self._join_result(member, with_members=leader)))
        # Answer only once the group is fully in its new state.
        for callback, result in answers:
            callback(result)

    def _select_protocol(self) -> str:
        """The protocol every member supports that most members prefer (Kafka's vote)."""
        members = list(self.members.values())
        common = {name for name, _ in members[0].protocols}
        for member in members[1:]:
            common &= {name for name, _ in member.protocols}
        invariant(bool(common), "members share a protocol: joins without one are refused")
        votes: dict[str, int] = dict.fromkeys(common, 0)
        for member in members:
            first = next(name for name, _ in member.protocols if name in common)
            votes[first] += 1
        # Ties go to the first member's preference, so the choice is deterministic.
        order = [name for name, _ in members[0].protocols if name in common]
        return max(order, key=lambda name: (votes[name], -order.index(name)))

    def _remove_member(self, member: Member) -> None:
        del self.members[member.member_id]
        instance = member.group_instance_id
        if instance is not None and self.static_members.get(instance) == member.member_id:
            del self.static_members[instance]
        if self.leader_id == member.member_id:
            self.leader_id = None
        if member.awaiting_join is not None:
            callback, member.awaiting_join = member.awaiting_join, None
            callback(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member.member_id))
        if member.awaiting_sync is not None:
            callback_sync, member.awaiting_sync = member.awaiting_sync, None
            callback_sync(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))

    def _after_members_left(self) -> None:
        if self.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance()
        else:
            self._maybe_complete_join()

    # -- member checks --------------------------------------------------------------------

    def _check_member(self, member_id: str, instance: str | None) -> ErrorCode:
        if instance is not None:
            holder = self.static_members.get(instance)
            if holder is not None and holder != member_id:
                return ErrorCode.FENCED_INSTANCE_ID
        if member_id not in self.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        return ErrorCode.NONE

    # -- SyncGroup ------------------------------------------------------------------------

    def sync(
        self,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        assignments: dict[str, bytes],
        respond: SyncCallback,
        *,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
    ) -> None:
        if self.state is GroupState.DEAD:
            respond(SyncResult(ErrorCode.COORDINATOR_NOT_AVAILABLE))
            return
        error = self._check_member(member_id, group_instance_id)
        if error is ErrorCode.NONE and generation_id != self.generation_id:
            error = ErrorCode.ILLEGAL_GENERATION
        if error is ErrorCode.NONE and (
            (protocol_type is not None and protocol_type != self.protocol_type)
            or (protocol_name is not None and protocol_name != self.protocol_name)
        ):
            error = ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        if error is ErrorCode.NONE and self.state is GroupState.PREPARING_REBALANCE:
            error = ErrorCode.REBALANCE_IN_PROGRESS
        if error is not ErrorCode.NONE:
            respond(SyncResult(error))
            return
        member = self.members[member_id]
        self._touch(member)
        if self.state is GroupState.STABLE:
            respond(self._sync_result(member))
            return
        invariant(self.state is GroupState.COMPLETING_REBALANCE, "sync in an unexpected state")
        if member.awaiting_sync is not None:
            member.awaiting_sync(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        member.awaiting_sync = respond
        if member_id != self.leader_id:
            return
        for each in self.members.values():
            each.assignment = assignments.get(each.member_id, b"")
        self._transition(GroupState.STABLE)
        self._sync_deadline_ms = None
        self.metadata_changed = True
        now = self._now()
        answers: list[tuple[SyncCallback, SyncResult]] = []
        for each in self.members.values():
            if each.awaiting_sync is not None:
                answers.append((each.awaiting_sync, self._sync_result(each)))
                each.awaiting_sync = None
                each.heartbeat_deadline_ms = now + each.session_timeout_ms
        for callback, result in answers:
            callback(result)

    def _sync_result(self, member: Member) -> SyncResult:
        return SyncResult(ErrorCode.NONE, self.protocol_type, self.protocol_name, member.assignment)

    # -- Heartbeat ------------------------------------------------------------------------

    def heartbeat(
        self, member_id: str, group_instance_id: str | None, generation_id: int
    ) -> ErrorCode:
        if self.state is GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        error = self._check_member(member_id, group_instance_id)
        if error is not ErrorCode.NONE:
            return error
        member = self.members[member_id]
        if self.state is GroupState.PREPARING_REBALANCE:
            self._touch(member)
            return ErrorCode.REBALANCE_IN_PROGRESS
        if generation_id != self.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        self._touch(member)
        return ErrorCode.NONE

    # -- a consumer group turning back into a classic one (mixed_group's downgrade) --------

    def adopt(self, members: list[Member], generation_id: int, protocol_name: str) -> None:
        """Take in the classic members of a KIP-848 group that became classic again, with
        their assignments, and start a rebalance: they learn of it from Heartbeat
        (REBALANCE_IN_PROGRESS) and rejoin."""
        invariant(self.state is GroupState.EMPTY and not self.members, "adopt into a new group")
        self.generation_id = generation_id
        self.protocol_type = "consumer"
        self.protocol_name = protocol_name
        for member in members:
            self.members[member.member_id] = member
            if member.group_instance_id is not None:
                self.static_members[member.group_instance_id] = member.member_id
            self._touch(member)
        self.leader_id = members[0].member_id if members else None
        self.metadata_changed = True
        self._prepare_rebalance()

    # -- LeaveGroup -----------------------------------------------------------------------

    def leave(self, leaving: list[tuple[str, str | None]]) -> list[LeaveOutcome]:
        """Remove members given as (member id, group instance id); one outcome each."""
        outcomes = []
        removed = False
        for member_id, instance in leaving:
            error = ErrorCode.NONE
            if self.state is GroupState.DEAD:
                error = ErrorCode.COORDINATOR_NOT_AVAILABLE
            elif instance is not None:
                holder = self.static_members.get(instance)
                if holder is None:
                    error = ErrorCode.UNKNOWN_MEMBER_ID
                elif member_id not in ("", holder):
                    error = ErrorCode.FENCED_INSTANCE_ID
                else:
                    self._remove_member(self.members[holder])
                    removed = True
            elif member_id in self.pending_members:
                del self.pending_members[member_id]
                removed = True
            elif member_id in self.members:
                self._remove_member(self.members[member_id])
                removed = True
            else:
                error = ErrorCode.UNKNOWN_MEMBER_ID
            outcomes.append(LeaveOutcome(member_id, instance, error))
        if removed:
            self._after_members_left()
        return outcomes

    # -- OffsetCommit checks --------------------------------------------------------------

    def check_commit(
        self,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        *,
        transactional: bool = False,
    ) -> ErrorCode:
        """May this member commit offsets now? Generation -1 is a "simple" commit, allowed
        only while the group has no members (an application managing its own partitions).
        A TxnOffsetCommit (``transactional``) needs no member fields (v0-2 have none): they
        are checked only when given, and the group's state does not matter (Kafka's
        ClassicGroup.validateOffsetCommit)."""
        if self.state is GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if generation_id < 0 and self.state is GroupState.EMPTY:
            return ErrorCode.NONE
        if generation_id >= 0 or member_id or group_instance_id is not None:
            error = self._check_member(member_id, group_instance_id)
            if error is not ErrorCode.NONE:
                return error
            if generation_id != self.generation_id:
                return ErrorCode.ILLEGAL_GENERATION
        elif not transactional:
            return ErrorCode.UNKNOWN_MEMBER_ID  # no member fields, and the group has members
        if not transactional and self.state is GroupState.COMPLETING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        if member_id in self.members:
            self._touch(self.members[member_id])
        return ErrorCode.NONE

    # -- timers ---------------------------------------------------------------------------

    def next_deadline_ms(self) -> float | None:
        deadlines = list(self.pending_members.values())
        if self._join_phase is not None:
            deadlines.append(self._join_phase.deadline_ms)
        if self._sync_deadline_ms is not None:
            deadlines.append(self._sync_deadline_ms)
        deadlines.extend(
            m.heartbeat_deadline_ms for m in self.members.values() if self._session_runs(m)
        )
        return min(deadlines, default=None)

    @staticmethod
    def _session_runs(member: Member) -> bool:
        # A member parked in JoinGroup or SyncGroup is alive: the phase's own timer bounds it.
        return member.awaiting_join is None and member.awaiting_sync is None

    def expire(self) -> None:
        """Act on every timer that has run out by now."""
        now = self._now()
        expired_pending = [mid for mid, deadline in self.pending_members.items() if deadline <= now]
        for member_id in expired_pending:
            del self.pending_members[member_id]
        expired = [
            m
            for m in self.members.values()
            if self._session_runs(m) and m.heartbeat_deadline_ms <= now
        ]
        for member in expired:
            self._remove_member(member)
        phase = self._join_phase
        if self.state is GroupState.PREPARING_REBALANCE and phase is not None:
            if phase.deadline_ms <= now:
                if phase.initial_delay and phase.member_added and phase.delay_limit_ms > now:
                    remaining = phase.delay_limit_ms - now
                    phase.deadline_ms = now + min(self.config.initial_rebalance_delay_ms, remaining)
                    phase.member_added = False
                else:
                    self._complete_join()
                    return
            elif expired or expired_pending:
                self._maybe_complete_join()
            return
        if (
            self.state is GroupState.COMPLETING_REBALANCE
            and self._sync_deadline_ms is not None
            and self._sync_deadline_ms <= now
        ):
            # Members that never sent SyncGroup are gone; the others rejoin.
            for member in [m for m in self.members.values() if m.awaiting_sync is None]:
                self._remove_member(member)
            self._prepare_rebalance()
            return
        if expired:
            self._after_members_left()
