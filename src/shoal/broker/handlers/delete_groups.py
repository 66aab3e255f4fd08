"""DeleteGroups (42), v0-v2: delete empty groups and their offsets (NON_EMPTY_GROUP else)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.storage import StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

log = logging.getLogger(__name__)


class _DeleteGroupsRequest(Protocol):
    groups_names: Sequence[str]


async def handle_delete_groups(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _DeleteGroupsRequest)
    results = []
    for group_id in body.groups_names:
        try:
            error = broker.groups.coordinator.delete_group(group_id)
        except StorageError as exc:
            log.error("could not delete group %s: %s", group_id, exc)
            error = ErrorCode.COORDINATOR_NOT_AVAILABLE
        results.append({"group_id": group_id, "error_code": error})
    broker.groups.after_write()
    return response_for(
        header.api_key, header.api_version, {"throttle_time": 0, "results": results}
    )
