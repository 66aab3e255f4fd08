"""DescribeTopicPartitions (75): topics and their partitions, paginated by a cursor (KIP-966).

Topics are answered in name order, at most ``response_partition_limit`` partitions per
response. When the limit cuts a topic short (or falls on the end of one with more topics to
come), ``next_cursor`` names the topic and partition to ask for next. An empty topic list
means every topic; then unknown topics cannot occur, and a cursor may name any topic.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.broker.authorized_operations import NOT_ASKED
from shoal.broker.internal_topics import is_kafka_internal
from shoal.broker.topics import Topic, TopicError, check_topic_name
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

PARTITIONS_PER_RESPONSE_MAX: Final = 2000
"""Kafka's max.request.partition.size.limit: bounds one response however much is asked."""
_ZERO_ID: Final = uuid.UUID(int=0)


class _Cursor(Protocol):
    topic_name: str
    partition_index: int


class _TopicRequest(Protocol):
    name: str


class _DescribeTopicPartitionsRequest(Protocol):
    topics: Sequence[_TopicRequest]
    response_partition_limit: int
    cursor: _Cursor | None


async def handle_describe_topic_partitions(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _DescribeTopicPartitionsRequest)
    cursor = body.cursor
    start_topic = str(cursor.topic_name) if cursor is not None else ""
    start_partition = int(cursor.partition_index) if cursor is not None else 0
    every_topic = not body.topics
    if every_topic:
        names = sorted(t.name for t in broker.topics if t.name >= start_topic)
        # Only the topics the principal may Describe: the others are not even named.
        visible = _describable(broker, ctx, names)
        names = [n for n in names if n in visible]
    else:
        names = sorted({str(t.name) for t in body.topics if str(t.name) >= start_topic})
    if cursor is not None and (
        start_partition < 0 or (not every_topic and start_topic not in names)
    ):
        # As Kafka answers a malformed request: every topic asked for gets INVALID_REQUEST.
        topics = [_unknown(str(t.name), ErrorCode.INVALID_REQUEST) for t in body.topics]
        return response_for(
            header.api_key, header.api_version, {"throttle_time": 0, "topics": topics}
        )
    # A limit of 0 or less would answer nothing and point the cursor at the first topic again:
    # a client following cursors would never finish. Serve at least one partition.
    limit = max(1, min(PARTITIONS_PER_RESPONSE_MAX, int(body.response_partition_limit)))
    described = _describable(broker, ctx, names)
    topics, next_cursor = _page(
        broker, [n for n in names if n in described], start_topic, start_partition, limit
    )
    # As Kafka: the topics it may not describe come after the page, whether they exist or
    # not untold, and take no room in it.
    topics += [
        _unknown(n, ErrorCode.TOPIC_AUTHORIZATION_FAILED) for n in names if n not in described
    ]
    for topic in topics:
        if topic["error_code"] != ErrorCode.TOPIC_AUTHORIZATION_FAILED:
            topic["topic_authorized_operations"] = broker.authorized_operations(
                ctx, ResourceType.TOPIC, topic["name"], asked=True
            )
    return response_for(
        header.api_key,
        header.api_version,
        {"throttle_time": 0, "topics": topics, "next_cursor": next_cursor},
    )


def _describable(broker: Broker, ctx: RequestContext, names: Iterable[str]) -> set[str]:
    return broker.authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, names)


def _page(
    broker: Broker,
    names: Iterable[str],
    start_topic: str,
    start_partition: int,
    limit: int,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    topics: list[dict[str, Any]] = []
    remaining = limit
    for name in names:
        if remaining == 0:
            return topics, {"topic_name": name, "partition_index": 0}
        topic = broker.topics.get(name)
        if topic is None:
            topics.append(_unknown(name, _unknown_error(name)))
            continue
        first = min(start_partition, topic.partitions) if name == start_topic else 0
        end = min(topic.partitions, first + remaining)
        topics.append(_describe(broker, topic, range(first, end)))
        if end < topic.partitions:
            return topics, {"topic_name": name, "partition_index": end}
        remaining -= end - first
    return topics, None


def _describe(broker: Broker, topic: Topic, partitions: range) -> dict[str, Any]:
    node = broker.config.node_id
    answers = []
    for index in partitions:
        plog = broker.partition(topic.name, index)
        online = plog is not None
        answers.append(
            {
                "error_code": 0 if online else ErrorCode.KAFKA_STORAGE_ERROR,
                "partition_index": index,
                "leader_id": node,
                "leader_epoch": plog.leader_epoch if plog is not None else 0,
                "replica_nodes": [node],
                "isr_nodes": [node],
                "eligible_leader_replicas": [],
                "last_known_elr": [],
                "offline_replicas": [] if online else [node],
            }
        )
    return {
        "error_code": 0,
        "name": topic.name,
        "topic_id": topic.topic_id,
        "is_internal": topic.is_internal,
        "partitions": answers,
        # The request has no flag: Kafka always fills them in (the handler does).
        "topic_authorized_operations": NOT_ASKED,
    }


def _unknown_error(name: str) -> int:
    try:
        check_topic_name(name)
    except TopicError as exc:
        return exc.error_code
    return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def _unknown(name: str, code: int) -> dict[str, Any]:
    return {
        "error_code": code,
        "name": name,
        "topic_id": _ZERO_ID,
        # As Kafka: internal by name, and the operations even for a topic that is not there.
        "is_internal": is_kafka_internal(name) and code != ErrorCode.TOPIC_AUTHORIZATION_FAILED,
        "partitions": [],
        "topic_authorized_operations": NOT_ASKED,  # replaced for a topic it may describe
    }
