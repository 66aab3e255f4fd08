"""One KIP-848 consumer group: members with epochs, a target assignment, reconciliation.

Pure logic with an injected clock, as Kafka 4.4's group coordinator runs the "consumer"
group protocol (ConsumerGroupHeartbeat): the broker, not a client leader, assigns partitions.

Epochs. The *group epoch* goes up whenever what the assignment depends on changes: a member
joins, leaves or is fenced, a subscription changes, or a subscribed topic gains partitions or
appears. The *target assignment* is computed by a server-side assignor (``uniform`` or
``range``) for the group epoch; its epoch is the *assignment epoch*. Each member has a *member
epoch*: the epoch of the target it has reconciled to.

Reconciliation (Kafka's CurrentAssignmentBuilder), run on each heartbeat of a member:

- A member whose assigned partitions include some its target does not is asked to revoke them
  (state UNREVOKED_PARTITIONS): its answer lists only the partitions it keeps, its epoch stays.
  It acknowledges by a heartbeat whose owned partitions no longer include the revoked ones.
  Until then those partitions count as its own, so nobody else can get them.
- A member gets a partition of its target only once no other member owns it (assigned or
  pending revocation); if some are still owned elsewhere it moves to the target epoch with
  what is free (UNRELEASED_PARTITIONS) and gets the rest on a later heartbeat.
- Otherwise it is STABLE at the target epoch.

So at every moment a partition is owned by at most one member, whatever the epochs.

Time: a session deadline per member (``consumer.session.timeout.ms``, renewed by every
heartbeat), and a rebalance deadline while a member holds partitions it was asked to revoke
(its rebalance timeout). Either expiring fences the member: it is removed, its partitions are
free, the group epoch goes up, and its next heartbeat gets UNKNOWN_MEMBER_ID.

Errors are raised as :class:`ConsumerGroupError` carrying Kafka's code and message (the ones
Kafka 4.4 answers, checked against it by the differential scenarios).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from shoal.clock import Clock
from shoal.coordinator.assignors import ASSIGNORS, UNIFORM
from shoal.coordinator.topic_regex import RegexError, compile_topic_regex
from shoal.invariant import invariant
from shoal.protocol.errors import ErrorCode

LEAVE_EPOCH: Final = -1
STATIC_LEAVE_EPOCH: Final = -2
Assignment = dict[str, frozenset[int]]
"""topic -> partitions."""
OFFSET_COMMIT_EPOCH_VERSION: Final = 9
"""OffsetCommit v9+ carry the member epoch; a consumer-protocol member must use them."""


class ConsumerGroupError(Exception):
    def __init__(self, error: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


class MemberState(Enum):
    STABLE = "stable"
    UNREVOKED_PARTITIONS = "unrevoked_partitions"
    UNRELEASED_PARTITIONS = "unreleased_partitions"


class ConsumerGroupState(Enum):
    """The states Kafka reports for a consumer group (ListGroups, ConsumerGroupDescribe)."""

    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True, slots=True)
class ConsumerGroupSettings:
    session_timeout_ms: int = 45_000
    """consumer.session.timeout.ms (group.consumer.session.timeout.ms)."""
    heartbeat_interval_ms: int = 5_000
    """consumer.heartbeat.interval.ms (group.consumer.heartbeat.interval.ms)."""
    assignors: tuple[str, ...] = (UNIFORM, "range")
    """group.consumer.assignors; the first is the default."""
    max_size: int = 10_000
    """group.consumer.max.size (Kafka: unbounded; every member costs memory and timers)."""


@dataclass(frozen=True, slots=True)
class ConsumerHeartbeat:
    """A ConsumerGroupHeartbeat with topic ids already turned into names (None: unchanged)."""

    member_id: str
    member_epoch: int
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    subscribed_topic_names: tuple[str, ...] | None = None
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    owned: Assignment | None = None
    client_id: str = ""
    client_host: str = ""
    visible_topics: frozenset[str] | None = None
    """The topics the member's principal may Describe (None: every topic, no authorizer):
    its regex resolves among these only, as Kafka's does."""


