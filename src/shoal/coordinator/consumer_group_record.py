"""A KIP-848 consumer group as one record of the ``__consumer_offsets`` log, and back.

Kafka writes a consumer group as several record types (group epoch, member subscriptions,
target assignment, current member assignments); shoal writes the same facts as one JSON
document per group, rewritten whenever they change (the last record of a key wins, and the
offsets log's snapshots keep it bounded). A restart therefore keeps every member, its epoch,
its assignment and the target: members carry on heartbeating as if nothing happened. Session
deadlines are not kept: each member gets a full session from the load, as Kafka does.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from shoal.clock import Clock
from shoal.coordinator.consumer_group import (
    Assignment,
    ClassicMembership,
    ConsumerGroup,
    ConsumerGroupSettings,
    ConsumerMember,
    MemberState,
)


def _parts(assignment: Mapping[str, frozenset[int]]) -> dict[str, list[int]]:
    return {t: sorted(ps) for t, ps in sorted(assignment.items())}


def _assignment(doc: Mapping[str, Any]) -> Assignment:
    return {str(t): frozenset(int(p) for p in ps) for t, ps in doc.items()}


def _classic(doc: Mapping[str, Any] | None) -> ClassicMembership | None:
    if doc is None:
        return None
    return ClassicMembership(
        int(doc["session_timeout_ms"]),
        tuple((str(name), base64.b64decode(meta)) for name, meta in doc["protocols"]),
    )


def group_document(group: ConsumerGroup) -> dict[str, Any]:
    return {
        "group_epoch": group.group_epoch,
        "assignment_epoch": group.assignment_epoch,
        "subscription_metadata": dict(group.subscription_metadata),
        "members": [
            {
                "id": m.member_id,
                "instance": m.instance_id,
                "rack": m.rack_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "rebalance_timeout_ms": m.rebalance_timeout_ms,
                "topics": list(m.subscribed_topic_names),
                "regex": m.subscribed_topic_regex,
                "assignor": m.server_assignor,
                "epoch": m.member_epoch,
                "previous_epoch": m.previous_member_epoch,
                "state": m.state.value,
                "assigned": _parts(m.assigned),
                "revoking": _parts(m.pending_revocation),
                "target": _parts(group.target.get(m.member_id, {})),
                "since": sorted([t, p, e] for (t, p), e in m.assignment_epochs.items()),
                "visible": None if m.visible_topics is None else sorted(m.visible_topics),
                "classic": None
                if m.classic is None
                else {
                    "session_timeout_ms": m.classic.session_timeout_ms,
                    "protocols": [
                        [name, base64.b64encode(meta).decode()]
                        for name, meta in m.classic.protocols
                    ],
                },
            }
            for m in group.members.values()
        ],
    }


def group_from_document(
    group_id: str, doc: Mapping[str, Any], clock: Clock, settings: ConsumerGroupSettings
) -> ConsumerGroup:
    """The group the document describes; raises KeyError/ValueError/TypeError if damaged."""
    group = ConsumerGroup(group_id, clock, settings)
    group.group_epoch = int(doc["group_epoch"])
    group.assignment_epoch = int(doc["assignment_epoch"])
    group.subscription_metadata = {str(t): int(n) for t, n in doc["subscription_metadata"].items()}
    session_deadline = clock.monotonic_ms() + settings.session_timeout_ms
    for entry in doc["members"]:
        member = ConsumerMember(
            str(entry["id"]),
            instance_id=entry["instance"],
            rack_id=entry["rack"],
            client_id=str(entry["client_id"]),
            client_host=str(entry["client_host"]),
            rebalance_timeout_ms=int(entry["rebalance_timeout_ms"]),
            subscribed_topic_names=tuple(str(t) for t in entry["topics"]),
            subscribed_topic_regex=entry["regex"],
            server_assignor=entry["assignor"],
            member_epoch=int(entry["epoch"]),
            previous_member_epoch=int(entry["previous_epoch"]),
            state=MemberState(entry["state"]),
            assigned=_assignment(entry["assigned"]),
            pending_revocation=_assignment(entry["revoking"]),
            session_deadline_ms=session_deadline,
            classic=_classic(entry.get("classic")),
        )
        if member.classic is not None:
            member.session_deadline_ms = clock.monotonic_ms() + member.classic.session_timeout_ms
        owned = [
            (t, p)
            for parts in (member.assigned, member.pending_revocation)
            for t, ps in parts.items()
            for p in ps
        ]
        since = {(str(t), int(p)): int(e) for t, p, e in entry.get("since", [])}
        member.assignment_epochs = {tp: since.get(tp, member.member_epoch) for tp in owned}
        visible = entry.get("visible")
        member.visible_topics = None if visible is None else frozenset(map(str, visible))
        if member.state is MemberState.UNREVOKED_PARTITIONS:
            member.rebalance_deadline_ms = clock.monotonic_ms() + member.rebalance_timeout_ms
        group.members[member.member_id] = member
        if member.instance_id is not None:
            group.static_members[member.instance_id] = member.member_id
        group.target[member.member_id] = _assignment(entry["target"])
        for parts in (member.assigned, member.pending_revocation):
            for topic, ps in parts.items():
                for p in ps:
                    group.owners[(topic, p)] = (member.member_id, member.member_epoch)
    return group
