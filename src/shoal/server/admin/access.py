"""Who is asking, whether they may, and whether the request really comes from them.

Authorization: the principal is the one :mod:`shoal.server.http_auth` proved (``User:ANONYMOUS``
when the HTTP face has no authentication, as on a PLAINTEXT Kafka listener), checked with the
broker's authorizer on the same operation and resource as the Kafka API that does the same
thing (CreateTopics: Create on the cluster or the topic; DeleteTopics: Delete on the topic...).

CSRF: a state-changing request (any method but GET/HEAD/OPTIONS) must carry the header
:data:`CSRF_HEADER` (any non-blank value), a JSON body if any, and no browser sign of coming
from another site (see :mod:`shoal.cross_site`, shared with ``shoal console``). A cross-site
HTML form can do none of this; a cross-site ``fetch`` that does needs a CORS preflight, which
this server never grants. Browsers send the basic credentials they remember, so without this
check a page elsewhere could act as the user.
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request

from shoal.broker.broker import Broker
from shoal.broker.context import RequestContext
from shoal.cross_site import ADMIN_HEADER, admin_refusal
from shoal.registry.access import PRINCIPAL_SCOPE_KEY
from shoal.security.acl import AclOperation, ResourceType
from shoal.server.admin.errors import ApiError

CSRF_HEADER: Final = ADMIN_HEADER
ANONYMOUS: Final = "User:ANONYMOUS"
HTTP_LISTENER: Final = "HTTP"


def request_context(request: Request) -> RequestContext:
    """The Kafka request context of an HTTP request: its principal and client address."""
    client = request.client
    return RequestContext(
        client_id=None,
        client_host=client.host if client is not None else "",
        client_port=client.port if client is not None else 0,
        principal=request.scope.get(PRINCIPAL_SCOPE_KEY, ANONYMOUS),
        listener_name=HTTP_LISTENER,
    )


def check_csrf(request: Request) -> None:
    """Refuse a state-changing request that a cross-site page could have sent."""
    refused = admin_refusal(request.method, request.headers)
    if refused is not None:
        raise ApiError(refused.status, refused.slug, refused.message)


def require(
    broker: Broker,
    ctx: RequestContext,
    operation: AclOperation,
    resource_type: ResourceType,
    name: str,
) -> None:
    """Raise 403 unless the principal may do ``operation`` on the resource."""
    if not broker.authorize(ctx, operation, resource_type, name):
        raise ApiError(
            403,
            f"{resource_type.name.lower()}_authorization_failed",
            f"{ctx.principal} may not {operation.name} {resource_type.name} {name!r}",
        )
