"""The web console (issue 17): static pages at ``/`` of the HTTP listener.

The console is a client of the admin API (``/api/v1``) and the schema registry: every page
reads and every action writes through them, from the browser, so the same files run against
any server that answers those APIs. It is plain HTML, CSS and JavaScript shipped as package
data (no build step); the script renders every value with ``textContent``, never as markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR: Final = Path(__file__).parent / "static"
ASSETS_PREFIX: Final = "/console"

CONTENT_SECURITY_POLICY: Final = (
    # Scripts and styles only from this origin and never inline: even if some value slipped
    # into the page as markup, the browser would not run it. No framing (clickjacking).
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def _harden(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


class _HardenedStatic(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        return _harden(await super().get_response(path, scope))


def console_routes() -> list[Route | Mount]:
    """``GET /`` (the page) and ``/console/*`` (its script and style sheet)."""

    async def index(request: Request) -> Response:
        return _harden(FileResponse(STATIC_DIR / "index.html", media_type="text/html"))

    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Mount(ASSETS_PREFIX, app=_HardenedStatic(directory=STATIC_DIR), name="console"),
    ]
