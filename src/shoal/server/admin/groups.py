"""Consumer groups: list, describe (members, committed offsets, lag in records and seconds),
reset offsets (dry run, then apply).

Authorization as ListGroups / DescribeGroups / OffsetFetch / OffsetCommit: Describe on the
group to see it (and Describe on a topic to see its offsets), Read on the group and the topic
to move its offsets. A reset is refused with 409 while the group has members, as
kafka-consumer-groups refuses it ("consumer group is active").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shoal.broker.broker import Broker
from shoal.broker.context import RequestContext
from shoal.coordinator.consumer_group import ConsumerGroup
from shoal.coordinator.group import Group
from shoal.coordinator.offsets_log import CommittedOffset, TopicPartitionKey
from shoal.protocol import ErrorCode
from shoal.security.acl import AclOperation, ResourceType
from shoal.server.admin.access import require
from shoal.server.admin.errors import ApiError, from_kafka
from shoal.server.admin.params import field, field_or, json_object
from shoal.server.admin.reads import admin_read
from shoal.server.group_metrics import batch_timestamp
from shoal.server.group_status import GroupVerdict, tracker_for
from shoal.storage import PartitionLog

RESET_TARGETS: Final = ("earliest", "latest", "timestamp", "offset")
ADMIN_GENERATION: Final = -1
"""The generation of an offset commit from outside the group (AdminClient's alterOffsets)."""


@dataclass(frozen=True)
class GroupView:
    """A classic group or a KIP-848 consumer group, as the API shows either."""

    group_id: str
    type: str
    """``classic`` or ``consumer`` (Kafka's GroupType)."""
    state: str
    protocol_type: str | None
    protocol: str | None
    members: list[dict[str, Any]]


def _classic(group: Group) -> GroupView:
    members = [
        {
            "member_id": m.member_id,
            "group_instance_id": m.group_instance_id,
            "client_id": m.client_id,
            "client_host": m.client_host,
        }
        for m in sorted(group.members.values(), key=lambda m: m.member_id)
    ]
    return GroupView(
        group.group_id,
        "classic",
        group.state.value,
        group.protocol_type,
        group.protocol_name,
        members,
    )


def _consumer(group: ConsumerGroup) -> GroupView:
    members = [
        {
            "member_id": m.member_id,
            "group_instance_id": m.instance_id,
            "client_id": m.client_id,
            "client_host": m.client_host,
        }
        for m in sorted(group.members.values(), key=lambda m: m.member_id)
    ]
    return GroupView(group.group_id, "consumer", group.state.value, "consumer", None, members)


def _view(broker: Broker, group_id: str) -> GroupView | None:
    """The group, or None if the coordinator knows none of that id (it may still have
    committed offsets: a group of manually assigned consumers)."""
    consumer = broker.groups.consumer_group(group_id)
    if consumer is not None:
        return _consumer(consumer)
    classic = broker.groups.describe(group_id)
    return None if classic is None else _classic(classic)


def _all_views(broker: Broker) -> list[GroupView]:
    views = {g.group_id: _classic(g) for g in broker.groups.list()}
    views.update((g.group_id, _consumer(g)) for g in broker.groups.consumer_groups())
    return [views[k] for k in sorted(views)]


def _status(verdict: GroupVerdict | None) -> dict[str, str] | None:
    """Burrow's verdict as the API shows it: None for a group with no committed offset on a
    topic the caller may describe (nothing to judge)."""
    if verdict is None:
        return None
    return {"group": verdict.status.name, "worst": verdict.worst.name, "reason": verdict.reason}


def _verdicts(broker: Broker, ctx: RequestContext) -> dict[str, GroupVerdict]:
    """Burrow's verdict of each group, judged on the topics the caller may describe only."""
    tracker = tracker_for(broker)
    tracker.sample()
    topics = {t for offsets in broker.groups.committed_offsets().values() for t, _ in offsets}
    visible = broker.authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, topics)
    return tracker.verdicts(lambda topic: topic in visible)


