"""ShareGroupHeartbeat (76), v1: join, heartbeat in, and leave a KIP-932 share group.

Group Read and Describe of the subscribed topics are checked as for ConsumerGroupHeartbeat;
a member that leaves (epoch -1) has its acquired records released at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shoal.broker.handlers.group_common import client_host, may_use_group
from shoal.coordinator.share_group import LEAVE_EPOCH, ShareGroupError
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class _HeartbeatRequest(Protocol):
    group_id: str
    member_id: str
    member_epoch: int
    rack_id: str | None
    subscribed_topic_names: Sequence[str] | None


async def handle_share_group_heartbeat(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _HeartbeatRequest)

    def answer(values: dict[str, Any]) -> ResponseBody:
        return response_for(header.api_key, header.api_version, {"throttle_time": 0, **values})

    if not may_use_group(broker, ctx, body.group_id):
        return answer({"error_code": ErrorCode.GROUP_AUTHORIZATION_FAILED, "member_epoch": 0})
    names = body.subscribed_topic_names
    if names is not None:
        allowed = broker.authorized_names(
            ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, set(names)
        )
        if set(names) - allowed:
            return answer({"error_code": ErrorCode.TOPIC_AUTHORIZATION_FAILED, "member_epoch": 0})
    shares = broker.share_groups
    shares.expire(body.group_id)
    group = shares.group(body.group_id)
    try:
        result = group.heartbeat(
            body.member_id,
            int(body.member_epoch),
            None if names is None else tuple(names),
            {t.name: t.partitions for t in broker.topics},
            rack_id=body.rack_id,
            client_id=ctx.client_id or "",
            client_host=client_host(ctx),
        )
    except ShareGroupError as exc:
        return answer({"error_code": exc.code, "error_message": exc.message, "member_epoch": 0})
    if result.member_epoch == LEAVE_EPOCH:
        shares.member_left(body.group_id, body.member_id)
    assignment = None
    if result.assignment is not None:
        assignment = {
            "topic_partitions": [
                {"topic_id": topic.topic_id, "partitions": sorted(parts)}
                for name, parts in sorted(result.assignment.items())
                if (topic := broker.topics.get(name)) is not None
            ]
        }
    return answer(
        {
            "error_code": ErrorCode.NONE,
            "member_id": result.member_id,
            "member_epoch": result.member_epoch,
            "heartbeat_interval": result.heartbeat_interval_ms,
            "assignment": assignment,
        }
    )
