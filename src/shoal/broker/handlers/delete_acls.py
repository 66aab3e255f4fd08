"""DeleteAcls (31), v1-v3: remove the ACLs each filter matches and list them. Needs Alter on
the cluster; SECURITY_DISABLED without an authorizer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shoal.broker.handlers.acl_common import AclFilterFields, filter_of
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class _DeleteAclsRequest(Protocol):
    filters: Sequence[AclFilterFields]


async def handle_delete_acls(broker: Broker, ctx: RequestContext, request: Request) -> ResponseBody:
    header, body = request.header, request_body(request.body, _DeleteAclsRequest)

    def every(code: ErrorCode, message: str) -> list[dict[str, Any]]:
        return [
            {"error_code": code, "error_message": message, "matching_acls": []}
            for _ in body.filters
        ]

    if not broker.authorize_cluster(ctx, AclOperation.ALTER):
        results = every(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.")
    elif broker.acls is None:
        results = every(ErrorCode.SECURITY_DISABLED, "No Authorizer is configured.")
    else:
        outcomes = await broker.acls.delete_off_loop([filter_of(f) for f in body.filters])
        results = [
            {
                "error_code": o.error_code,
                "error_message": o.error_message,
                "matching_acls": [
                    {
                        "error_code": ErrorCode.NONE,
                        "error_message": None,
                        "resource_type": acl.resource_type,
                        "resource_name": acl.resource_name,
                        "pattern_type": acl.pattern_type,
                        "principal": acl.principal,
                        "host": acl.host,
                        "operation": acl.operation,
                        "permission_type": acl.permission_type,
                    }
                    for acl in o.bindings
                ],
            }
            for o in outcomes
        ]
    return response_for(
        header.api_key, header.api_version, {"throttle_time": 0, "filter_results": results}
    )