def list_groups(broker: Broker, ctx: RequestContext) -> Response:
    """Every group the principal may describe (all with Describe on the cluster), with
    Burrow's status."""
    groups = _all_views(broker)
    verdicts = _verdicts(broker, ctx)
    if broker.authorize_cluster(ctx, AclOperation.DESCRIBE):
        allowed = {g.group_id for g in groups}
    else:
        allowed = broker.authorized_names(
            ctx, AclOperation.DESCRIBE, ResourceType.GROUP, (g.group_id for g in groups)
        )
    rows = [
        {
            "group_id": g.group_id,
            "type": g.type,
            "state": g.state,
            "protocol_type": g.protocol_type,
            "members": len(g.members),
            "status": _status(verdicts.get(g.group_id)),
        }
        for g in groups
        if g.group_id in allowed
    ]
    return JSONResponse({"groups": rows})


def _offsets(
    broker: Broker, ctx: RequestContext, group_id: str
) -> list[tuple[dict[str, Any], PartitionLog | None]]:
    """Committed offset and lag of each partition whose topic the principal may describe,
    each with its log (to find the lag in seconds with)."""
    committed = broker.groups.committed_offsets().get(group_id, {})
    topics = broker.authorized_names(
        ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, {t for t, _ in committed}
    )
    rows = []
    for (topic, partition), offset in sorted(committed.items()):
        if topic not in topics:
            continue
        plog = broker.partition(topic, partition)
        row: dict[str, Any] = {
            "topic": topic,
            "partition": partition,
            "committed_offset": offset.offset,
            "metadata": offset.metadata,
            "high_watermark": None,
            "lag": None,
            "lag_seconds": None,
        }
        if plog is not None:  # else the topic is gone; its offsets linger until expiry
            row["high_watermark"] = plog.log_end_offset
            row["lag"] = max(0, plog.log_end_offset - offset.offset)
        rows.append((row, plog))
    return rows


def _fill_lag_seconds(rows: list[tuple[dict[str, Any], PartitionLog | None]], now_ms: int) -> None:
    """On a worker thread (it reads a batch header from disk per lagging partition): the same
    measure as shoal_consumergroup_lag_seconds, the age of the first record the group has not
    consumed, 0 when caught up."""
    for row, plog in rows:
        if plog is None:
            continue
        stamp = batch_timestamp(plog, row["committed_offset"]) if row["lag"] else None
        row["lag_seconds"] = 0.0 if stamp is None else max(0, now_ms - stamp) / 1000


async def describe_group(broker: Broker, ctx: RequestContext, group_id: str) -> Response:
    require(broker, ctx, AclOperation.DESCRIBE, ResourceType.GROUP, group_id)
    group = _view(broker, group_id)
    if group is None and not broker.groups.committed_offsets().get(group_id):
        raise ApiError(404, "group_id_not_found", f"group {group_id!r} does not exist")
    offsets = _offsets(broker, ctx, group_id)
    verdict = _verdicts(broker, ctx).get(group_id)
    judged_by = {} if verdict is None else {(p.topic, p.partition): p for p in verdict.partitions}
    for row, _plog in offsets:
        judged = judged_by.get((row["topic"], row["partition"]))
        row["status"] = None if judged is None else judged.status.name
        row["status_reason"] = None if judged is None else judged.reason
    await admin_read(_fill_lag_seconds, offsets, broker.clock.now_ms())
    return JSONResponse(
        {
            "group_id": group_id,
            "type": "classic" if group is None else group.type,
            "state": "Empty" if group is None else group.state,
            "protocol_type": None if group is None else group.protocol_type,
            "protocol": None if group is None else group.protocol,
            "members": [] if group is None else group.members,
            "status": _status(verdict),
            "offsets": [row for row, _ in offsets],
        }
    )


