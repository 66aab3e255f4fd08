"""ListGroups (16), v0-v5: every group, filtered by state (v4+) and type (v5+).

Classic groups have type "classic"; KIP-848 groups type "consumer", protocol type "consumer"
and their own states (Empty, Assigning, Reconciling, Stable), KIP-932 share groups type and
protocol type "share" (Empty, Stable), as Kafka 4.4 lists them.
"""

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
CONSUMER_GROUP_TYPE: Final = "consumer"
SHARE_GROUP_TYPE: Final = "share"


class _ListGroupsRequest(Protocol):
    """v0-v3 have no field; the filters (v4+, v5+) are read with getattr."""


async def handle_list_groups(broker: Broker, ctx: RequestContext, request: Request) -> ResponseBody:
    header, body = request.header, request_body(request.body, _ListGroupsRequest)
    names = list(getattr(body, "states_filter", ()) or ())
    states: set[GroupState] = {s for n in names if (s := parse_state(n)) is not None}
    wanted_states = {n.lower() for n in names}
    types = [t.lower() for t in getattr(body, "types_filter", ()) or ()]
    rows: list[dict[str, str]] = []
    if (not names or states) and (not types or GROUP_TYPE in types):
        rows = [
            {
                "group_id": g.group_id,
                "protocol_type": g.protocol_type or "",
                "group_state": g.state.value,
                "group_type": GROUP_TYPE,
            }
            for g in broker.groups.list(states or None)
        ]
    if not types or CONSUMER_GROUP_TYPE in types:
        rows += [
            {
                "group_id": g.group_id,
                "protocol_type": CONSUMER_GROUP_TYPE,
                "group_state": g.state.value,
                "group_type": CONSUMER_GROUP_TYPE,
            }
            for g in broker.groups.consumer_groups()
            if not names or g.state.value.lower() in wanted_states
        ]
    if not types or SHARE_GROUP_TYPE in types:  # KIP-932 share groups (issue 16)
        rows += [
            {
                "group_id": g.group_id,
                "protocol_type": SHARE_GROUP_TYPE,
                "group_state": g.state,
                "group_type": SHARE_GROUP_TYPE,
            }
            for g in broker.share_groups.groups.values()
            if not names or g.state.lower() in wanted_states
        ]
    if not broker.authorize_cluster(ctx, AclOperation.DESCRIBE):
        # Without Describe on the cluster, only the groups it may describe (as Kafka).
        rows = [
            r
            for r in rows
            if broker.authorize(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, r["group_id"])
        ]
    return response_for(
        header.api_key,
        header.api_version,
        {
            "throttle_time": 0,
            "error_code": ErrorCode.NONE,
            "groups": sorted(rows, key=lambda r: r["group_id"]),
        },
    )
