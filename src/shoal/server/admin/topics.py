"""Topics: list, describe (with configs and their sources), create, delete, alter configs.

Each route authorizes as the Kafka API doing the same (Metadata, DescribeConfigs, CreateTopics,
DeleteTopics, IncrementalAlterConfigs) and calls the broker functions those handlers call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shoal.broker.broker import Broker
from shoal.broker.context import RequestContext
from shoal.broker.handlers.create_topics import USE_DEFAULT, create_one
from shoal.broker.handlers.describe_configs import topic_entries
from shoal.broker.handlers.incremental_alter_configs import AlterOp, apply_operations
from shoal.broker.mutation_quota import STRICT_SINCE_CREATE_TOPICS, mutation_quota
from shoal.broker.topic_configs import ConfigError
from shoal.broker.topics import Topic, TopicError, check_topic_name
from shoal.protocol import ErrorCode
from shoal.security.acl import AclOperation, ResourceType
from shoal.server.admin.access import require
from shoal.server.admin.errors import ApiError, from_kafka
from shoal.server.admin.params import field, field_or, json_object, string_map


def partitions_of(broker: Broker, topic: Topic) -> list[dict[str, Any]]:
    """Each partition's watermarks, size on disk (null while its log is offline) and replicas."""
    rows = []
    for index in range(topic.partitions):
        plog = broker.partition(topic.name, index)
        rows.append(
            {
                "partition": index,
                "low_watermark": None if plog is None else plog.log_start_offset,
                "high_watermark": None if plog is None else plog.log_end_offset,
                "size_bytes": None if plog is None else plog.size_bytes,
                # One broker: it holds and leads every partition (the console's fields for a
                # cluster, where they differ per partition).
                "leader": None if plog is None else broker.config.node_id,
                "replicas": [broker.config.node_id],
                "isr": [] if plog is None else [broker.config.node_id],
            }
        )
    return rows


def _summary(broker: Broker, topic: Topic) -> dict[str, Any]:
    return {
        "name": topic.name,
        "topic_id": str(topic.topic_id),
        "internal": topic.internal,
        "partitions": partitions_of(broker, topic),
    }


def _valid_name(name: str) -> None:
    try:
        check_topic_name(name)
    except TopicError as exc:
        raise from_kafka(exc.error_code, str(exc)) from exc


def existing_topic(broker: Broker, ctx: RequestContext, name: str) -> Topic:
    """The topic the principal may describe; 403 before 404, as Kafka hides what one may not
    see."""
    _valid_name(name)
    require(broker, ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, name)
    topic = broker.topics.get(name)
    if topic is None:
        raise ApiError(404, "unknown_topic_or_partition", f"topic {name!r} does not exist")
    return topic


def list_topics(broker: Broker, ctx: RequestContext) -> Response:
    """Every topic the principal may describe (Metadata filters the same way)."""
    topics = list(broker.topics)
    allowed = broker.authorized_names(
        ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, (t.name for t in topics)
    )
    rows = [_summary(broker, t) for t in sorted(topics, key=lambda t: t.name) if t.name in allowed]
    return JSONResponse({"topics": rows})


def describe_topic(broker: Broker, ctx: RequestContext, name: str) -> Response:
    """The topic, and its configs when the principal may DescribeConfigs it (else null)."""
    topic = existing_topic(broker, ctx, name)
    body = _summary(broker, topic)
    body["configs"] = None
    if broker.authorize(ctx, AclOperation.DESCRIBE_CONFIGS, ResourceType.TOPIC, name):
        body["configs"] = [
            {
                "name": entry.name,
                "value": entry.value,
                "source": entry.source.name,
                "read_only": entry.read_only,
            }
            for entry in topic_entries(broker.config_levels(), topic.configs)
        ]
    return JSONResponse(body)


@dataclass
class NewConfig:
    name: str
    value: str | None


@dataclass
class NewAssignment:
    partition_index: int
    broker_ids: tuple[int, ...]


