"""OffsetCommit (8), v2-v10: check the member and generation, write the offsets to the
``__consumer_offsets`` log, and answer once they are durable (like acks=all).

Generation -1 is a "simple" commit, accepted only while the group has no members. Partitions
of topics the broker does not have get UNKNOWN_TOPIC_OR_PARTITION (v10 names topics by id:
UNKNOWN_TOPIC_ID). The retention time of v2-v4 is ignored, as Kafka does since 2.1.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shoal.broker.handlers.group_common import may_use_group
from shoal.coordinator.offsets_log import CommittedOffset, TopicPartitionKey
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class _Partition(Protocol):
    """committed_leader_epoch (v6+) is read with getattr."""

    partition_index: int
    committed_offset: int
    committed_metadata: str | None


class _Topic(Protocol):
    """Named by name (v2-v9) or by topic_id (v10+): both are read with getattr."""

    partitions: Sequence[_Partition]


class _OffsetCommitRequest(Protocol):
    """group_instance_id (v7+) is read with getattr."""

    group_id: str
    member_id: str
    generation_id_or_member_epoch: int
    topics: Sequence[_Topic]


async def handle_offset_commit(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _OffsetCommitRequest)
    now = broker.clock.now_ms()
    # (topic entry, partition index, error or None for "to commit")
    rows: list[tuple[_Topic, str | None, int, ErrorCode | None]] = []
    offsets: dict[TopicPartitionKey, CommittedOffset] = {}
    if not may_use_group(broker, ctx, body.group_id):
        return _every_partition(request, body, ErrorCode.GROUP_AUTHORIZATION_FAILED)
    for entry in body.topics:
        name = getattr(entry, "name", None)
        topic_id: uuid.UUID | None = getattr(entry, "topic_id", None)
        if name is not None:
            topic = broker.topics.get(name)
        else:
            topic = broker.topic_by_id(topic_id) if topic_id is not None else None
        missing = (
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if name is not None else ErrorCode.UNKNOWN_TOPIC_ID
        )
        # Read on the topic, decided before whether it exists is told (Kafka's order).
        readable = broker.authorize(
            ctx, AclOperation.READ, ResourceType.TOPIC, topic.name if topic else name or ""
        )
        for p in entry.partitions:
            index = int(p.partition_index)
            if (topic is not None or name is not None) and not readable:
                rows.append((entry, None, index, ErrorCode.TOPIC_AUTHORIZATION_FAILED))
                continue
            if topic is None or not 0 <= index < topic.partitions:
                rows.append((entry, None, index, missing))
                continue
            offsets[(topic.name, index)] = CommittedOffset(
                int(p.committed_offset),
                int(getattr(p, "committed_leader_epoch", -1)),
                p.committed_metadata or "",
                now,
            )
            rows.append((entry, topic.name, index, None))
    # Once the commit is visible to OffsetFetch, only its fsync is awaited: later requests
    # on the connection may proceed.
    error, errors = await broker.groups.commit_offsets(
        body.group_id,
        body.member_id,
        getattr(body, "group_instance_id", None),
        int(body.generation_id_or_member_epoch),
        offsets,
        ctx.effects_applied,
        header.api_version,
    )
    topics: dict[int, dict[str, Any]] = {}
    for entry, name, index, own in rows:
        code = own if own is not None else errors.get((name or "", index), error)
        out = topics.setdefault(
            id(entry),
            {
                "name": getattr(entry, "name", None),
                "topic_id": getattr(entry, "topic_id", None),
                "partitions": [],
            },
        )
        out["partitions"].append({"partition_index": index, "error_code": code})
    return response_for(
        header.api_key, header.api_version, {"throttle_time": 0, "topics": list(topics.values())}
    )


def _every_partition(request: Request, body: _OffsetCommitRequest, code: ErrorCode) -> ResponseBody:
    """The answer refusing the whole request: ``code`` for every partition in it."""
    header = request.header
    topics = [
        {
            "name": getattr(entry, "name", None),
            "topic_id": getattr(entry, "topic_id", None),
            "partitions": [
                {"partition_index": int(p.partition_index), "error_code": code}
                for p in entry.partitions
            ],
        }
        for entry in body.topics
    ]
    return response_for(header.api_key, header.api_version, {"throttle_time": 0, "topics": topics})
