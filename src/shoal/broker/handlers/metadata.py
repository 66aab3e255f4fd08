"""Metadata (3): the one broker, and the topics asked for (auto-created when allowed).

v8+ carries the authorized operations (KIP-430): the cluster's (v8-v10) and each topic's, when
the request asks for them (see :mod:`shoal.broker.authorized_operations`). Internal topics are
listed once they exist (see :mod:`shoal.broker.internal_topics`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shoal.broker.authorized_operations import NOT_ASKED, topic_operations
from shoal.broker.internal_topics import is_kafka_internal
from shoal.broker.topics import Topic, TopicError, check_topic_name
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import CLUSTER_NAME, AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext
    from shoal.storage import PartitionLog

_ZERO_ID = uuid.UUID(int=0)
_NO_OPERATIONS = frozenset({ErrorCode.UNKNOWN_TOPIC_ID, ErrorCode.TOPIC_AUTHORIZATION_FAILED})
"""Topics answered with these errors get no authorized operations (the schema default)."""

NULLABLE_NAME_MIN_VERSION = 12
"""Metadata v10 and v11 requests carry topic ids, but their responses cannot hold a null topic
name; Kafka refuses a request topic without a name below v12 (INVALID_REQUEST)."""


class _MetadataTopic(Protocol):
    """name (nullable from v12) and topic_id (v10+) are read with getattr."""


class _MetadataRequest(Protocol):
    """The flags of later versions (auto-creation v4+, operations v8+) are read with getattr."""

    topics: Sequence[_MetadataTopic] | None


async def handle_metadata(broker: Broker, ctx: RequestContext, request: Request) -> ResponseBody:
    header, body = request.header, request_body(request.body, _MetadataRequest)
    version = header.api_version
    requested = body.topics
    # v0: an empty list means every topic; v1+: null means every topic, empty means none.
    every_topic = requested is None or (version == 0 and not requested)
    allow_create = bool(getattr(body, "allow_auto_topic_creation", True))
    topics: list[dict[str, Any]] = []
    if every_topic:
        # Only the topics the principal may Describe: the others are not even named.
        visible = broker.authorized_names(
            ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, (t.name for t in broker.topics)
        )
        topics = [
            _describe(broker, t)
            for t in sorted(broker.topics, key=lambda t: t.name)
            if t.name in visible
        ]
    else:
        for entry in requested or ():
            topics.append(_lookup(broker, ctx, entry, allow_create, version))
    # As Kafka: every topic answered by name gets the operations, known or not; a topic id
    # that names no topic, or a topic the principal may not Describe, gets none.
    ops_asked = bool(getattr(body, "include_topic_authorized_operations", False))
    for topic in topics:
        if topic["error_code"] not in _NO_OPERATIONS:
            topic["topic_authorized_operations"] = broker.authorized_operations(
                ctx, ResourceType.TOPIC, topic["name"], asked=ops_asked
            )
    # Absent from v11 on (KIP-700: DescribeCluster answers it there); ignored by build then.
    cluster_ops = broker.authorized_operations(
        ctx,
        ResourceType.CLUSTER,
        CLUSTER_NAME,
        asked=bool(getattr(body, "include_cluster_authorized_operations", False)),
    )
    if cluster_ops != NOT_ASKED and not broker.authorize_cluster(ctx, AclOperation.DESCRIBE):
        cluster_ops = 0  # as Kafka: no Describe on the cluster, no operations told
    node = broker.config.node_id
    # Each client is told the address of the listener its request came in on, as Kafka does.
    host, port = broker.config.advertised_address(ctx.listener_name)
    return response_for(
        header.api_key,
        version,
        {
            "throttle_time": 0,
            "brokers": [
                {
                    "node_id": node,
                    "host": host,
                    "port": port,
                    "rack": None,
                }
            ],
            "cluster_id": broker.config.cluster_id,
            "controller_id": node,
            "topics": topics,
            "cluster_authorized_operations": cluster_ops,
        },
    )


def _lookup(
    broker: Broker, ctx: RequestContext, entry: _MetadataTopic, allow_create: bool, version: int
) -> dict[str, Any]:
    name = getattr(entry, "name", None)
    topic_id = getattr(entry, "topic_id", None)
    if name is None and version < NULLABLE_NAME_MIN_VERSION:
        return _error("", ErrorCode.INVALID_REQUEST, topic_id)
    if name is None:
        topic = broker.topic_by_id(topic_id) if topic_id not in (None, _ZERO_ID) else None
        if topic is None:
            return _error(None, ErrorCode.UNKNOWN_TOPIC_ID, topic_id)
        if not broker.authorize(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, topic.name):
            # As Kafka: the id is no secret, the name is.
            return _error(None, ErrorCode.TOPIC_AUTHORIZATION_FAILED, topic_id)
        return _describe(broker, topic)
    if not broker.authorize(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, name):
        # Whether it exists is not told either.
        return _error(name, ErrorCode.TOPIC_AUTHORIZATION_FAILED)
    topic = broker.topics.get(name)
    if topic is not None:
        return _describe(broker, topic)
    may_create = allow_create and broker.config.auto_create_topics
    if may_create and not (
        broker.authorize_cluster(ctx, AclOperation.CREATE)
        or broker.authorize(ctx, AclOperation.CREATE, ResourceType.TOPIC, name)
    ):
        return _error(name, ErrorCode.TOPIC_AUTHORIZATION_FAILED)
    try:
        check_topic_name(name)
    except TopicError:
        return _error(name, ErrorCode.INVALID_TOPIC_EXCEPTION)
    if not may_create:
        return _error(name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    try:
        topic = broker.auto_create(name)
    except TopicError as exc:
        return _error(name, exc.error_code)
    # Kafka answers LEADER_NOT_AVAILABLE for a topic it just created; here the leader exists
    # at once, so the client can use it without another round trip.
    return _describe(broker, topic)


def _describe(broker: Broker, topic: Topic) -> dict[str, Any]:
    node = broker.config.node_id
    return {
        "error_code": 0,
        "name": topic.name,
        "topic_id": topic.topic_id,
        "is_internal": topic.is_internal,
        "partitions": [
            _partition(node, p, broker.partition(topic.name, p)) for p in range(topic.partitions)
        ],
    }


def _partition(node: int, index: int, plog: PartitionLog | None) -> dict[str, Any]:
    # The leader epoch grows at every broker start: a client that sees it grow checks its
    # position against the partition's epoch history (KIP-320). An offline partition (its log
    # refused at start) keeps epoch 0, as before epochs existed.
    return {
        "error_code": 0 if plog is not None else ErrorCode.KAFKA_STORAGE_ERROR,
        "partition_index": index,
        "leader_id": node,
        "leader_epoch": plog.leader_epoch if plog is not None else 0,
        "replica_nodes": [node],
        "isr_nodes": [node],
        "offline_replicas": [] if plog is not None else [node],
    }


def _error(name: str | None, code: int, topic_id: uuid.UUID | None = None) -> dict[str, Any]:
    return {
        "error_code": code,
        "name": name,
        "topic_id": topic_id or _ZERO_ID,
        # As Kafka: an internal topic's name is internal even before the topic exists.
        "is_internal": is_kafka_internal(name),
        "partitions": [],
        "topic_authorized_operations": topic_operations(False),
    }
