"""The broker's HTTP face: liveness and readiness now; metrics, admin API, registry later."""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


def build_http_app(readiness: Callable[[], tuple[bool, str]]) -> Starlette:
    """``readiness`` says whether the broker serves (listeners bound, logs recovered) and why."""

    async def livez(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        ready, detail = readiness()
        return JSONResponse({"ready": ready, "detail": detail}, status_code=200 if ready else 503)

    return Starlette(routes=[Route("/livez", livez), Route("/readyz", readyz)])
