"""Heartbeat (12), v0-v4: keeps a member's session; REBALANCE_IN_PROGRESS asks it to rejoin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from shoal.broker.handlers.registry import handles
from shoal.coordinator.group import HeartbeatRequest
from shoal.protocol import ApiKey, Request
from shoal.protocol.build import response_for

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


@handles(ApiKey.HEARTBEAT)
async def handle_heartbeat(broker: Broker, ctx: RequestContext, request: Request) -> Any:
    # Version-agnostic: every version of the message has the fields read here.
    header, body = request.header, cast(Any, request.body)
    error = await broker.groups.heartbeat(
        body.group_id,
        HeartbeatRequest(
            body.member_id, getattr(body, "group_instance_id", None), int(body.generation_id)
        ),
    )
    return response_for(
        header.api_key, header.api_version, {"throttle_time": 0, "error_code": error}
    )
