"""JoinGroup (11), v0-v9: answered when the group's join phase ends (see coordinator.group)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Protocol

from shoal.broker.handlers.group_common import client_host, may_use_group, millis
from shoal.coordinator.group import JoinRequest
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

MEMBER_ID_REQUIRED_MIN_VERSION: Final = 4
"""KIP-394: from v4 a new member first gets MEMBER_ID_REQUIRED and a member id to rejoin with."""
NULLABLE_PROTOCOL_NAME_MIN_VERSION: Final = 7


class _Protocol(Protocol):
    name: str
    metadata: bytes


class _JoinGroupRequest(Protocol):
    """The fields every served version has; the others are read with getattr."""

    group_id: str
    member_id: str
    protocol_type: str
    session_timeout: datetime.timedelta
    protocols: Sequence[_Protocol]


async def handle_join_group(broker: Broker, ctx: RequestContext, request: Request) -> ResponseBody:
    header, body = request.header, request_body(request.body, _JoinGroupRequest)
    if not may_use_group(broker, ctx, body.group_id):
        return response_for(
            header.api_key,
            header.api_version,
            {
                "throttle_time": 0,
                "error_code": ErrorCode.GROUP_AUTHORIZATION_FAILED,
                "generation_id": -1,
                "protocol_type": None,
                "protocol_name": None
                if header.api_version >= NULLABLE_PROTOCOL_NAME_MIN_VERSION
                else "",
                "leader": "",
                "skip_assignment": False,
                "member_id": "",
                "members": [],
            },
        )
    session_ms = millis(body.session_timeout)
    rebalance_ms = millis(getattr(body, "rebalance_timeout", -1))
    join = JoinRequest(
        member_id=body.member_id,
        group_instance_id=getattr(body, "group_instance_id", None),
        protocol_type=body.protocol_type,
        protocols=tuple((p.name, bytes(p.metadata)) for p in body.protocols),
        session_timeout_ms=session_ms,
        # v0 has no rebalance timeout: the session timeout bounds the join phase, as in Kafka.
        rebalance_timeout_ms=rebalance_ms if rebalance_ms >= 0 else session_ms,
        client_id=ctx.client_id or "",
        client_host=client_host(ctx),
        require_known_member_id=header.api_version >= MEMBER_ID_REQUIRED_MIN_VERSION,
    )
    # Once the member is in the group, waiting for the others lets later requests proceed.
    result = await broker.groups.join(body.group_id, join, ctx.effects_applied)
    return response_for(
        header.api_key,
        header.api_version,
        {
            "throttle_time": 0,
            "error_code": result.error,
            "generation_id": result.generation_id,
            "protocol_type": result.protocol_type,
            # Nullable only from v7; an error answer of older versions carries "".
            "protocol_name": (
                result.protocol_name
                if header.api_version >= NULLABLE_PROTOCOL_NAME_MIN_VERSION
                else result.protocol_name or ""
            ),
            "leader": result.leader_id,
            "skip_assignment": result.skip_assignment,
            "member_id": result.member_id,
            "members": [
                {
                    "member_id": m.member_id,
                    "group_instance_id": m.group_instance_id,
                    "metadata": m.metadata,
                }
                for m in result.members
            ],
        },
    )
