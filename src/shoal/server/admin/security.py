"""ACLs and SCRAM users, read-only (the console's security pages).

Each needs Describe on the cluster, as DescribeAcls and DescribeUserScramCredentials do. ACLs
and users are changed with the Kafka API (``shoal acl``, ``shoal user``, Kafka's tools); these
routes only show them. No credential material is ever returned: a user's mechanisms and
iteration counts only, as DescribeUserScramCredentials answers.
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from shoal.broker.broker import Broker
from shoal.broker.context import RequestContext
from shoal.security.acl import AclBindingFilter, AclOperation
from shoal.server.admin.errors import ApiError


def _require_cluster_describe(broker: Broker, ctx: RequestContext, what: str) -> None:
    if not broker.authorize_cluster(ctx, AclOperation.DESCRIBE):
        raise ApiError(
            403,
            "cluster_authorization_failed",
            f"{ctx.principal} may not DESCRIBE the cluster, which listing {what} needs",
        )


def list_acls(broker: Broker, ctx: RequestContext) -> Response:
    """Every ACL binding; ``authorizer`` false (and no ACLs) when none is configured."""
    _require_cluster_describe(broker, ctx, "ACLs")
    if broker.acls is None:
        return JSONResponse({"authorizer": False, "acls": []})
    rows = [
        {
            "resource_type": acl.resource_type.name,
            "resource_name": acl.resource_name,
            "pattern_type": acl.pattern_type.name,
            "principal": acl.principal,
            "host": acl.host,
            "operation": acl.operation.name,
            "permission_type": acl.permission_type.name,
        }
        for acl in broker.acls.describe(AclBindingFilter())
    ]
    rows.sort(
        key=lambda r: (r["resource_type"], r["resource_name"], r["principal"], r["operation"])
    )
    return JSONResponse({"authorizer": True, "acls": rows})


def list_users(broker: Broker, ctx: RequestContext) -> Response:
    """SCRAM users with their mechanisms and iteration counts (never salts or keys)."""
    _require_cluster_describe(broker, ctx, "users")
    store = broker.scram_credentials
    users = [
        {
            "user": user,
            "mechanisms": [
                {"mechanism": name, "iterations": iterations}
                for name, iterations in sorted(store.mechanisms_of(user).items())
            ],
        }
        for user in store.users()
    ]
    return JSONResponse({"users": users})
