"""CreateAcls (30), v1-v3: add ACLs. Needs Alter on the cluster; SECURITY_DISABLED without an
authorizer; each invalid creation gets INVALID_REQUEST with Kafka's message, the rest are added."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shoal.broker.handlers.acl_common import AclCreationFields, binding_of
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class _CreateAclsRequest(Protocol):
    creations: Sequence[AclCreationFields]


async def handle_create_acls(broker: Broker, ctx: RequestContext, request: Request) -> ResponseBody:
    header, body = request.header, request_body(request.body, _CreateAclsRequest)

    def every(code: ErrorCode, message: str) -> list[dict[str, Any]]:
        return [{"error_code": code, "error_message": message} for _ in body.creations]

    if not broker.authorize_cluster(ctx, AclOperation.ALTER):
        results = every(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.")
    elif broker.acls is None:
        results = every(ErrorCode.SECURITY_DISABLED, "No Authorizer is configured.")
    else:
        outcomes = await broker.acls.create_off_loop([binding_of(c) for c in body.creations])
        results = [{"error_code": o.error_code, "error_message": o.error_message} for o in outcomes]
    return response_for(
        header.api_key, header.api_version, {"throttle_time": 0, "results": results}
    )
