"""SyncGroup (14), v0-v5: the leader's assignment, handed to every member once it arrives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from shoal.broker.handlers.group_common import may_use_group
from shoal.coordinator.group import SyncRequest
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class _Assignment(Protocol):
    member_id: str
    assignment: bytes


class _SyncGroupRequest(Protocol):
    """The fields every served version has; the others are read with getattr."""

    group_id: str
    member_id: str
    generation_id: int
    assignments: Sequence[_Assignment]


async def handle_sync_group(broker: Broker, ctx: RequestContext, request: Request) -> ResponseBody:
    header, body = request.header, request_body(request.body, _SyncGroupRequest)
    if not may_use_group(broker, ctx, body.group_id):
        return response_for(
            header.api_key,
            header.api_version,
            {
                "throttle_time": 0,
                "error_code": ErrorCode.GROUP_AUTHORIZATION_FAILED,
                "protocol_type": None,
                "protocol_name": None,
                "assignment": b"",
            },
        )
    assignments = {a.member_id: bytes(a.assignment) for a in body.assignments}
    sync = SyncRequest(
        body.member_id,
        getattr(body, "group_instance_id", None),
        int(body.generation_id),
        assignments,
        protocol_type=getattr(body, "protocol_type", None),
        protocol_name=getattr(body, "protocol_name", None),
    )
    # Once the leader's assignment is stored, waiting for it lets later requests proceed.
    result = await broker.groups.sync(body.group_id, sync, ctx.effects_applied)
    return response_for(
        header.api_key,
        header.api_version,
        {
            "throttle_time": 0,
            "error_code": result.error,
            "protocol_type": result.protocol_type,
            "protocol_name": result.protocol_name,
            "assignment": result.assignment,
        },
    )
