"""ConsumerGroupDescribe (69), v0-v1: epochs, assignor, and each member's current and target
assignment of KIP-848 consumer groups (what ``kafka-consumer-groups --describe`` shows)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.coordinator.consumer_group import ConsumerGroup
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

CONSUMER_MEMBER_TYPE: Final = 1
"""MemberType (v1+): 1 for a member speaking the consumer protocol..."""
CLASSIC_MEMBER_TYPE: Final = 0
"""...0 for a classic member of a consumer group (mixed_group)."""


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


def _describe(broker: Broker, group: ConsumerGroup) -> dict[str, Any]:
    return {
        "error_code": ErrorCode.NONE,
        "group_id": group.group_id,
        "group_state": group.state.value,
        "group_epoch": group.group_epoch,
        "assignment_epoch": group.assignment_epoch,
        "assignor_name": group.assignor_name(),
        "members": [
            {
                "member_id": m.member_id,
                "instance_id": m.instance_id,
                "rack_id": m.rack_id,
                "member_epoch": m.member_epoch,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "subscribed_topic_names": list(m.subscribed_topic_names),
                "subscribed_topic_regex": m.subscribed_topic_regex or "",
                "assignment": _assignment(broker, m.assigned),
                "target_assignment": _assignment(broker, group.target.get(m.member_id, {})),
                "member_type": CLASSIC_MEMBER_TYPE if m.classic else CONSUMER_MEMBER_TYPE,
            }
            for m in group.members.values()
        ],
    }


def _failed(group_id: str, error: ErrorCode, message: str | None) -> dict[str, Any]:
    return {"error_code": error, "error_message": message, "group_id": group_id, "members": []}


async def handle_consumer_group_describe(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _DescribeRequest)
    described = []
    for group_id in body.group_ids:
        if not broker.authorize(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, group_id):
            described.append(_failed(group_id, ErrorCode.GROUP_AUTHORIZATION_FAILED, None))
            continue
        group = broker.groups.consumer_group(group_id)
        if group is None:
            message = (
                f"Group {group_id} is not a consumer group."
                if broker.groups.describe(group_id) is not None
                else f"Group {group_id} not found."
            )
            described.append(_failed(group_id, ErrorCode.GROUP_ID_NOT_FOUND, message))
            continue
        entry = _describe(broker, group)
        entry["authorized_operations"] = broker.authorized_operations(
            ctx, ResourceType.GROUP, group_id, asked=bool(body.include_authorized_operations)
        )
        described.append(entry)
    return response_for(
        header.api_key, header.api_version, {"throttle_time": 0, "groups": described}
    )
