"""CreateTopics (19): check each topic on its own, create the valid ones (or only check them,
with validate_only), and answer per topic. From v5 the answer also carries the new topic's
partition count, replication factor and every config with its source."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.broker.handlers.describe_configs import topic_entries
from shoal.broker.mutation_quota import STRICT_SINCE_CREATE_TOPICS, charge, mutation_quota
from shoal.broker.topic_configs import ConfigError, validate_topic_configs
from shoal.broker.topics import TopicError, check_topic_name
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import narrow, request_body
from shoal.security.acl import AclOperation, ResourceType
from shoal.security.quota_mutations import MutationQuota
from shoal.storage import StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

log = logging.getLogger(__name__)

USE_DEFAULT: Final = -1
"""num_partitions or replication_factor -1: the broker's default (and required with assignments)."""
REPLICATION_FACTOR: Final = 1
"""Every shoal topic has one replica: the one broker."""
_ZERO_ID: Final = uuid.UUID(int=0)


class _Assignment(Protocol):
    partition_index: int
    broker_ids: Sequence[int]


class _CreatableConfig(Protocol):
    name: str
    value: str | None


class _CreatableTopic(Protocol):
    name: str
    num_partitions: int
    replication_factor: int
    assignments: Sequence[_Assignment]
    configs: Sequence[_CreatableConfig]


class _CreateTopicsRequest(Protocol):
    topics: Sequence[_CreatableTopic]
    validate_only: bool


async def handle_create_topics(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _CreateTopicsRequest)
    quota = mutation_quota(broker, ctx, header.api_version, STRICT_SINCE_CREATE_TOPICS)
    counts = Counter(str(topic.name) for topic in body.topics)
    results: list[dict[str, Any]] = []
    for name in sorted(n for n, count in counts.items() if count > 1):
        # As Kafka does: one answer for the name, and none of its entries is created.
        results.append(
            _error(name, ErrorCode.INVALID_REQUEST, f"topic {name!r} appears more than once")
        )
    # Create on the cluster covers every topic; otherwise Create on each (Kafka).
    creatable = (
        set(counts)
        if broker.authorize_cluster(ctx, AclOperation.CREATE)
        else broker.authorized_names(ctx, AclOperation.CREATE, ResourceType.TOPIC, counts)
    )
    for topic in body.topics:
        name = str(topic.name)
        if counts[name] > 1:
            continue
        if name not in creatable:
            results.append(
                _error(name, ErrorCode.TOPIC_AUTHORIZATION_FAILED, "Authorization failed.")
            )
            continue
        try:
            result = _create(broker, topic, bool(body.validate_only), quota)
            if not broker.authorize(ctx, AclOperation.DESCRIBE_CONFIGS, ResourceType.TOPIC, name):
                # Created, but its configs are not told to a principal that may not read them.
                result.update(
                    topic_config_error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED, configs=[]
                )
            results.append(result)
        except TopicError as exc:
            results.append(_error(name, exc.error_code, str(exc) or None))
        except (StorageError, OSError) as exc:
            log.error("creating topic %s failed: %s", name, exc)
            results.append(_error(name, ErrorCode.KAFKA_STORAGE_ERROR, f"create failed: {exc}"))
    return response_for(
        header.api_key,
        header.api_version,
        {"throttle_time": quota.throttle_ms, "topics": results},
    )


