"""Run the console app under uvicorn until SIGINT/SIGTERM (which uvicorn handles)."""

from __future__ import annotations

import socket
import sys

import uvicorn

from shoal.console.web import build_console_app
from shoal.server.host_guard import is_loopback

LISTEN_BACKLOG = 128
"""Connections the kernel queues before uvicorn accepts them (its own default)."""


def serve(config: dict[str, str], registry_url: str | None, host: str, port: int) -> None:
    # Bound here, before uvicorn starts, so the address (a port 0 becomes a free one) is known
    # and printed as one line a script or a test can read.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()
    # Listening before the line is printed: a client that connects at once waits in the
    # backlog until uvicorn accepts, rather than being refused.
    sock.listen(LISTEN_BACKLOG)
    app = build_console_app(config, registry_url, loopback_only=is_loopback(host))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    print(f"shoal console on http://{host}:{bound[1]}/", flush=True, file=sys.stdout)
    server.run(sockets=[sock])
