"""The routes of ``/api/v1/``: each one finds the broker and the caller, checks CSRF, and hands
over to the module of its resource; an :class:`ApiError` becomes its JSON answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from shoal.broker.broker import Broker
from shoal.broker.context import RequestContext
from shoal.raw_path import decode_path_params, match_on_raw_path
from shoal.server.admin import groups, messages, overview, security, security_changes, topics
from shoal.server.admin.access import check_csrf, request_context
from shoal.server.admin.errors import ApiError, error_response
from shoal.server.admin.openapi import openapi_document

PREFIX: Final = "/api/v1"

BrokerSource = Callable[[], Broker | None]
"""The running broker, or None while it is still starting (recovering its logs)."""
Action = Callable[[Broker, RequestContext, Request], Awaitable[Response]]


def _endpoint(source: BrokerSource, action: Action) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            decode_path_params(request.scope)
            check_csrf(request)
            broker = source()
            if broker is None:
                raise ApiError(503, "broker_starting", "the broker is still starting")
            response = await action(broker, request_context(request), request)
        except ApiError as exc:
            response = error_response(exc)
        # Answers echo what callers sent (names, keys, values): never let a browser sniff
        # them as HTML.
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return endpoint


async def _list_topics(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    return topics.list_topics(broker, ctx)


async def _create_topic(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    return await topics.create_topic(broker, ctx, request)


async def _describe_topic(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    return topics.describe_topic(broker, ctx, request.path_params["topic"])


async def _delete_topic(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    name = request.path_params["topic"]
    return topics.delete_topic(broker, ctx, name, request.query_params.get("confirm"))


async def _alter_configs(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    name = request.path_params["topic"]
    return await topics.alter_topic_configs(broker, ctx, name, request)


async def _browse(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    return await messages.browse(broker, ctx, request.path_params["topic"], request)


async def _export(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    return await messages.export(broker, ctx, request.path_params["topic"], request)


async def _produce(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    return await messages.produce(broker, ctx, request.path_params["topic"], request)


async def _list_groups(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    return groups.list_groups(broker, ctx)


async def _describe_group(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    return await groups.describe_group(broker, ctx, request.path_params["group"])


async def _reset_offsets(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    return await groups.reset_offsets(broker, ctx, request.path_params["group"], request)


async def _overview(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    return await overview.broker_overview(broker, ctx)


async def _acls(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    return security.list_acls(broker, ctx)


async def _users(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    return security.list_users(broker, ctx)


async def _create_acl(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    return await security_changes.create_acl(broker, ctx, request)


async def _delete_acl(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    return await security_changes.delete_acl(broker, ctx, request)


async def _set_user(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    return await security_changes.set_user(broker, ctx, request.path_params["user"], request)


async def _delete_user(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    user, mechanism = request.path_params["user"], request.query_params.get("mechanism")
    return await security_changes.delete_user(broker, ctx, user, mechanism)


ROUTES: Final[tuple[tuple[str, str, Action], ...]] = (
    ("/topics", "GET", _list_topics),
    ("/topics", "POST", _create_topic),
    ("/topics/{topic}", "GET", _describe_topic),
    ("/topics/{topic}", "DELETE", _delete_topic),
    ("/topics/{topic}/configs", "PATCH", _alter_configs),
    ("/topics/{topic}/messages", "GET", _browse),
    ("/topics/{topic}/messages", "POST", _produce),
    ("/topics/{topic}/messages/export", "GET", _export),  # every match, streamed
    ("/groups", "GET", _list_groups),
    ("/groups/{group}", "GET", _describe_group),
    ("/groups/{group}/offsets/reset", "POST", _reset_offsets),
    ("/broker", "GET", _overview),  # the console's overview page
    ("/acls", "GET", _acls),  # the console's security pages (read-only)
    ("/users", "GET", _users),
    # The console's security pages change ACLs and SCRAM users too (Alter on the cluster).
    ("/acls", "POST", _create_acl),
    ("/acls", "DELETE", _delete_acl),
    ("/users/{user}", "PUT", _set_user),
    ("/users/{user}", "DELETE", _delete_user),
)
"""(path under /api/v1, method, action): the OpenAPI document must describe exactly these."""


def build_admin_app(source: BrokerSource) -> ASGIApp:
    """The ASGI app to mount at :data:`PREFIX`, routed on the raw path: a group id, a user
    name may hold a ``/`` (sent as ``%2F``; see :mod:`shoal.raw_path`)."""
    routes = [
        Route(path, _endpoint(source, action), methods=[method]) for path, method, action in ROUTES
    ]

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document())

    routes.append(Route("/openapi.json", openapi, methods=["GET"]))

    async def no_route(request: Request, exc: Exception) -> Response:
        """Unknown paths and methods answer in the API's JSON error shape too."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        error = ApiError(status, "no_such_route", f"{request.method} {request.url.path}: {exc}")
        response = error_response(error)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return match_on_raw_path(Starlette(routes=routes, exception_handlers={HTTPException: no_route}))
