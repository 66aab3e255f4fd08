"""OffsetFetch (9), v1-v10: committed offsets of one group (v1-v7) or several (v8+).

A partition without a committed offset answers offset -1 with no error; a null topic list
(v2+) means every partition the group has committed. require_stable (v7+) asks not to be told
offsets of an open transaction's TxnOffsetCommit: a partition with such a pending offset answers
UNSTABLE_OFFSET_COMMIT (retriable) and offset -1 until the transaction ends, as Kafka does.
Without require_stable the last committed offset is answered, the pending one not yet.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.coordinator.offsets_log import TopicPartitionKey
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

TOP_LEVEL_ERROR_MIN_VERSION: Final = 2
"""OffsetFetch v2 added the response's top-level error code."""
TOPIC_ID_MIN_VERSION: Final = 10
"""OffsetFetch v10 names topics by id, in the request and the response."""


class _RequestedTopic(Protocol):
    """Named by name (v1-v9) or by topic_id (v10+): both are read with getattr."""

    partition_indexes: Sequence[int]


class _Group(Protocol):
    group_id: str
    topics: Sequence[_RequestedTopic] | None


class _OffsetFetchRequest(Protocol):
    """One group (v1-v7: group_id, topics) or several (v8+: groups), each narrowed where the
    version has it."""


class _BatchedFetch(Protocol):
    groups: Sequence[_Group]


async def handle_offset_fetch(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _OffsetFetchRequest)
    by_id = header.api_version >= TOPIC_ID_MIN_VERSION
    stable = bool(getattr(body, "require_stable", False))
    if hasattr(body, "groups"):
        groups = []
        for g in request_body(request.body, _BatchedFetch).groups:
            # Describe on each group: a group it may not describe answers only that error.
            allowed = broker.authorize(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, g.group_id)
            # v9+ (KIP-848): a member of a consumer group reads with its current epoch.
            stale = broker.groups.check_offset_fetch(
                g.group_id, getattr(g, "member_id", None), int(getattr(g, "member_epoch", -1))
            )
            code: ErrorCode
            topics: list[dict[str, Any]]
            if allowed and stale is not ErrorCode.NONE:
                code, topics = stale, []
            elif allowed:
                code, topics = (
                    ErrorCode.NONE,
                    _topics(broker, ctx, g.group_id, g.topics, by_id=by_id, stable=stable),
                )
            else:
                code, topics = ErrorCode.GROUP_AUTHORIZATION_FAILED, []
            groups.append({"group_id": g.group_id, "error_code": code, "topics": topics})
        values: dict[str, Any] = {"throttle_time": 0, "groups": groups}
    else:
        single = request_body(request.body, _Group)
        if not broker.authorize(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, single.group_id):
            values = {
                "throttle_time": 0,
                "error_code": ErrorCode.GROUP_AUTHORIZATION_FAILED,
                # v1 has no top-level error: each partition asked about carries it; later
                # versions list no topic (as Kafka).
                "topics": _refused(single.topics, ErrorCode.GROUP_AUTHORIZATION_FAILED)
                if header.api_version < TOP_LEVEL_ERROR_MIN_VERSION
                else [],
            }
        else:
            values = {
                "throttle_time": 0,
                "error_code": ErrorCode.NONE,
                "topics": _topics(
                    broker, ctx, single.group_id, single.topics, by_id=False, stable=stable
                ),
            }
    return response_for(header.api_key, header.api_version, values)


def _refused(requested: Sequence[_RequestedTopic] | None, code: ErrorCode) -> list[dict[str, Any]]:
    return [
        {
            "name": getattr(entry, "name", ""),
            "topic_id": getattr(entry, "topic_id", None),
            "partitions": [
                {
                    "partition_index": int(i),
                    "committed_offset": -1,
                    "committed_leader_epoch": -1,
                    "metadata": "",
                    "error_code": code,
                }
                for i in entry.partition_indexes
            ],
        }
        for entry in requested or ()
    ]


def _topics(
    broker: Broker,
    ctx: RequestContext,
    group_id: str,
    requested: Sequence[_RequestedTopic] | None,
    *,
    by_id: bool,
    stable: bool = False,
) -> list[dict[str, Any]]:
    """The group's committed offsets: of the topics asked for, or of every topic. Offsets of
    topics the principal may not Describe are never told: asked for by name, they answer
    TOPIC_AUTHORIZATION_FAILED; in an every-topic answer, they are left out (as Kafka)."""
    wanted: list[TopicPartitionKey] | None = None
    unknown_ids: list[tuple[uuid.UUID, list[int]]] = []
    denied: list[_RequestedTopic] = []
    if requested is not None:
        wanted = []
        for entry in requested:
            indexes = [int(i) for i in entry.partition_indexes]
            topic_id: uuid.UUID | None = getattr(entry, "topic_id", None)
            if topic_id is not None:
                topic = broker.topic_by_id(topic_id)
                if topic is None:
                    unknown_ids.append((topic_id, indexes))
                    continue
                name = topic.name
            else:
                name = getattr(entry, "name", "")
            if not broker.authorize(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, name):
                denied.append(entry)
                continue
            wanted.extend((name, i) for i in indexes)
    found = broker.groups.fetch_offsets(group_id, wanted)
    if requested is None:
        visible = broker.authorized_names(
            ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, {name for name, _ in found}
        )
        found = {tp: c for tp, c in found.items() if tp[0] in visible}
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for (name, index), committed in found.items():
        if stable and broker.groups.has_pending_txn_offset(group_id, (name, index)):
            by_topic.setdefault(name, []).append(
                {
                    "partition_index": index,
                    "committed_offset": -1,
                    "committed_leader_epoch": -1,
                    "metadata": "",
                    "error_code": ErrorCode.UNSTABLE_OFFSET_COMMIT,
                }
            )
            continue
        by_topic.setdefault(name, []).append(
            {
                "partition_index": index,
                "committed_offset": committed.offset if committed else -1,
                "committed_leader_epoch": committed.leader_epoch if committed else -1,
                "metadata": committed.metadata if committed else "",
                "error_code": ErrorCode.NONE,
            }
        )
    topics = []
    for name, partitions in by_topic.items():
        out: dict[str, Any] = {"name": name, "partitions": partitions, "topic_id": None}
        if by_id:
            topic = broker.topics.get(name)
            if topic is None:
                continue  # committed for a topic deleted since: it has no id to name it by
            out["topic_id"] = topic.topic_id
        topics.append(out)
    topics.extend(_refused(denied, ErrorCode.TOPIC_AUTHORIZATION_FAILED))
    for topic_id, indexes in unknown_ids:
        topics.append(
            {
                "topic_id": topic_id,
                "partitions": [
                    {
                        "partition_index": i,
                        "committed_offset": -1,
                        "metadata": "",
                        "error_code": ErrorCode.UNKNOWN_TOPIC_ID,
                    }
                    for i in indexes
                ],
            }
        )
    return topics
