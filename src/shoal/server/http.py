"""The broker's HTTP face: liveness, readiness, metrics, the admin API and the schema registry."""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from shoal.server.console import console_routes
from shoal.server.http_auth import HttpAuthentication, RequireAuthentication


def build_http_app(
    readiness: Callable[[], tuple[bool, str]],
    registry: ASGIApp | None = None,
    metrics: Callable[[], tuple[str, str]] | None = None,
    authentication: HttpAuthentication | None = None,
    admin: ASGIApp | None = None,
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
    if authentication is not None and authentication.enabled:
        middleware.append(Middleware(RequireAuthentication, authentication=authentication))
    return Starlette(routes=routes, middleware=middleware)
