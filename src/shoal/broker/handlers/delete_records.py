"""DeleteRecords (21): move partitions' log start offset forward (their low watermark).

Offset -1 means the high watermark (here the log end offset: every record of a single node is
committed), deleting everything; an offset above it is OFFSET_OUT_OF_RANGE. An offset at or
below the current start changes nothing. Each partition answers its low watermark afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.broker.topic_configs import cleanup_deletes
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType
from shoal.storage import StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

HIGH_WATERMARK: Final = -1


class _DeletePartition(Protocol):
    partition_index: int
    offset: int


class _DeleteTopic(Protocol):
    name: str
    partitions: Sequence[_DeletePartition]


class _DeleteRecordsRequest(Protocol):
    topics: Sequence[_DeleteTopic]


async def handle_delete_records(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _DeleteRecordsRequest)
    topics = []
    deletable = broker.authorized_names(
        ctx, AclOperation.DELETE, ResourceType.TOPIC, (str(t.name) for t in body.topics)
    )
    for topic in body.topics:
        name = str(topic.name)
        if name not in deletable:
            denied = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            partitions = [
                {
                    "partition_index": int(p.partition_index),
                    "low_watermark": -1,
                    "error_code": denied,
                }
                for p in topic.partitions
            ]
            topics.append({"name": name, "partitions": partitions})
            continue
        partitions = [
            await _delete(broker, name, int(p.partition_index), int(p.offset))
            for p in topic.partitions
        ]
        topics.append({"name": name, "partitions": partitions})
    return response_for(header.api_key, header.api_version, {"throttle_time": 0, "topics": topics})


async def _delete(broker: Broker, name: str, index: int, offset: int) -> dict[str, Any]:
    answer: dict[str, Any] = {"partition_index": index, "low_watermark": -1, "error_code": 0}
    topic = broker.topics.get(name)
    plog = broker.partition(name, index) if topic is not None else None
    if topic is not None and topic.internal:
        # As Kafka: its coordinator alone decides what that log keeps.
        return {**answer, "error_code": ErrorCode.INVALID_TOPIC_EXCEPTION}
    if topic is None or plog is None:
        return {**answer, "error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    policy = broker.topic_setting(topic, "cleanup.policy")
    if not cleanup_deletes({} if policy is None else {"cleanup.policy": policy}):
        # Kafka's rule: a compact-only topic keeps the latest value of every key, so records
        # may not be deleted by offset.
        return {**answer, "error_code": ErrorCode.POLICY_VIOLATION}
    end = plog.log_end_offset
    target = end if offset == HIGH_WATERMARK else offset
    if not 0 <= target <= end:
        return {**answer, "error_code": ErrorCode.OFFSET_OUT_OF_RANGE}
    try:
        # Saving the new start and removing whole segments is file I/O: off the event loop.
        start = await asyncio.to_thread(plog.delete_records, target)
    except StorageError as exc:
        return {**answer, "error_code": exc.kafka_error_code}
    # The start it saved durably (a later, unsaved move by retention is not promised yet).
    return {**answer, "low_watermark": start}