def _create(
    broker: Broker, topic: _CreatableTopic, validate_only: bool, quota: MutationQuota
) -> dict[str, Any]:
    name = str(topic.name)
    check_topic_name(name)
    if broker.topics.get(name) is not None:
        raise TopicError(ErrorCode.TOPIC_ALREADY_EXISTS, f"topic {name!r} already exists")
    _check_collision(broker, name)
    if topic.assignments:
        partitions = _assigned_partitions(broker, topic)
    else:
        partitions = _partition_count(broker, int(topic.num_partitions))
        _check_replication_factor(int(topic.replication_factor))
    try:
        configs = validate_topic_configs({str(c.name): c.value for c in topic.configs})
    except ConfigError as exc:
        raise TopicError(exc.error_code, str(exc)) from exc
    charge(quota, partitions)  # after every check, as Kafka's controller (also validate_only)
    created = broker.create_topic(name, partitions, configs, validate_only=validate_only)
    return {
        "name": name,
        "topic_id": created.topic_id if created is not None else _ZERO_ID,
        "error_code": 0,
        "error_message": None,
        "num_partitions": partitions,
        "replication_factor": REPLICATION_FACTOR,
        "topic_config_error_code": 0,
        "configs": [
            {
                "name": entry.name,
                "value": entry.value,
                "read_only": entry.read_only,
                "config_source": int(entry.source),
                "is_sensitive": False,
            }
            for entry in topic_entries(broker.config_levels(), configs)
        ],
    }


def _check_collision(broker: Broker, name: str) -> None:
    """Kafka refuses names that differ from an existing one only by '.' versus '_': the two
    would share metric names."""
    if "." not in name and "_" not in name:
        return
    key = name.replace(".", "_")
    for other in broker.topics:
        if other.name.replace(".", "_") == key:
            raise TopicError(
                ErrorCode.INVALID_TOPIC_EXCEPTION,
                f"topic {name!r} collides with existing topic {other.name!r}: names that differ "
                "only in '.' and '_' are not allowed together",
            )


def _partition_count(broker: Broker, requested: int) -> int:
    if requested == USE_DEFAULT:
        return broker.config.num_partitions
    if requested <= 0:
        raise TopicError(
            ErrorCode.INVALID_PARTITIONS,
            f"number of partitions must be positive, or -1 for the broker default "
            f"(num.partitions={broker.config.num_partitions}), not {requested}",
        )
    return requested


def _check_replication_factor(requested: int) -> None:
    if requested in (USE_DEFAULT, REPLICATION_FACTOR):
        return
    if requested <= 0:
        raise TopicError(
            ErrorCode.INVALID_REPLICATION_FACTOR,
            f"replication factor must be 1, or -1 for the default, not {requested}",
        )
    raise TopicError(
        ErrorCode.INVALID_REPLICATION_FACTOR,
        f"replication factor {requested} needs {requested} brokers, but shoal is a single-node "
        "broker: every partition has exactly one replica. Use 1 or -1.",
    )


def _assigned_partitions(broker: Broker, topic: _CreatableTopic) -> int:
    """The partition count of a manual assignment, which may only name this broker."""
    if int(topic.num_partitions) != USE_DEFAULT or int(topic.replication_factor) != USE_DEFAULT:
        raise TopicError(
            ErrorCode.INVALID_REQUEST,
            "a manual partition assignment needs num_partitions and replication_factor of -1",
        )
    node = broker.config.node_id
    indexes = sorted(int(a.partition_index) for a in topic.assignments)
    if indexes != list(range(len(indexes))):
        raise TopicError(
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            "assigned partitions must be numbered 0, 1, 2... without gaps or repeats",
        )
    for assignment in topic.assignments:
        if list(assignment.broker_ids) != [node]:
            raise TopicError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                f"partition {assignment.partition_index} is assigned to brokers "
                f"{list(assignment.broker_ids)}; shoal is a single node: assign each "
                f"partition to [{node}]",
            )
    return len(indexes)


def _error(name: str, code: int, message: str | None) -> dict[str, Any]:
    return {"name": name, "topic_id": _ZERO_ID, "error_code": code, "error_message": message}


# -- the admin API (issue 17, slice M) creates a topic through the same checks ----------------


def create_one(broker: Broker, topic: object, quota: MutationQuota) -> dict[str, Any]:
    """Check and create one topic given as any struct of CreateTopics' topic shape (name,
    num_partitions, replication_factor, assignments, configs); raises :class:`TopicError`."""
    return _create(broker, narrow(topic, _CreatableTopic), False, quota)