@dataclass(frozen=True, slots=True)
class HeartbeatAnswer:
    member_id: str
    member_epoch: int
    heartbeat_interval_ms: int
    assignment: Assignment | None
    """None when the answer carries no assignment (nothing changed)."""


@dataclass
class ConsumerMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    rebalance_timeout_ms: int = 300_000
    subscribed_topic_names: tuple[str, ...] = ()
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    member_epoch: int = 0
    previous_member_epoch: int = -1
    state: MemberState = MemberState.STABLE
    assigned: Assignment = field(default_factory=dict)
    pending_revocation: Assignment = field(default_factory=dict)
    session_deadline_ms: float = 0.0
    rebalance_deadline_ms: float | None = None
    visible_topics: frozenset[str] | None = None
    """What its regex may resolve to (the topics its principal may Describe, as of its last
    heartbeat); None: every topic."""
    assignment_epochs: dict[tuple[str, int], int] = field(default_factory=dict)
    """Each owned partition (assigned or pending revocation) -> the member epoch it was
    assigned in (KIP-1251: what an OffsetCommit with an older epoch is checked against)."""
    classic: ClassicMembership | None = None
    """Set for a member that speaks the classic protocol (JoinGroup, SyncGroup, Heartbeat)
    in this consumer group (:mod:`shoal.coordinator.mixed_group`)."""


@dataclass(frozen=True, slots=True)
class ClassicMembership:
    session_timeout_ms: int
    protocols: tuple[tuple[str, bytes], ...]
    """Its JoinGroup protocols, (name, metadata), in its order of preference."""


def _tps(assignment: Mapping[str, frozenset[int]]) -> set[tuple[str, int]]:
    return {(t, p) for t, ps in assignment.items() for p in ps}


def _from_tps(tps: set[tuple[str, int]]) -> Assignment:
    out: dict[str, set[int]] = {}
    for t, p in tps:
        out.setdefault(t, set()).add(p)
    return {t: frozenset(ps) for t, ps in sorted(out.items())}


def compile_regex(pattern: str) -> re.Pattern[str]:
    """The subscription regex, matched against whole topic names as Kafka (RE2/J) does."""
    try:
        return compile_topic_regex(pattern)
    except RegexError as exc:
        raise ConsumerGroupError(
            ErrorCode.INVALID_REGULAR_EXPRESSION,
            f"SubscribedTopicRegex `{pattern}` is not a valid regular expression: {exc}.",
        ) from None


def new_member_id() -> str:
    return str(uuid.uuid4())


