"""Heartbeat (12), v0-v4: keeps a member's session; REBALANCE_IN_PROGRESS asks it to rejoin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from shoal.broker.handlers.group_common import may_use_group
from shoal.coordinator.group import HeartbeatRequest
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class _HeartbeatRequest(Protocol):
    """The fields every served version has (group_instance_id, v3+, is read with getattr)."""

    group_id: str
    member_id: str
    generation_id: int


async def handle_heartbeat(broker: Broker, ctx: RequestContext, request: Request) -> ResponseBody:
    header, body = request.header, request_body(request.body, _HeartbeatRequest)
    if not may_use_group(broker, ctx, body.group_id):
        error = ErrorCode.GROUP_AUTHORIZATION_FAILED
    else:
        error = await broker.groups.heartbeat(
            body.group_id,
            HeartbeatRequest(
                body.member_id, getattr(body, "group_instance_id", None), int(body.generation_id)
            ),
        )
    return response_for(
        header.api_key, header.api_version, {"throttle_time": 0, "error_code": error}
    )
