"""AlterShareGroupOffsets (91), v0: see describe_share_group_offsets for the family."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shoal.broker.handlers.share_offsets_common import busy
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType
from shoal.storage import StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class _AlterPartition(Protocol):
    partition_index: int
    start_offset: int


class _AlterTopic(Protocol):
    topic_name: str
    partitions: Sequence[_AlterPartition]


class _AlterRequest(Protocol):
    group_id: str
    topics: Sequence[_AlterTopic]


async def handle_alter_share_group_offsets(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _AlterRequest)

    def answer(
        error: ErrorCode, message: str | None, responses: list[dict[str, Any]]
    ) -> ResponseBody:
        values = {
            "throttle_time": 0,
            "error_code": error,
            "error_message": message,
            "responses": responses,
        }
        return response_for(header.api_key, header.api_version, values)

    group_id = body.group_id
    if not broker.authorize(ctx, AclOperation.READ, ResourceType.GROUP, group_id):
        return answer(ErrorCode.GROUP_AUTHORIZATION_FAILED, None, [])
    broker.share_groups.expire(group_id)
    if busy(broker, group_id):
        return answer(ErrorCode.NON_EMPTY_GROUP, "The group is not empty.", [])
    responses = []
    # Every partition is reset in memory first, with no await in between; then the writes.
    writes: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
    for entry in body.topics:
        name = entry.topic_name
        topic = broker.topics.get(name)
        allowed = broker.authorize(ctx, AclOperation.READ, ResourceType.TOPIC, name)
        partitions = []
        for p in entry.partitions:
            index, start = int(p.partition_index), int(p.start_offset)
            plog = broker.partition(name, index) if topic is not None else None
            error, message = ErrorCode.NONE, None
            if not allowed:
                error = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            elif plog is None:
                error = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            elif not plog.log_start_offset <= start <= plog.log_end_offset:
                error = ErrorCode.INVALID_REQUEST
                message = (
                    f"Start offset {start} is outside the log of {name}-{index} "
                    f"[{plog.log_start_offset}, {plog.log_end_offset}]"
                )
            row: dict[str, Any] = {
                "partition_index": index,
                "error_code": error,
                "error_message": message,
            }
            if error is ErrorCode.NONE and plog is not None:
                written = broker.share_groups.reset(group_id, name, index, plog, start)
                if written is not None:
                    writes.append((row, written))
            partitions.append(row)
        responses.append(
            {
                "topic_name": name,
                "topic_id": topic.topic_id if topic else None,
                "partitions": partitions,
            }
        )
    for row, written in writes:
        try:
            await written
        except StorageError as exc:
            row["error_code"], row["error_message"] = ErrorCode(exc.kafka_error_code), str(exc)
    return answer(ErrorCode.NONE, None, responses)
