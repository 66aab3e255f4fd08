"""DeleteShareGroupOffsets (92), v0: see describe_share_group_offsets for the family."""

from __future__ import annotations

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


class _DeleteTopic(Protocol):
    topic_name: str


class _DeleteRequest(Protocol):
    group_id: str
    topics: Sequence[_DeleteTopic]


async def handle_delete_share_group_offsets(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _DeleteRequest)

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
    if not broker.authorize(ctx, AclOperation.DELETE, ResourceType.GROUP, group_id):
        return answer(ErrorCode.GROUP_AUTHORIZATION_FAILED, None, [])
    broker.share_groups.expire(group_id)
    if group_id not in broker.share_groups.groups:
        return answer(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} not found.", [])
    if busy(broker, group_id):
        return answer(ErrorCode.NON_EMPTY_GROUP, "The group is not empty.", [])
    responses = []
    for entry in body.topics:
        name = entry.topic_name
        topic = broker.topics.get(name)
        error, message = ErrorCode.NONE, None
        if not broker.authorize(ctx, AclOperation.READ, ResourceType.TOPIC, name):
            error = ErrorCode.TOPIC_AUTHORIZATION_FAILED
        elif topic is None:
            error = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        else:
            try:
                for index in range(topic.partitions):
                    plog = broker.partition(name, index)
                    if plog is not None:
                        await broker.share_groups.forget(group_id, name, index, plog)
            except StorageError as exc:
                error, message = ErrorCode(exc.kafka_error_code), str(exc)
        responses.append(
            {
                "topic_name": name,
                "topic_id": topic.topic_id if topic else None,
                "error_code": error,
                "error_message": message,
            }
        )
    return answer(ErrorCode.NONE, None, responses)
