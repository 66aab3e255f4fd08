"""ListGroups (16), v0-v5: every group, filtered by state (v4+) and type (v5+)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

from shoal.coordinator.group_state import GroupState, parse_state
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

GROUP_TYPE: Final = "classic"
"""The only group type shoal has (KIP-848 "consumer" groups are not served)."""


class _ListGroupsRequest(Protocol):
    """v0-v3 have no field; the filters (v4+, v5+) are read with getattr."""


async def handle_list_groups(broker: Broker, ctx: RequestContext, request: Request) -> ResponseBody:
    header, body = request.header, request_body(request.body, _ListGroupsRequest)
    names = list(getattr(body, "states_filter", ()) or ())
    states: set[GroupState] = {s for n in names if (s := parse_state(n)) is not None}
    types = [t.lower() for t in getattr(body, "types_filter", ()) or ()]
    groups = []
    if (not names or states) and (not types or GROUP_TYPE in types):
        groups = broker.groups.list(states or None)
    if not broker.authorize_cluster(ctx, AclOperation.DESCRIBE):
        # Without Describe on the cluster, only the groups it may describe (as Kafka).
        groups = [
            g
            for g in groups
            if broker.authorize(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, g.group_id)
        ]
    return response_for(
        header.api_key,
        header.api_version,
        {
            "throttle_time": 0,
            "error_code": ErrorCode.NONE,
            "groups": [
                {
                    "group_id": g.group_id,
                    "protocol_type": g.protocol_type or "",
                    "group_state": g.state.value,
                    "group_type": GROUP_TYPE,
                }
                for g in groups
            ],
        },
    )
