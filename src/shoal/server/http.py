"""The broker's HTTP face: liveness, readiness and the schema registry; metrics, admin API later."""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp


def build_http_app(
    readiness: Callable[[], tuple[bool, str]], registry: ASGIApp | None = None
) -> Starlette:
    """``readiness`` says whether the broker serves (listeners bound, logs recovered) and why.
    ``registry``, when given, serves every other path (Confluent's API lives at the root)."""

    async def livez(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        ready, detail = readiness()
        return JSONResponse({"ready": ready, "detail": detail}, status_code=200 if ready else 503)

    routes: list[Route | Mount] = [Route("/livez", livez), Route("/readyz", readyz)]
    if registry is not None:
        routes.append(Mount("", app=registry))
    return Starlette(routes=routes)
