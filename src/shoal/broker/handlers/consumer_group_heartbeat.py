"""ConsumerGroupHeartbeat (68), v0-v1: join, heartbeat in, and leave a KIP-848 consumer group.

The handler checks what Kafka checks before the coordinator sees the request (Group Read,
Topic Describe of the topics named in the subscription, the request's fields), turns topic ids
into names and back, and hands the coordinator the topics a subscription may name.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shoal.broker.handlers.group_common import client_host, may_use_group, millis
from shoal.coordinator.consumer_group import (
    Assignment,
    ConsumerGroupError,
    ConsumerHeartbeat,
    new_member_id,
)
from shoal.coordinator.consumer_group_checks import check_heartbeat
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class _TopicPartitions(Protocol):
    topic_id: uuid.UUID | None
    partitions: Sequence[int]


class _HeartbeatRequest(Protocol):
    """The fields of both versions (v1's subscribed_topic_regex is read with getattr)."""

    group_id: str
    member_id: str
    member_epoch: int
    instance_id: str | None
    rack_id: str | None
    rebalance_timeout: Any
    subscribed_topic_names: Sequence[str] | None
    server_assignor: str | None
    topic_partitions: Sequence[_TopicPartitions] | None


def _visible_topics(broker: Broker, ctx: RequestContext) -> frozenset[str] | None:
    """With an authorizer, the topics this principal may Describe: a regex subscription
    resolves among these only (Kafka's). None without one."""
    if broker.acls is None:
        return None
    names = {t.name for t in broker.topics}
    return frozenset(broker.authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, names))


def _owned(broker: Broker, body: _HeartbeatRequest) -> Assignment | None:
    if body.topic_partitions is None:
        return None
    owned: Assignment = {}
    for entry in body.topic_partitions:
        topic = broker.topic_by_id(entry.topic_id) if entry.topic_id is not None else None
        if topic is not None:  # a deleted topic's partitions are owned by nobody any more
            owned[topic.name] = frozenset(int(p) for p in entry.partitions)
    return owned


async def handle_consumer_group_heartbeat(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _HeartbeatRequest)
    version = header.api_version

    def answer(values: dict[str, Any]) -> ResponseBody:
        return response_for(header.api_key, version, {"throttle_time": 0, **values})

    def refused(error: ErrorCode, message: str | None = None) -> ResponseBody:
        return answer({"error_code": error, "error_message": message})

    if not may_use_group(broker, ctx, body.group_id):
        return refused(ErrorCode.GROUP_AUTHORIZATION_FAILED)
    names = body.subscribed_topic_names
    if names is not None:
        allowed = broker.authorized_names(
            ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, set(names)
        )
        if set(names) - allowed:
            # As Kafka 4.4: the code alone; which topics is not told.
            return refused(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
    heartbeat = ConsumerHeartbeat(
        member_id=body.member_id,
        member_epoch=int(body.member_epoch),
        instance_id=body.instance_id,
        rack_id=body.rack_id,
        rebalance_timeout_ms=millis(body.rebalance_timeout),
        subscribed_topic_names=None if names is None else tuple(names),
        subscribed_topic_regex=getattr(body, "subscribed_topic_regex", None),
        server_assignor=body.server_assignor,
        owned=_owned(broker, body),
        client_id=ctx.client_id or "",
        client_host=client_host(ctx),
        visible_topics=_visible_topics(broker, ctx),
    )
    groups = broker.groups
    try:
        check_heartbeat(
            body.group_id,
            heartbeat,
            api_version=version,
            assignors=groups.consumer_assignors,
            owned_given=body.topic_partitions is not None,
        )
        if not heartbeat.member_id:  # v0: the coordinator names a joining member
            heartbeat = dataclasses.replace(heartbeat, member_id=new_member_id())
        # Internal topics too: a regex that names one gets it, as Kafka resolves it.
        topics = {t.name: t.partitions for t in broker.topics}
        result = await groups.consumer_heartbeat(
            body.group_id, heartbeat, topics, ctx.effects_applied
        )
    except ConsumerGroupError as exc:
        return refused(exc.error, exc.message)
    assignment = None
    if result.assignment is not None:
        assignment = {
            "topic_partitions": [
                {"topic_id": topic.topic_id, "partitions": sorted(parts)}
                for name, parts in sorted(result.assignment.items())
                if (topic := broker.topics.get(name)) is not None
            ]
        }
    return answer(
        {
            "error_code": ErrorCode.NONE,
            "member_id": result.member_id,
            "member_epoch": result.member_epoch,
            "heartbeat_interval": result.heartbeat_interval_ms,
            "assignment": assignment,
        }
    )
