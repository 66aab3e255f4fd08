"""LeaveGroup (13), v0-v5: one member (v0-v2) or a batch of members (v3+, KIP-345) leave."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


async def handle_leave_group(broker: Broker, ctx: RequestContext, request: Request) -> ResponseBody:
    # Version-agnostic: every version of the message has the fields read here.
    header, body = request.header, cast(Any, request.body)
    batched = hasattr(body, "members")
    if batched:
        leaving = [(m.member_id, m.group_instance_id) for m in body.members]
    else:
        leaving = [(body.member_id, None)]
    error, outcomes = broker.groups.coordinator.leave(body.group_id, leaving)
    broker.groups.kick()
    if not batched and error is ErrorCode.NONE and outcomes:
        error = outcomes[0].error
    return response_for(
        header.api_key,
        header.api_version,
        {
            "throttle_time": 0,
            "error_code": error,
            "members": [
                {
                    "member_id": o.member_id,
                    "group_instance_id": o.group_instance_id,
                    "error_code": o.error,
                }
                for o in outcomes
            ],
        },
    )
