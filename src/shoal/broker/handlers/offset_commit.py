"""OffsetCommit (8), v2-v10: check the member and generation, write the offsets to the
``__consumer_offsets`` log, and answer once they are durable (like acks=all).

Generation -1 is a "simple" commit, accepted only while the group has no members. Partitions
of topics the broker does not have get UNKNOWN_TOPIC_OR_PARTITION (v10 names topics by id:
UNKNOWN_TOPIC_ID). The retention time of v2-v4 is ignored, as Kafka does since 2.1.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.coordinator.offsets_log import CommittedOffset, TopicPartitionKey
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.storage import StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

log = logging.getLogger(__name__)

DURABLE_WAIT_S_MAX: Final = 30.0
"""How long a commit waits for its fsync before answering REQUEST_TIMED_OUT (the client
retries; Kafka's offsets.commit.timeout.ms is 5 s, but a loaded disk may need longer)."""


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
        for p in entry.partitions:
            index = int(p.partition_index)
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
    error: ErrorCode = ErrorCode.NONE
    errors: dict[TopicPartitionKey, ErrorCode] = {}
    durable = None
    try:
        error, errors, durable = broker.groups.coordinator.commit_offsets(
            body.group_id,
            body.member_id,
            getattr(body, "group_instance_id", None),
            int(body.generation_id_or_member_epoch),
            offsets,
        )
    except StorageError as exc:
        log.error("could not write offsets of group %s: %s", body.group_id, exc)
        error = ErrorCode.COORDINATOR_NOT_AVAILABLE
    if durable is not None:
        # The commit is visible to OffsetFetch from here on; only its fsync is awaited.
        ctx.effects_applied()
        try:
            # Shielded: a cancelled wait (timeout, client gone) must not cancel the storage
            # future itself, which the flusher thread still completes.
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(durable)), DURABLE_WAIT_S_MAX)
        except TimeoutError:
            error = ErrorCode.REQUEST_TIMED_OUT
        except StorageError as exc:
            log.error("offsets of group %s were not made durable: %s", body.group_id, exc)
            error = ErrorCode.COORDINATOR_NOT_AVAILABLE
        broker.groups.after_write()
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
