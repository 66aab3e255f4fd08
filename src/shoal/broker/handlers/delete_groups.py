"""DeleteGroups (42), v0-v2: delete empty groups and their offsets (NON_EMPTY_GROUP else)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType
from shoal.storage import StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class _DeleteGroupsRequest(Protocol):
    groups_names: Sequence[str]


async def handle_delete_groups(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _DeleteGroupsRequest)
    results = []
    for group_id in body.groups_names:
        if not broker.authorize(ctx, AclOperation.DELETE, ResourceType.GROUP, group_id):
            results.append(
                {"group_id": group_id, "error_code": ErrorCode.GROUP_AUTHORIZATION_FAILED}
            )
            continue
        # A KIP-932 share group (issue 16) is deleted with its share-partition state.
        plogs = (
            plog
            for topic in broker.topics
            for index in range(topic.partitions)
            if (plog := broker.partition(topic.name, index)) is not None
        )
        try:
            shared = await broker.share_groups.delete(group_id, plogs)
        except StorageError as exc:
            results.append({"group_id": group_id, "error_code": exc.kafka_error_code})
            continue
        error = shared if shared is not None else await broker.groups.delete(group_id)
        results.append({"group_id": group_id, "error_code": error})
    return response_for(
        header.api_key, header.api_version, {"throttle_time": 0, "results": results}
    )
