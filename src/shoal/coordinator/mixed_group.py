"""Classic and consumer-protocol members in one KIP-848 group: Kafka 4.4's online migration.

``group.consumer.migration.policy`` (``disabled``, ``upgrade``, ``downgrade``,
``bidirectional``; Kafka 4.4's default ``bidirectional``) decides which conversions happen.
The rules shoal implements:

Upgrade (classic group -> consumer group), when a member joins with ConsumerGroupHeartbeat
(epoch 0) and the group id holds a classic group:

- an *empty* classic group (e.g. one that only keeps committed offsets) is replaced by a new
  consumer group, whatever the policy; the offsets stay, they belong to the group id;
- a classic group with members is *converted* when the policy allows upgrades, its protocol
  type is ``consumer`` and it has at most ``group.consumer.max.size`` members. Each classic
  member becomes a member of the consumer group that still speaks the classic protocol: its
  member epoch is the group's generation, its subscription is read from its JoinGroup
  metadata and its current (and target) assignment from its last SyncGroup assignment; the
  group and assignment epochs are the generation. JoinGroup/SyncGroup requests parked in the
  classic group are answered REBALANCE_IN_PROGRESS (their members rejoin at once);
- otherwise the heartbeat is answered GROUP_ID_NOT_FOUND ("Group G is not a consumer group.").

Classic members in a consumer group (converted ones, and new ones joining a group that has
members: any policy allows that, as in Kafka):

- JoinGroup (v4+: a new dynamic member first gets MEMBER_ID_REQUIRED and rejoins) needs
  protocol type ``consumer`` (INCONSISTENT_GROUP_PROTOCOL otherwise). It is answered at once:
  the subscription comes from the member's first protocol's metadata, the partitions it still
  owns from the Subscription's owned partitions (v1+; none for v0, as an eager member has
  revoked everything before rejoining), then the member is reconciled exactly as a
  consumer-protocol member is (revocation before reassignment). The answer's generation is its
  member epoch, its protocol its first one, and it names no leader: every member follows.
- SyncGroup answers the member's assigned partitions (an Assignment v0, no user data);
  a generation other than the member epoch gets ILLEGAL_GENERATION.
- Heartbeat answers REBALANCE_IN_PROGRESS while the member is not reconciled to the target
  (it must rejoin to move on, revoking as its protocol does), ILLEGAL_GENERATION for another
  generation, UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID as the classic protocol does.
- LeaveGroup removes the member (its partitions are free, the group epoch goes up).
- Its session is its JoinGroup session timeout; OffsetCommit takes its generation (= member
  epoch) from any version.

A classic JoinGroup to an *empty* consumer group replaces it with a new classic group.

Downgrade (consumer group -> classic group): when the last consumer-protocol member leaves
(epoch -1, or fenced by a timeout) and members remain, all of them classic, and the policy
allows downgrades, the group becomes a classic group again: its members keep their member
ids, instance ids, protocols, session and rebalance timeouts and current assignments, the
generation is the group epoch, and a rebalance starts at once (every member rejoins on its next
Heartbeat, REBALANCE_IN_PROGRESS). Under ``disabled`` or ``upgrade`` the classic members stay
in the consumer group and keep working as described above.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

from shoal.coordinator.consumer_group import (
    Assignment,
    ClassicMembership,
    ConsumerGroup,
    ConsumerGroupError,
    ConsumerGroupSettings,
    ConsumerHeartbeat,
    ConsumerMember,
    MemberState,
)
from shoal.coordinator.consumer_protocol import (
    assigned_partitions,
    encode_assignment,
    owned_partitions,
    subscribed_topics,
)
from shoal.coordinator.group import (
    Group,
    JoinRequest,
    JoinResult,
    LeaveOutcome,
    Member,
    SyncResult,
)
from shoal.protocol.errors import ErrorCode

CONSUMER_PROTOCOL_TYPE = "consumer"


class MigrationPolicy(Enum):
    DISABLED = "disabled"
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    BIDIRECTIONAL = "bidirectional"

    @property
    def upgrades(self) -> bool:
        return self in (MigrationPolicy.UPGRADE, MigrationPolicy.BIDIRECTIONAL)

    @property
    def downgrades(self) -> bool:
        return self in (MigrationPolicy.DOWNGRADE, MigrationPolicy.BIDIRECTIONAL)


def parse_policy(value: str) -> MigrationPolicy | None:
    """The policy Kafka names ``value`` (case-insensitive), or None."""
    for policy in MigrationPolicy:
        if policy.value == value.strip().lower():
            return policy
    return None


def _as_assignment(parts: Mapping[str, list[int]]) -> Assignment:
    return {t: frozenset(ps) for t, ps in parts.items() if ps}


def can_upgrade(group: Group, policy: MigrationPolicy, max_size: int) -> bool:
    return (
        policy.upgrades
        and group.protocol_type == CONSUMER_PROTOCOL_TYPE
        and len(group.members) <= max_size
    )


def convert_classic(group: Group, settings: ConsumerGroupSettings) -> ConsumerGroup:
    """The consumer group a classic group with members becomes (see the module docstring).
    Answers the classic group's parked requests; the caller drops the classic group."""
    converted = ConsumerGroup(group.group_id, group.clock, settings)
    converted.group_epoch = converted.assignment_epoch = group.generation_id
    now = group.clock.monotonic_ms()
    for old in group.members.values():
        if old.awaiting_join is not None:
            join, old.awaiting_join = old.awaiting_join, None
            join(JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, old.member_id))
        if old.awaiting_sync is not None:
            sync, old.awaiting_sync = old.awaiting_sync, None
            sync(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        metadata = old.metadata_for(group.protocol_name) or (
            old.protocols[0][1] if old.protocols else b""
        )
        assigned: Assignment = {}
        for topic, parts in assigned_partitions(old.assignment).items():
            # A partition two members claim (a broken client assignor) goes to the first.
            free = [p for p in parts if (topic, p) not in converted.owners]
            if free:
                assigned[topic] = frozenset(free)
                for p in free:
                    converted.owners[(topic, p)] = (old.member_id, group.generation_id)
        member = ConsumerMember(
            old.member_id,
            instance_id=old.group_instance_id,
            client_id=old.client_id,
            client_host=old.client_host,
            rebalance_timeout_ms=old.rebalance_timeout_ms,
            subscribed_topic_names=tuple(sorted(subscribed_topics(metadata))),
            member_epoch=group.generation_id,
            previous_member_epoch=group.generation_id - 1,
            state=MemberState.STABLE,
            assigned=assigned,
            session_deadline_ms=now + old.session_timeout_ms,
            classic=ClassicMembership(old.session_timeout_ms, old.protocols),
        )
        member.assignment_epochs = {
            (t, p): group.generation_id for t, ps in assigned.items() for p in ps
        }
        converted.members[member.member_id] = member
        if member.instance_id is not None:
            converted.static_members[member.instance_id] = member.member_id
        converted.target[member.member_id] = dict(assigned)
    converted.changed = True
    return converted


def _classic_member(
    group: ConsumerGroup, member_id: str, instance: str | None
) -> tuple[ConsumerMember, ClassicMembership]:
    """The classic member a SyncGroup/Heartbeat names; raises with the classic errors."""
    if instance is not None:
        holder = group.static_members.get(instance)
        if holder is not None and holder != member_id:
            raise ConsumerGroupError(ErrorCode.FENCED_INSTANCE_ID, "")
    member = group.members.get(member_id)
    if member is None or member.classic is None:
        raise ConsumerGroupError(ErrorCode.UNKNOWN_MEMBER_ID, "")
    return member, member.classic


def classic_join(
    group: ConsumerGroup,
    request: JoinRequest,
    member_id: str,
    topics: Mapping[str, int],
    *,
    new_member: bool,
) -> JoinResult:
    """A JoinGroup of a classic member (``member_id`` already chosen for a new one)."""
    if request.protocol_type != CONSUMER_PROTOCOL_TYPE or not request.protocols:
        return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, request.member_id)
    name, metadata = request.protocols[0]
    instance = request.group_instance_id
    member = group.members.get(member_id)
    if member is None:
        holder = group.static_members.get(instance) if instance is not None else None
        if holder is not None and holder in group.members:
            old = group.members[holder]
            if old.classic is None and old.member_epoch != -2:
                return JoinResult(ErrorCode.UNRELEASED_INSTANCE_ID, request.member_id)
            member = group.take_over_static(old, member_id)
        elif not new_member:
            return JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, request.member_id)
        elif len(group.members) >= group.settings.max_size:
            return JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED, request.member_id)
        else:
            member = ConsumerMember(member_id)
    elif member.classic is None:
        return JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, request.member_id)
    member.classic = ClassicMembership(request.session_timeout_ms, request.protocols)
    owned = owned_partitions(metadata)
    answer = group.apply(
        member,
        ConsumerHeartbeat(
            member_id=member_id,
            member_epoch=0,
            instance_id=instance,
            rebalance_timeout_ms=request.rebalance_timeout_ms,
            subscribed_topic_names=tuple(sorted(subscribed_topics(metadata))),
            owned=_as_assignment(owned or {}),
            client_id=request.client_id,
            client_host=request.client_host,
        ),
        topics,
    )
    return JoinResult(
        ErrorCode.NONE,
        member_id,
        generation_id=answer.member_epoch,
        protocol_type=CONSUMER_PROTOCOL_TYPE,
        protocol_name=name,
        leader_id="",
    )