@dataclass
class ConsumerGroup:
    group_id: str
    clock: Clock
    settings: ConsumerGroupSettings = field(default_factory=ConsumerGroupSettings)
    group_epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ConsumerMember] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)
    """instance id -> member id."""
    target: dict[str, Assignment] = field(default_factory=dict)
    """member id -> its target assignment at :attr:`assignment_epoch`."""
    owners: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    """partition -> (member id, member epoch) of the member that owns it (assigned or pending
    revocation); a partition not here is free."""
    subscription_metadata: dict[str, int] = field(default_factory=dict)
    """Subscribed topic -> partition count, as of the last group epoch."""
    changed: bool = False
    """Set when what is persisted changed; the coordinator writes it and clears the flag."""

    # -- queries ---------------------------------------------------------------------------

    @property
    def state(self) -> ConsumerGroupState:
        if not self.members:
            return ConsumerGroupState.EMPTY
        if self.group_epoch > self.assignment_epoch:
            return ConsumerGroupState.ASSIGNING
        for m in self.members.values():
            if m.member_epoch != self.assignment_epoch or m.state is not MemberState.STABLE:
                return ConsumerGroupState.RECONCILING
        return ConsumerGroupState.STABLE

    @property
    def is_empty(self) -> bool:
        return not self.members

    def assignor_name(self) -> str:
        """The assignor most members asked for (ties: the configured order), else the
        default, as Kafka picks it."""
        counts: dict[str, int] = {}
        for m in self.members.values():
            if m.server_assignor:
                counts[m.server_assignor] = counts.get(m.server_assignor, 0) + 1
        if not counts:
            return self.settings.assignors[0]
        order = self.settings.assignors
        return max(counts, key=lambda a: (counts[a], -order.index(a) if a in order else -99))

    def subscribed_topics(
        self, member: ConsumerMember, topics: Mapping[str, int]
    ) -> frozenset[str]:
        names = {t for t in member.subscribed_topic_names if t in topics}
        if member.subscribed_topic_regex:
            pattern = compile_regex(member.subscribed_topic_regex)
            visible = member.visible_topics
            names |= {
                t for t in topics if pattern.fullmatch(t) and (visible is None or t in visible)
            }
        return frozenset(names)

    def next_deadline_ms(self) -> float | None:
        deadlines = [m.session_deadline_ms for m in self.members.values()]
        deadlines += [
            m.rebalance_deadline_ms
            for m in self.members.values()
            if m.rebalance_deadline_ms is not None
        ]
        return min(deadlines, default=None)

    # -- heartbeat -------------------------------------------------------------------------

    def heartbeat(self, request: ConsumerHeartbeat, topics: Mapping[str, int]) -> HeartbeatAnswer:
        """Handle a (validated) heartbeat with epoch >= 0; ``topics`` maps every topic a
        subscription may name to its partition count. Raises :class:`ConsumerGroupError`."""
        joining = request.member_epoch == 0
        if joining and request.member_id not in self.members:
            known = request.instance_id is not None and request.instance_id in self.static_members
            if not known and len(self.members) >= self.settings.max_size:
                raise ConsumerGroupError(
                    ErrorCode.GROUP_MAX_SIZE_REACHED,
                    f"The consumer group has reached its maximum capacity of "
                    f"{self.settings.max_size} members.",
                )
        member = self._member_for(request)
        return self.apply(member, request, topics)

    def apply(
        self, member: ConsumerMember, request: ConsumerHeartbeat, topics: Mapping[str, int]
    ) -> HeartbeatAnswer:
        """Update the (new or known) member from the request, recompute the target if the
        group epoch moved, and reconcile the member one step; its session starts again."""
        joining = request.member_epoch == 0
        before = (
            member.subscribed_topic_names,
            member.subscribed_topic_regex,
            member.server_assignor,
            member.visible_topics,
        )
        if request.instance_id is not None:
            member.instance_id = request.instance_id
        if request.rack_id is not None:
            member.rack_id = request.rack_id
        if request.rebalance_timeout_ms != -1:
            member.rebalance_timeout_ms = request.rebalance_timeout_ms
        if request.subscribed_topic_names is not None:
            member.subscribed_topic_names = tuple(sorted(set(request.subscribed_topic_names)))
        if request.subscribed_topic_regex is not None:
            member.subscribed_topic_regex = request.subscribed_topic_regex or None
        if request.server_assignor is not None:
            member.server_assignor = request.server_assignor
        member.client_id = request.client_id
        member.client_host = request.client_host
        member.visible_topics = request.visible_topics
        new_member = member.member_id not in self.members
        if new_member:
            self.members[member.member_id] = member
            if member.instance_id is not None:
                self.static_members[member.instance_id] = member.member_id
        changed_subscription = new_member or before != (
            member.subscribed_topic_names,
            member.subscribed_topic_regex,
            member.server_assignor,
            member.visible_topics,
        )
        metadata = self._subscription_metadata(topics)
        if changed_subscription or metadata != self.subscription_metadata:
            self.subscription_metadata = metadata
            self.group_epoch += 1
            self.changed = True
        if self.group_epoch > self.assignment_epoch:
            self._compute_target(topics)
        previous_assigned = dict(member.assigned)
        self._reconcile(member, request.owned)
        session_ms = self.settings.session_timeout_ms
        if member.classic is not None:
            session_ms = member.classic.session_timeout_ms
        member.session_deadline_ms = self.clock.monotonic_ms() + session_ms
        full = joining or (
            request.rebalance_timeout_ms != -1
            and request.subscribed_topic_names is not None
            and request.owned is not None
        )
        self._check()
        return HeartbeatAnswer(
            member.member_id,
            member.member_epoch,
            self.settings.heartbeat_interval_ms,
            dict(member.assigned) if full or member.assigned != previous_assigned else None,
        )

    def _member_for(self, request: ConsumerHeartbeat) -> ConsumerMember:
        joining = request.member_epoch == 0
        if request.instance_id is None:
            member = self.members.get(request.member_id)
            if member is None:
                if not joining:
                    raise ConsumerGroupError(
                        ErrorCode.UNKNOWN_MEMBER_ID,
                        f"Member {request.member_id} is not a member of group {self.group_id}.",
                    )
                return ConsumerMember(request.member_id)
            if not joining:
                self._check_epoch(member, request)
            return member
        instance = request.instance_id
        existing_id = self.static_members.get(instance)
        existing = self.members.get(existing_id) if existing_id is not None else None
        if joining:
            if existing is None:
                return self.members.get(request.member_id) or ConsumerMember(request.member_id)
            if existing.member_id == request.member_id:
                return existing
            if existing.member_epoch != STATIC_LEAVE_EPOCH:
                raise ConsumerGroupError(
                    ErrorCode.UNRELEASED_INSTANCE_ID,
                    f"Static member {request.member_id} with instance id {instance} cannot join "
                    f"the group because the instance id is owned by {existing.member_id} member.",
                )
            return self.take_over_static(existing, request.member_id)
        if existing is None:
            raise ConsumerGroupError(
                ErrorCode.UNKNOWN_MEMBER_ID, f"Instance id {instance} is unknown."
            )
        if existing.member_id != request.member_id:
            raise ConsumerGroupError(
                ErrorCode.FENCED_INSTANCE_ID,
                f"Static member {request.member_id} with instance id {instance} was fenced by "
                f"member {existing.member_id}.",
            )
        self._check_epoch(existing, request)
        return existing

    def take_over_static(self, old: ConsumerMember, member_id: str) -> ConsumerMember:
        """A static member back under a new member id takes over the old one's assignment."""
        del self.members[old.member_id]
        new = ConsumerMember(
            member_id,
            instance_id=old.instance_id,
            rack_id=old.rack_id,
            rebalance_timeout_ms=old.rebalance_timeout_ms,
            subscribed_topic_names=old.subscribed_topic_names,
            subscribed_topic_regex=old.subscribed_topic_regex,
            server_assignor=old.server_assignor,
            member_epoch=0,
            previous_member_epoch=0,
            state=old.state,
            assigned=old.assigned,
            pending_revocation=old.pending_revocation,
            assignment_epochs=dict.fromkeys(old.assignment_epochs, 0),
        )
        self.members[member_id] = new
        if old.instance_id is not None:
            self.static_members[old.instance_id] = member_id
        if old.member_id in self.target:
            self.target[member_id] = self.target.pop(old.member_id)
        for tp, (owner, _epoch) in list(self.owners.items()):
            if owner == old.member_id:
                self.owners[tp] = (member_id, 0)
        self.changed = True
        return new

    def _check_epoch(self, member: ConsumerMember, request: ConsumerHeartbeat) -> None:
        received = request.member_epoch
        if received > member.member_epoch:
            raise ConsumerGroupError(
                ErrorCode.FENCED_MEMBER_EPOCH,
                f"The consumer group member has a greater member epoch ({received}) than the "
                f"one known by the group coordinator ({member.member_epoch}). The member must "
                "abandon all its partitions and rejoin.",
            )
        if received < member.member_epoch:
            # The answer that bumped the epoch may have been lost: accept the previous epoch
            # from a member that owns no more than it was given.
            owned = request.owned
            if (
                received != member.previous_member_epoch
                or owned is None
                or not _tps(owned) <= _tps(member.assigned)
            ):
                raise ConsumerGroupError(
                    ErrorCode.FENCED_MEMBER_EPOCH,
                    f"The consumer group member has a smaller member epoch ({received}) than "
                    f"the one known by the group coordinator ({member.member_epoch}). The "
                    "member must abandon all its partitions and rejoin.",
                )

    # -- offsets ---------------------------------------------------------------------------

    def check_commit(
        self,
        member_id: str,
        member_epoch: int,
        api_version: int | None,
        partitions: Iterable[tuple[str, int]] = (),
    ) -> ErrorCode:
        """May this OffsetCommit (v9+: member id and epoch) commit these partitions? (Kafka's
        ConsumerGroup.validateOffsetCommit, with KIP-1251's assignment epochs: an older epoch
        still commits partitions the member has owned since that epoch, since a commit may
        cross the heartbeat that moved the member on.) ``api_version`` None: a TxnOffsetCommit,
        which any version may send."""
        if member_epoch < 0 and not self.members:
            return ErrorCode.NONE  # an admin or a consumer outside any group
        member = self.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if member.classic is not None:
            # A classic member commits with its generation, which is its member epoch.
            if member_epoch != member.member_epoch:
                return ErrorCode.ILLEGAL_GENERATION
            return ErrorCode.NONE
        if api_version is not None and api_version < OFFSET_COMMIT_EPOCH_VERSION:
            return ErrorCode.UNSUPPORTED_VERSION
        if member_epoch == member.member_epoch:
            return ErrorCode.NONE
        if member_epoch > member.member_epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        since = member.assignment_epochs
        if all(tp in since and since[tp] <= member_epoch for tp in partitions):
            return ErrorCode.NONE
        return ErrorCode.STALE_MEMBER_EPOCH

    def check_fetch(self, member_id: str | None, member_epoch: int) -> ErrorCode:
        """May this OffsetFetch (v9+) read? Without a member (epoch -1) anyone may."""
        if member_epoch < 0 and not member_id:
            return ErrorCode.NONE
        member = self.members.get(member_id or "")
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if member_epoch != member.member_epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        return ErrorCode.NONE

    # -- leaving and fencing ---------------------------------------------------------------

    def leave(self, member_id: str, instance_id: str | None, member_epoch: int) -> HeartbeatAnswer:
        """A heartbeat with epoch -1 (leave) or -2 (a static member that will be back)."""
        if instance_id is None:
            member = self.members.get(member_id)
            if member is None:
                raise ConsumerGroupError(
                    ErrorCode.UNKNOWN_MEMBER_ID,
                    f"Member {member_id} is not a member of group {self.group_id}.",
                )
            self.fence(member.member_id)
            return HeartbeatAnswer(member_id, LEAVE_EPOCH, 0, None)
        existing_id = self.static_members.get(instance_id)
        existing = self.members.get(existing_id) if existing_id is not None else None
        if existing is None:
            raise ConsumerGroupError(
                ErrorCode.UNKNOWN_MEMBER_ID, f"Instance id {instance_id} is unknown."
            )
        if existing.member_id != member_id:
            raise ConsumerGroupError(
                ErrorCode.FENCED_INSTANCE_ID,
                f"Static member {member_id} with instance id {instance_id} was fenced by "
                f"member {existing.member_id}.",
            )
        if member_epoch == STATIC_LEAVE_EPOCH:
            # The instance keeps its partitions for its return (within its session).
            existing.member_epoch = STATIC_LEAVE_EPOCH
            existing.rebalance_deadline_ms = None
            self.changed = True
            return HeartbeatAnswer(member_id, STATIC_LEAVE_EPOCH, 0, None)
        self.fence(existing.member_id)
        return HeartbeatAnswer(member_id, LEAVE_EPOCH, 0, None)

    def fence(self, member_id: str) -> None:
        """Remove the member; its partitions are free and the group epoch goes up."""
        member = self.members.pop(member_id)
        if member.instance_id is not None and self.static_members.get(member.instance_id) == (
            member_id
        ):
            del self.static_members[member.instance_id]
        self.target.pop(member_id, None)
        for tp in [tp for tp, (owner, _) in self.owners.items() if owner == member_id]:
            del self.owners[tp]
        self.group_epoch += 1
        self.changed = True
        self._check()

    def expire(self) -> list[str]:
        """Fence every member whose session or rebalance deadline has passed; their ids."""
        now = self.clock.monotonic_ms()
        expired = [
            m.member_id
            for m in self.members.values()
            if m.session_deadline_ms <= now
            or (m.rebalance_deadline_ms is not None and m.rebalance_deadline_ms <= now)
        ]
        for member_id in expired:
            self.fence(member_id)
        return expired

    # -- assignment ------------------------------------------------------------------------

    def _subscription_metadata(self, topics: Mapping[str, int]) -> dict[str, int]:
        subscribed: set[str] = set()
        for m in self.members.values():
            subscribed |= self.subscribed_topics(m, topics)
        return {t: topics[t] for t in sorted(subscribed)}

    def _compute_target(self, topics: Mapping[str, int]) -> None:
        subscriptions = {
            m.member_id: self.subscribed_topics(m, topics) for m in self.members.values()
        }
        assignor = ASSIGNORS[self.assignor_name()]
        target = assignor(subscriptions, self.subscription_metadata, self.target)
        self.target = {m: target.get(m, {}) for m in self.members}
        self.assignment_epoch = self.group_epoch
        self.changed = True

    def _reconcile(self, member: ConsumerMember, owned: Assignment | None) -> None:
        """Move the member one step towards its target (Kafka's CurrentAssignmentBuilder)."""
        target_epoch = self.assignment_epoch
        if member.member_epoch == STATIC_LEAVE_EPOCH:
            member.member_epoch = member.previous_member_epoch = 0
        state = member.state
        if state is MemberState.STABLE and member.member_epoch == target_epoch:
            return
        if state is MemberState.UNREVOKED_PARTITIONS:
            if self._still_owns(owned, member.pending_revocation):
                return
            self._next(member, member.member_epoch + 1, owned)
            return
        self._next(member, member.member_epoch, owned)

    @staticmethod
    def _still_owns(owned: Assignment | None, revoking: Assignment) -> bool:
        if owned is None:
            return True
        return bool(_tps(owned) & _tps(revoking))

    def _next(self, member: ConsumerMember, epoch: int, owned: Assignment | None) -> None:
        target = _tps(self.target.get(member.member_id, {}))
        current = _tps(member.assigned)
        keep = current & target
        revoke = current - target
        wanted = target - keep
        free = {tp for tp in wanted if tp not in self.owners}
        unreleased = bool(wanted - free)
        if revoke and self._still_owns(owned, _from_tps(revoke)):
            new_state, new_epoch = MemberState.UNREVOKED_PARTITIONS, epoch
            assigned, pending = keep, revoke
        else:
            new_state = MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE
            new_epoch = self.assignment_epoch
            assigned, pending = keep | free, set()
        if new_epoch != member.member_epoch:
            member.previous_member_epoch = member.member_epoch
        entering_revocation = new_state is MemberState.UNREVOKED_PARTITIONS and (
            member.state is not MemberState.UNREVOKED_PARTITIONS
            or member.rebalance_deadline_ms is None
        )
        member.member_epoch = new_epoch
        member.state = new_state
        for tp in current | _tps(member.pending_revocation):
            if self.owners.get(tp, ("", 0))[0] == member.member_id:
                del self.owners[tp]
        member.assigned = _from_tps(assigned)
        member.pending_revocation = _from_tps(pending)
        # KIP-1251: each owned partition remembers the epoch it came with; kept ones keep it.
        member.assignment_epochs = {
            tp: member.assignment_epochs.get(tp, new_epoch) for tp in assigned | pending
        }
        for tp in assigned | pending:
            self.owners[tp] = (member.member_id, new_epoch)
        if entering_revocation:
            member.rebalance_deadline_ms = self.clock.monotonic_ms() + member.rebalance_timeout_ms
        elif new_state is not MemberState.UNREVOKED_PARTITIONS:
            member.rebalance_deadline_ms = None
        self.changed = True

    def _check(self) -> None:
        seen: dict[tuple[str, int], str] = {}
        for m in self.members.values():
            for tp in _tps(m.assigned) | _tps(m.pending_revocation):
                invariant(tp not in seen, f"{tp} owned by {seen.get(tp)} and {m.member_id}")
                seen[tp] = m.member_id
        invariant(
            {tp: o for tp, (o, _) in self.owners.items()} == seen,
            "the partition owners map disagrees with the members' assignments",
        )
