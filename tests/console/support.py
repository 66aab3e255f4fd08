"""The console process's app (``shoal console``) under uvicorn on a thread, for the tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from shoal.console import build_console_app
from shoal.console.web import Backend
from tests.server.admin_support import TIMEOUT_S, eventually


@contextmanager
def console_server(
    bootstrap: str, registry: str | None = None, backend: Backend | None = None
) -> Iterator[str]:
    """A real HTTP server on loopback serving the console for ``bootstrap``; yields its URL.
    ``backend``: one the test holds (to reach its group worker)."""
    app = build_console_app({"bootstrap.servers": bootstrap}, registry, backend=backend)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        eventually(lambda: server.started, "the console to listen")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(TIMEOUT_S)
        sock.close()
