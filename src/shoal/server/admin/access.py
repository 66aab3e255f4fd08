"""Who is asking, whether they may, and whether the request really comes from them.

Authorization: the principal is the one :mod:`shoal.server.http_auth` proved (``User:ANONYMOUS``
when the HTTP face has no authentication, as on a PLAINTEXT Kafka listener), checked with the
broker's authorizer on the same operation and resource as the Kafka API that does the same
thing (CreateTopics: Create on the cluster or the topic; DeleteTopics: Delete on the topic...).

CSRF: a state-changing request (any method but GET/HEAD/OPTIONS) must carry the header
:data:`CSRF_HEADER` (any non-empty value) and, when it has a body, ``Content-Type:
application/json``. A cross-site HTML form can set neither; a cross-site ``fetch`` that sets
them needs a CORS preflight, which this server never grants. Browsers send the cookie-less
basic credentials they remember, so without this check a page elsewhere could act as the user.
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request

from shoal.broker.broker import Broker
from shoal.broker.context import RequestContext
from shoal.registry.access import PRINCIPAL_SCOPE_KEY
from shoal.security.acl import AclOperation, ResourceType
from shoal.server.admin.errors import JSON_MEDIA_TYPE, ApiError

CSRF_HEADER: Final = "X-Shoal-Admin"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
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
    if request.method in SAFE_METHODS:
        return
    if not request.headers.get(CSRF_HEADER, "").strip():
        raise ApiError(
            403,
            "csrf_header_missing",
            f"state-changing requests must carry the {CSRF_HEADER} header (any value)",
        )
    has_body = int(request.headers.get("content-length", "0") or "0") > 0
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if has_body and media_type != JSON_MEDIA_TYPE:
        raise ApiError(415, "unsupported_media_type", "request bodies must be application/json")


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
