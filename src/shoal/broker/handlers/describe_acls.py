"""DescribeAcls (29), v1-v3: the ACLs a filter matches, grouped by resource pattern. Needs
Describe on the cluster; SECURITY_DISABLED without an authorizer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shoal.broker.handlers.acl_common import NO_AUTHORIZER, AclFilterFields, filter_of
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


async def handle_describe_acls(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, AclFilterFields)
    answer: dict[str, Any] = {
        "throttle_time": 0,
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "resources": [],
    }
    matching = filter_of(body)
    if not broker.authorize_cluster(ctx, AclOperation.DESCRIBE):
        answer.update(
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
            error_message="Cluster authorization failed.",
        )
    elif broker.acls is None:
        answer.update(error_code=ErrorCode.SECURITY_DISABLED, error_message=NO_AUTHORIZER)
    elif matching.unknown_part() is not None:
        # Kafka refuses such a request as it parses it ("Filter contain UNKNOWN elements").
        answer.update(
            error_code=ErrorCode.INVALID_REQUEST,
            error_message=f"the filter has an unknown code in its {matching.unknown_part()}",
        )
    else:
        resources: dict[tuple[int, str, int], list[dict[str, Any]]] = {}
        for acl in broker.acls.describe(matching):
            key = (acl.resource_type, acl.resource_name, acl.pattern_type)
            resources.setdefault(key, []).append(
                {
                    "principal": acl.principal,
                    "host": acl.host,
                    "operation": acl.operation,
                    "permission_type": acl.permission_type,
                }
            )
        answer["resources"] = [
            {"resource_type": kind, "resource_name": name, "pattern_type": pattern, "acls": acls}
            for (kind, name, pattern), acls in resources.items()
        ]
    return response_for(header.api_key, header.api_version, answer)
