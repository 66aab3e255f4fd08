"""The broker's HTTP face: liveness, readiness, metrics, the admin API and the schema registry."""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from shoal.server.admin.errors import ApiError, error_response
from shoal.server.admin.routes import PREFIX as ADMIN_PREFIX
from shoal.server.console import console_routes
from shoal.server.host_guard import LoopbackHostGuard
from shoal.server.http_auth import HttpAuthentication, RequireAuthentication


def build_http_app(
    readiness: Callable[[], tuple[bool, str]],
    registry: ASGIApp | None = None,
    metrics: Callable[[], tuple[str, str]] | None = None,
    authentication: HttpAuthentication | None = None,
    admin: ASGIApp | None = None,
    loopback_only: bool = False,
) -> Starlette:
    """``readiness`` says whether the broker serves (listeners bound, logs recovered) and why.
    ``registry``, when given, serves every other path (Confluent's API lives at the root).
    ``metrics``, when given, answers ``GET /metrics`` with its (body, content type); it runs on
    the server's event loop, which is the broker's. ``authentication``, when it accepts any
    credentials, guards every path but /livez (see :mod:`shoal.server.http_auth`). ``admin``,
    when given, serves the admin API under /api/v1 (see :mod:`shoal.server.admin`) and the web
    console at / (see :mod:`shoal.server.console`)."""

    async def livez(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        ready, detail = readiness()
        return JSONResponse({"ready": ready, "detail": detail}, status_code=200 if ready else 503)

    routes: list[Route | Mount] = [Route("/livez", livez), Route("/readyz", readyz)]
    if metrics is not None:
        scrape = metrics

        async def metrics_endpoint(request: Request) -> Response:
            body, content_type = scrape()
            return Response(body, media_type=content_type)

        routes.append(Route("/metrics", metrics_endpoint))
    if admin is not None:  # before the registry, which serves every other path
        routes.append(Mount("/api/v1", app=admin))
        # The web console (issue 17) is a client of the admin API, so it comes with it: `/`
        # and `/console/*`, which the registry's API (at the root) does not use.
        routes.extend(console_routes())
    if registry is not None:
        routes.append(Mount("", app=registry))
    middleware = []
    if loopback_only:  # first: a DNS-rebinding page gets nothing, not even a login prompt
        middleware.append(Middleware(LoopbackHostGuard))
    if authentication is not None and authentication.enabled:
        middleware.append(Middleware(RequireAuthentication, authentication=authentication))

    async def not_found(request: Request, exc: Exception) -> Response:
        """A path no mount matches. Mounts match ``.*``, which stops at a line break, so a
        percent-encoded one in an admin path (a topic named "a%0Ab") ends up here: answer it
        in the admin API's JSON error shape, as its own unknown routes are (found by
        tests/fuzz, target admin)."""
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        if admin is not None and request.url.path.startswith(f"{ADMIN_PREFIX}/"):
            message = f"{request.method} {request.url.path!r}: no such route"
            response = error_response(ApiError(status, "no_such_route", message))
            response.headers["X-Content-Type-Options"] = "nosniff"
            return response
        detail = exc.detail if isinstance(exc, HTTPException) else "Not Found"
        return PlainTextResponse(detail, status_code=status)

    return Starlette(routes=routes, middleware=middleware, exception_handlers={404: not_found})
