"""LeaveGroup (13), v0-v5: one member (v0-v2) or a batch of members (v3+, KIP-345) leave."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from shoal.broker.handlers.group_common import may_use_group
from shoal.coordinator.group import LeaveRequest
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class _LeaveGroupRequest(Protocol):
    """member_id (v0-v2) or members (v3+): each narrowed where the version has it."""

    group_id: str


class _SingleLeave(Protocol):
    member_id: str


class _Member(Protocol):
    member_id: str
    group_instance_id: str | None


class _BatchedLeave(Protocol):
    members: Sequence[_Member]


async def handle_leave_group(broker: Broker, ctx: RequestContext, request: Request) -> ResponseBody:
    header, body = request.header, request_body(request.body, _LeaveGroupRequest)
    if not may_use_group(broker, ctx, body.group_id):
        return response_for(
            header.api_key,
            header.api_version,
            {"throttle_time": 0, "error_code": ErrorCode.GROUP_AUTHORIZATION_FAILED, "members": []},
        )
    batched = hasattr(body, "members")
    if batched:
        members = request_body(request.body, _BatchedLeave).members
        leaving = [(m.member_id, m.group_instance_id) for m in members]
    else:
        leaving = [(request_body(request.body, _SingleLeave).member_id, None)]
    error, outcomes = await broker.groups.leave(body.group_id, LeaveRequest(tuple(leaving)))
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
