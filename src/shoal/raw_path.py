"""Routing HTTP requests on the path as the client sent it, still percent-encoded.

Names that travel in a path segment may hold a ``/``: a registry subject (confluent-kafka's
Protobuf serializer registers an import under its file path, ``google/protobuf/timestamp.proto``),
a consumer group id, a transactional id, a SCRAM user name. Clients send it as ``%2F``. The
server decodes the whole path before routing, and a decoded ``/`` splits the name into two
segments that no route matches. Matched on the raw path, each name is one segment, which
:func:`decode_path_params` then decodes (``%25``, ``%3F``, ``%23``, spaces and UTF-8 too).

Shared by every HTTP face (the registry, the admin API, ``shoal console``), so it sits below
them all and imports none of them.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send

RAW_PATH_KEY: Final = "shoal.raw_path"
"""Set in the scope when routes matched the path as sent (still percent-encoded)."""


def match_on_raw_path(app: ASGIApp) -> ASGIApp:
    """``app`` routed on ``raw_path``; its endpoints call :func:`decode_path_params`."""

    async def run(scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path")
        if scope["type"] == "http" and isinstance(raw, bytes) and raw:
            # A client that sent raw UTF-8 bytes rather than escapes still gets its name.
            path = raw.decode("utf-8", errors="replace").split("?", 1)[0]
            scope = {**scope, "path": path, RAW_PATH_KEY: True}
        await app(scope, receive, send)

    return run


def decode_path_params(scope: Scope) -> None:
    """Percent-decode each matched path parameter once (a no-op on a decoded path)."""
    if scope.get(RAW_PATH_KEY):
        params = scope.get("path_params", {})
        scope["path_params"] = {k: unquote(v) for k, v in params.items()}
        scope[RAW_PATH_KEY] = False  # decoded: a second call must not decode "%2525" twice