def _target_offset(broker: Broker, topic: str, partition: int, spec: dict[str, Any]) -> int:
    plog = broker.partition(topic, partition)
    if plog is None:
        raise ApiError(
            404, "unknown_topic_or_partition", f"partition {topic}-{partition} does not exist"
        )
    to = spec["to"]
    if to == "earliest":
        return plog.log_start_offset
    if to == "latest":
        return plog.log_end_offset
    if to == "timestamp":
        found = plog.offset_for_timestamp(spec["value"])
        return plog.log_end_offset if found is None else found[0]
    offset = int(spec["value"])
    if not plog.log_start_offset <= offset <= plog.log_end_offset:
        raise ApiError(
            400,
            "offset_out_of_range",
            f"offset {offset} is outside {topic}-{partition}'s log "
            f"[{plog.log_start_offset}, {plog.log_end_offset}]",
        )
    return offset


def _reset_spec(body: dict[str, Any]) -> dict[str, Any]:
    to = field(body, "to", str)
    if to not in RESET_TARGETS:
        raise ApiError(400, "invalid_field", f"'to' must be one of {', '.join(RESET_TARGETS)}")
    value = field(body, "value", int)
    if to in ("timestamp", "offset") and value is None:
        raise ApiError(400, "invalid_field", f"resetting to {to} needs an integer 'value'")
    return {"to": to, "value": value}


async def reset_offsets(
    broker: Broker, ctx: RequestContext, group_id: str, request: Request
) -> Response:
    """``{"topic", "partitions"?, "to", "value"?, "dry_run"?}`` (dry run unless ``dry_run`` is
    false): the new offset of each partition, committed only when not a dry run."""
    body = await json_object(request)
    spec = _reset_spec(body)
    topic = field(body, "topic", str)
    if topic is None:
        raise ApiError(400, "invalid_field", "'topic' is required")
    dry_run = field_or(body, "dry_run", bool, True)
    require(broker, ctx, AclOperation.READ, ResourceType.GROUP, group_id)
    require(broker, ctx, AclOperation.READ, ResourceType.TOPIC, topic)
    known = broker.topics.get(topic)
    if known is None:
        raise ApiError(404, "unknown_topic_or_partition", f"topic {topic!r} does not exist")
    partitions = field_or(body, "partitions", list, list(range(known.partitions)))
    if not partitions or not all(
        isinstance(p, int) and not isinstance(p, bool) for p in partitions
    ):
        raise ApiError(400, "invalid_field", "'partitions' must be a non-empty list of integers")
    group = _view(broker, group_id)
    if group is not None and group.members:
        raise ApiError(
            409,
            "group_active",
            f"group {group_id!r} has {len(group.members)} active member(s): stop its consumers "
            "before resetting its offsets",
        )
    # Looking up a timestamp reads the time index from disk: on a worker thread.
    targets: dict[TopicPartitionKey, int] = await admin_read(
        lambda: {
            (topic, p): _target_offset(broker, topic, p, spec) for p in sorted(set(partitions))
        }
    )
    current = broker.groups.committed_offsets().get(group_id, {})
    rows = [
        {
            "topic": t,
            "partition": p,
            "current_offset": current[(t, p)].offset if (t, p) in current else None,
            "new_offset": offset,
        }
        for (t, p), offset in targets.items()
    ]
    if not dry_run:
        now_ms = broker.clock.now_ms()
        offsets = {
            key: CommittedOffset(offset, commit_timestamp_ms=now_ms)
            for key, offset in targets.items()
        }
        error, errors = await broker.groups.commit_offsets(
            group_id, "", None, ADMIN_GENERATION, offsets, lambda: None
        )
        failed = [e for e in [error, *errors.values()] if e is not ErrorCode.NONE]
        if failed:
            raise from_kafka(failed[0], f"the broker refused the commit: {failed[0].name}")
    return JSONResponse({"group_id": group_id, "dry_run": dry_run, "partitions": rows})
