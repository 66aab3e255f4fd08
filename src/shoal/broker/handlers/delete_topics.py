"""DeleteTopics (20): delete topics by name (v1-5) or by name or topic id (v6), each on its own."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.broker.mutation_quota import STRICT_SINCE_DELETE_TOPICS, charge, mutation_quota
from shoal.broker.topics import Topic, TopicError
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType
from shoal.security.quota_mutations import MutationQuota
from shoal.storage import StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

log = logging.getLogger(__name__)

_ZERO_ID: Final = uuid.UUID(int=0)
_DENIED: Final = "Topic authorization failed."


class _DeleteTopicsRequest(Protocol):
    """topic_names (v1-v5) or topics (v6): each narrowed where the version has it."""


class _ByName(Protocol):
    topic_names: Sequence[str]


class _State(Protocol):
    name: str | None
    topic_id: uuid.UUID


class _ByState(Protocol):
    topics: Sequence[_State]


async def handle_delete_topics(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _DeleteTopicsRequest)
    wanted: list[tuple[str | None, uuid.UUID | None]]
    if hasattr(body, "topics"):  # v6: each entry has a name or a topic id
        states = request_body(request.body, _ByState).topics
        wanted = [(t.name, t.topic_id if t.topic_id != _ZERO_ID else None) for t in states]
    else:
        topic_names = request_body(request.body, _ByName).topic_names
        wanted = [(str(name), None) for name in topic_names]
    names: Counter[str | None] = Counter(name for name, _ in wanted if name is not None)
    ids: Counter[uuid.UUID | None] = Counter(t for _, t in wanted if t is not None)
    quota = mutation_quota(broker, ctx, header.api_version, STRICT_SINCE_DELETE_TOPICS)
    results = []
    for name, topic_id in wanted:
        if names.get(name, 0) > 1 or ids.get(topic_id, 0) > 1:
            result = _answer(name, topic_id, ErrorCode.INVALID_REQUEST, "named more than once")
        else:
            result = _delete(broker, ctx, name, topic_id, quota)
        results.append(result)
    return response_for(
        header.api_key,
        header.api_version,
        {"throttle_time": quota.throttle_ms, "responses": results},
    )


def _delete(
    broker: Broker,
    ctx: RequestContext,
    name: str | None,
    topic_id: uuid.UUID | None,
    quota: MutationQuota,
) -> dict[str, Any]:
    if name is not None and topic_id is None:
        # By name, Delete is decided before whether the topic exists is told (Kafka).
        if not broker.authorize(ctx, AclOperation.DELETE, ResourceType.TOPIC, name):
            return _answer(name, None, ErrorCode.TOPIC_AUTHORIZATION_FAILED, _DENIED)
    try:
        topic = _resolve(broker, name, topic_id)
    except TopicError as exc:
        return _answer(name, topic_id, exc.error_code, str(exc))
    if topic_id is not None:
        if not broker.authorize(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, topic.name):
            # As Kafka: the id is no secret, but the name is not told.
            return _answer(None, topic_id, ErrorCode.TOPIC_AUTHORIZATION_FAILED, _DENIED)
        if not broker.authorize(ctx, AclOperation.DELETE, ResourceType.TOPIC, topic.name):
            return _answer(topic.name, topic_id, ErrorCode.TOPIC_AUTHORIZATION_FAILED, _DENIED)
    try:
        charge(quota, topic.partitions)
        broker.delete_topic(topic.name)
    except TopicError as exc:
        return _answer(topic.name, topic.topic_id, exc.error_code, str(exc) or None)
    except (StorageError, OSError) as exc:
        log.error("deleting topic %s failed: %s", topic.name, exc)
        return _answer(
            topic.name, topic.topic_id, ErrorCode.KAFKA_STORAGE_ERROR, f"delete failed: {exc}"
        )
    return _answer(topic.name, topic.topic_id, ErrorCode.NONE, None)


def _resolve(broker: Broker, name: str | None, topic_id: uuid.UUID | None) -> Topic:
    if name is not None and topic_id is not None:
        raise TopicError(ErrorCode.INVALID_REQUEST, "give a topic name or a topic id, not both")
    if topic_id is not None:
        topic = broker.topic_by_id(topic_id)
        if topic is None:
            raise TopicError(ErrorCode.UNKNOWN_TOPIC_ID, f"no topic has id {topic_id}")
        return topic
    if name is None:
        raise TopicError(ErrorCode.INVALID_REQUEST, "give a topic name or a topic id")
    topic = broker.topics.get(name)
    if topic is None:
        raise TopicError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
    return topic


def _answer(
    name: str | None, topic_id: uuid.UUID | None, code: int, message: str | None
) -> dict[str, Any]:
    return {
        "name": name,
        "topic_id": topic_id or _ZERO_ID,
        "error_code": code,
        "error_message": message,
    }
