"""DeleteGroups (42), v0-v2: delete empty groups and their offsets (NON_EMPTY_GROUP else)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from shoal.broker.handlers.registry import handles
from shoal.protocol import ApiKey, Request
from shoal.protocol.build import response_for

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


@handles(ApiKey.DELETE_GROUPS)
async def handle_delete_groups(broker: Broker, ctx: RequestContext, request: Request) -> Any:
    # Version-agnostic: every version of the message has the fields read here.
    header, body = request.header, cast(Any, request.body)
    results = []
    for group_id in body.groups_names:
        error = await broker.groups.delete(group_id)
        results.append({"group_id": group_id, "error_code": error})
    return response_for(
        header.api_key, header.api_version, {"throttle_time": 0, "results": results}
    )