def classic_sync(
    group: ConsumerGroup,
    member_id: str,
    instance: str | None,
    generation_id: int,
    protocol_type: str | None,
    protocol_name: str | None,
) -> SyncResult:
    try:
        member, classic = _classic_member(group, member_id, instance)
    except ConsumerGroupError as exc:
        return SyncResult(exc.error)
    if generation_id != member.member_epoch:
        return SyncResult(ErrorCode.ILLEGAL_GENERATION)
    names = [n for n, _ in classic.protocols]
    if (protocol_type is not None and protocol_type != CONSUMER_PROTOCOL_TYPE) or (
        protocol_name is not None and protocol_name not in names
    ):
        return SyncResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
    return SyncResult(
        ErrorCode.NONE,
        protocol_type=CONSUMER_PROTOCOL_TYPE,
        protocol_name=names[0],
        assignment=encode_assignment({t: sorted(ps) for t, ps in member.assigned.items()}),
    )


def classic_heartbeat(
    group: ConsumerGroup, member_id: str, instance: str | None, generation_id: int
) -> ErrorCode:
    try:
        member, classic = _classic_member(group, member_id, instance)
    except ConsumerGroupError as exc:
        return exc.error
    if generation_id != member.member_epoch:
        return ErrorCode.ILLEGAL_GENERATION
    member.session_deadline_ms = group.clock.monotonic_ms() + classic.session_timeout_ms
    if member.state is not MemberState.STABLE or member.member_epoch != group.assignment_epoch:
        return ErrorCode.REBALANCE_IN_PROGRESS
    return ErrorCode.NONE


