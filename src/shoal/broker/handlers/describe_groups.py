"""DescribeGroups (15), v0-v6: state, protocol and members of each group asked for.

As in Kafka, member metadata and assignments are shown only for a Stable group (otherwise
they are in flux); an unknown group is reported as Dead, with GROUP_ID_NOT_FOUND from v6.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.broker.authorized_operations import group_operations
from shoal.coordinator.group import Group
from shoal.coordinator.group_state import GroupState
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

NOT_FOUND_MIN_VERSION: Final = 6


class _DescribeGroupsRequest(Protocol):
    """include_authorized_operations (v3+) is read with getattr."""

    groups: Sequence[str]


async def handle_describe_groups(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _DescribeGroupsRequest)
    # v3+: as Kafka, only a group answered without error gets them.
    asked = bool(getattr(body, "include_authorized_operations", False))
    described = []
    for group_id in body.groups:
        group = broker.groups.describe(group_id)
        if not broker.authorize(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, group_id):
            described.append(_missing(group_id, ErrorCode.GROUP_AUTHORIZATION_FAILED))
        elif not group_id:
            described.append(_missing(group_id, ErrorCode.INVALID_GROUP_ID))
        elif group is None:
            code = (
                ErrorCode.GROUP_ID_NOT_FOUND
                if header.api_version >= NOT_FOUND_MIN_VERSION
                else ErrorCode.NONE
            )
            described.append(_missing(group_id, code))
            if code is not ErrorCode.NONE and broker.groups.consumer_group(group_id) is not None:
                # A KIP-848 group: ConsumerGroupDescribe describes it (Kafka 4.4's words).
                described[-1]["error_message"] = f"Group {group_id} is not a classic group."
        else:
            described.append(_describe(group))
        if described[-1]["error_code"] == ErrorCode.NONE:
            described[-1]["authorized_operations"] = broker.authorized_operations(
                ctx, ResourceType.GROUP, group_id, asked=asked
            )
    return response_for(
        header.api_key, header.api_version, {"throttle_time": 0, "groups": described}
    )


def _missing(group_id: str, code: ErrorCode) -> dict[str, Any]:
    return {
        "error_code": code,
        "error_message": None if code is ErrorCode.NONE else code.message,
        "group_id": group_id,
        "group_state": GroupState.DEAD.value,
        "protocol_type": "",
        "protocol_data": "",
        "members": [],
        "authorized_operations": group_operations(False),
    }


def _describe(group: Group) -> dict[str, Any]:
    stable = group.state is GroupState.STABLE
    return {
        "error_code": ErrorCode.NONE,
        "group_id": group.group_id,
        "group_state": group.state.value,
        "protocol_type": group.protocol_type or "",
        "protocol_data": (group.protocol_name or "") if stable else "",
        "members": [
            {
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "member_metadata": m.metadata_for(group.protocol_name) if stable else b"",
                "member_assignment": m.assignment if stable else b"",
            }
            for m in group.members.values()
        ],
    }