@dataclass
class NewTopic:
    """A topic to create, in CreateTopics' shape (its handler's checks read these fields)."""

    name: str
    num_partitions: int
    replication_factor: int
    assignments: tuple[NewAssignment, ...]
    configs: tuple[NewConfig, ...]


async def create_topic(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    """``{"name", "partitions"?, "configs"?}``; 201 with the new topic. Created by CreateTopics'
    own checks and creation, charged to the principal's controller mutation quota (strict:
    this API has no throttle time to answer with, so an exhausted quota is a 429)."""
    body = await json_object(request)
    name = field(body, "name", str)
    if name is None:
        raise ApiError(400, "invalid_field", "'name' is required")
    partitions = field_or(body, "partitions", int, USE_DEFAULT)
    configs = string_map(field_or(body, "configs", dict, {}), "configs")
    _valid_name(name)
    if not broker.authorize_cluster(ctx, AclOperation.CREATE):
        require(broker, ctx, AclOperation.CREATE, ResourceType.TOPIC, name)
    settings = tuple(NewConfig(k, v) for k, v in configs.items())
    new = NewTopic(name, partitions, USE_DEFAULT, (), settings)
    quota = mutation_quota(broker, ctx, STRICT_SINCE_CREATE_TOPICS, STRICT_SINCE_CREATE_TOPICS)
    try:
        create_one(broker, new, quota)
    except TopicError as exc:
        raise from_kafka(exc.error_code, str(exc) or "controller mutation quota exceeded") from exc
    topic = broker.topics.get(name)
    if topic is None:
        raise ApiError(500, "internal", "the broker created no topic")
    return JSONResponse(_summary(broker, topic), status_code=201)


def delete_topic(broker: Broker, ctx: RequestContext, name: str, confirm: str | None) -> Response:
    """Delete the topic and its data; ``confirm`` must repeat the topic's name."""
    _valid_name(name)
    require(broker, ctx, AclOperation.DELETE, ResourceType.TOPIC, name)
    if confirm != name:
        raise ApiError(
            400,
            "confirmation_required",
            "deleting a topic destroys its data: pass confirm=<the topic's name>",
        )
    try:
        broker.delete_topic(name)
    except TopicError as exc:
        raise from_kafka(exc.error_code, str(exc)) from exc
    return JSONResponse({"deleted": name})


@dataclass
class ConfigOperation:
    """One IncrementalAlterConfigs entry, in the shape its handler's functions read."""

    name: str
    value: str | None
    config_operation: int


def _operations(body: dict[str, Any]) -> list[ConfigOperation]:
    """``set`` / ``delete`` / ``append`` / ``subtract`` as IncrementalAlterConfigs entries."""
    names = field_or(body, "delete", list, [])
    if not all(isinstance(n, str) for n in names):
        raise ApiError(400, "invalid_field", "'delete' must be a list of config names")
    operations = [ConfigOperation(n, None, AlterOp.DELETE) for n in names]
    for key, op in (
        ("set", AlterOp.SET),
        ("append", AlterOp.APPEND),
        ("subtract", AlterOp.SUBTRACT),
    ):
        items = string_map(field_or(body, key, dict, {}), key)
        operations.extend(ConfigOperation(n, v, op) for n, v in items.items())
    if not operations:
        raise ApiError(400, "invalid_field", "give at least one of set, delete, append, subtract")
    return operations


async def alter_topic_configs(
    broker: Broker, ctx: RequestContext, name: str, request: Request
) -> Response:
    """``{"set": {name: value}, "delete": [name], "append"/"subtract": {name: "a,b"}}``:
    IncrementalAlterConfigs' operations, applied by its own function."""
    operations = _operations(await json_object(request))
    _valid_name(name)
    require(broker, ctx, AclOperation.ALTER_CONFIGS, ResourceType.TOPIC, name)
    topic = broker.topics.get(name)
    if topic is None:
        raise from_kafka(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
    try:
        broker.set_topic_configs(name, apply_operations(topic.configs, operations))
    except (TopicError, ConfigError) as exc:
        raise from_kafka(exc.error_code, str(exc)) from exc
    return describe_topic(broker, ctx, name)