def classic_leave(
    group: ConsumerGroup, leaving: list[tuple[str, str | None]]
) -> list[LeaveOutcome]:
    outcomes = []
    for member_id, instance in leaving:
        target_id = member_id
        if instance is not None:
            holder = group.static_members.get(instance)
            if holder is None:
                outcomes.append(LeaveOutcome(member_id, instance, ErrorCode.UNKNOWN_MEMBER_ID))
                continue
            if member_id and holder != member_id:
                outcomes.append(LeaveOutcome(member_id, instance, ErrorCode.FENCED_INSTANCE_ID))
                continue
            target_id = holder
        if target_id not in group.members:
            outcomes.append(LeaveOutcome(member_id, instance, ErrorCode.UNKNOWN_MEMBER_ID))
            continue
        group.fence(target_id)
        outcomes.append(LeaveOutcome(member_id, instance, ErrorCode.NONE))
    return outcomes


def can_downgrade(group: ConsumerGroup, policy: MigrationPolicy) -> bool:
    """Every remaining member is classic (the last consumer-protocol one just left)."""
    return (
        policy.downgrades
        and bool(group.members)
        and all(m.classic is not None for m in group.members.values())
    )


def convert_consumer(group: ConsumerGroup, classic: Group) -> None:
    """Move the classic members of ``group`` into the new, empty classic group ``classic``
    (see the module docstring)."""
    members = []
    protocol_name = ""
    for m in group.members.values():
        if m.classic is None:  # pragma: no cover - can_downgrade checked it
            continue
        protocol_name = protocol_name or m.classic.protocols[0][0]
        members.append(
            Member(
                member_id=m.member_id,
                group_instance_id=m.instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                session_timeout_ms=m.classic.session_timeout_ms,
                rebalance_timeout_ms=m.rebalance_timeout_ms,
                protocols=m.classic.protocols,
                assignment=encode_assignment({t: sorted(ps) for t, ps in m.assigned.items()}),
            )
        )
    classic.adopt(members, group.group_epoch, protocol_name)
