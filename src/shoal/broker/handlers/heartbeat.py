"""Heartbeat (12), v0-v4: keeps a member's session; REBALANCE_IN_PROGRESS asks it to rejoin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from shoal.protocol import Request, ResponseBody
from shoal.protocol.build import response_for

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


async def handle_heartbeat(broker: Broker, ctx: RequestContext, request: Request) -> ResponseBody:
    # Version-agnostic: every version of the message has the fields read here.
    header, body = request.header, cast(Any, request.body)
    error = broker.groups.coordinator.heartbeat(
        body.group_id,
        body.member_id,
        getattr(body, "group_instance_id", None),
        int(body.generation_id),
    )
    return response_for(
        header.api_key, header.api_version, {"throttle_time": 0, "error_code": error}
    )
