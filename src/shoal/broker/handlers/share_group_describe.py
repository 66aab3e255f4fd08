"""ShareGroupDescribe (77), v1: a share group's epochs, assignor and members with their
assignments (what ``kafka-share-groups --describe --members`` shows)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.coordinator.share_group import ShareGroup
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

SIMPLE_ASSIGNOR: Final = "simple"


class _DescribeRequest(Protocol):
    group_ids: Sequence[str]
    include_authorized_operations: bool


def _assignment(broker: Broker, parts: Mapping[str, frozenset[int]]) -> dict[str, Any]:
    return {
        "topic_partitions": [
            {"topic_id": topic.topic_id, "topic_name": name, "partitions": sorted(ps)}
            for name, ps in sorted(parts.items())
            if (topic := broker.topics.get(name)) is not None
        ]
    }


def _describe(broker: Broker, group: ShareGroup) -> dict[str, Any]:
    return {
        "error_code": ErrorCode.NONE,
        "group_id": group.group_id,
        "group_state": group.state,
        "group_epoch": group.group_epoch,
        "assignment_epoch": group.assignment_epoch,
        "assignor_name": SIMPLE_ASSIGNOR,
        "members": [
            {
                "member_id": m.member_id,
                "rack_id": m.rack_id,
                "member_epoch": m.epoch,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "subscribed_topic_names": list(m.subscription),
                "assignment": _assignment(broker, m.assignment),
            }
            for m in group.members.values()
        ],
    }


async def handle_share_group_describe(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _DescribeRequest)
    described = []
    for group_id in body.group_ids:
        if not broker.authorize(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, group_id):
            described.append(
                {
                    "error_code": ErrorCode.GROUP_AUTHORIZATION_FAILED,
                    "group_id": group_id,
                    "group_state": "",
                    "group_epoch": 0,
                    "assignment_epoch": 0,
                    "assignor_name": "",
                    "members": [],
                }
            )
            continue
        broker.share_groups.expire(group_id)
        group = broker.share_groups.groups.get(group_id)
        if group is None:
            described.append(
                {
                    "error_code": ErrorCode.GROUP_ID_NOT_FOUND,
                    "error_message": f"Group {group_id} not found.",
                    "group_id": group_id,
                    "group_state": "Dead",
                    "group_epoch": 0,
                    "assignment_epoch": 0,
                    "assignor_name": "",
                    "members": [],
                }
            )
            continue
        entry = _describe(broker, group)
        entry["authorized_operations"] = broker.authorized_operations(
            ctx, ResourceType.GROUP, group_id, asked=bool(body.include_authorized_operations)
        )
        described.append(entry)
    return response_for(
        header.api_key, header.api_version, {"throttle_time": 0, "groups": described}
    )
