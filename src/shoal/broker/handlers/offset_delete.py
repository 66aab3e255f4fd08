"""OffsetDelete (47), v0: delete committed offsets of a group, except for topics the group
is still subscribed to (GROUP_SUBSCRIBED_TO_TOPIC)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from shoal.coordinator.offsets_log import TopicPartitionKey
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class _DeletablePartition(Protocol):
    partition_index: int


class _DeletableTopic(Protocol):
    name: str
    partitions: Sequence[_DeletablePartition]


class _OffsetDeleteRequest(Protocol):
    group_id: str
    topics: Sequence[_DeletableTopic]


async def handle_offset_delete(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _OffsetDeleteRequest)
    if not broker.authorize(ctx, AclOperation.DELETE, ResourceType.GROUP, body.group_id):
        return response_for(
            header.api_key,
            header.api_version,
            {"throttle_time": 0, "error_code": ErrorCode.GROUP_AUTHORIZATION_FAILED, "topics": []},
        )
    wanted: list[TopicPartitionKey] = []
    unknown: set[TopicPartitionKey] = set()
    readable = broker.authorized_names(
        ctx, AclOperation.READ, ResourceType.TOPIC, (entry.name for entry in body.topics)
    )
    for entry in body.topics:
        topic = broker.topics.get(entry.name)
        for p in entry.partitions:
            tp = (entry.name, int(p.partition_index))
            if entry.name not in readable:
                continue  # answered TOPIC_AUTHORIZATION_FAILED below, and never deleted
            if topic is None or not 0 <= tp[1] < topic.partitions:
                unknown.add(tp)
            else:
                wanted.append(tp)
    error, errors = await broker.groups.delete_offsets(body.group_id, wanted)
    topics = []
    for entry in body.topics:
        partitions = []
        for p in entry.partitions:
            tp = (entry.name, int(p.partition_index))
            if error is not ErrorCode.NONE:
                # The group's error is the whole answer (Kafka's error response), even for
                # topics it may not read.
                continue
            if entry.name not in readable:
                code = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            elif tp in unknown:
                code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            else:
                code = errors.get(tp, ErrorCode.NONE)
            partitions.append({"partition_index": tp[1], "error_code": code})
        if partitions:
            topics.append({"name": entry.name, "partitions": partitions})
    return response_for(
        header.api_key,
        header.api_version,
        {"throttle_time": 0, "error_code": error, "topics": topics},
    )
