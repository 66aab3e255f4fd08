"""The App's HTTP face for orchestrators and scrapers: ``/livez``, ``/readyz`` and ``/metrics``.

It runs as a task on the App's own event loop (starlette on uvicorn), so the probes see the
App's real state and cost no thread. ``/livez`` says whether the process should be restarted;
``/readyz`` whether it can do its work now (broker reachable, subscribers running), which a
rolling deploy waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Final, Protocol, runtime_checkable

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

READY_TIMEOUT_S: Final = 5.0
"""A readiness check that hangs (a broker that accepts connections but never answers) is a
"no": probes have their own timeouts (Kubernetes: 1 s by default) and a hung probe tells the
operator nothing."""
STARTUP_POLLS_MAX: Final = 1000
STARTUP_POLL_S: Final = 0.01
"""The socket is bound before uvicorn starts, so start-up takes milliseconds; 10 s means a bug."""
STOP_TIMEOUT_S: Final = 5.0
"""Open connections get this long to finish their request before they are closed."""


class _Metrics(Protocol):
    def render(self) -> tuple[bytes, str]: ...


class HealthTarget(Protocol):
    """What the health server needs of an App."""

    @property
    def metrics(self) -> _Metrics: ...

    def live(self) -> bool: ...

    async def ready(self) -> bool: ...


@runtime_checkable
class ExplainsNotReady(Protocol):
    """An optional capability of a :class:`HealthTarget`: why it is not ready (e.g. "broker
    unreachable"), shown in ``/readyz``'s answer."""

    @property
    def not_ready_reason(self) -> str | None: ...


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would take SIGTERM/SIGINT for itself (and re-raise them when it stops). Here
        # the App owns the signals: it stops its subscribers first, then this server.
        yield


async def _readiness(app: HealthTarget) -> tuple[bool, str]:
    try:
        ready = await asyncio.wait_for(app.ready(), READY_TIMEOUT_S)
    except TimeoutError:
        return False, f"the readiness check did not answer within {READY_TIMEOUT_S:g} s"
    except Exception as exc:
        return False, f"the readiness check failed: {type(exc).__name__}: {exc}"
    if ready:
        return True, "ready"
    reason = app.not_ready_reason if isinstance(app, ExplainsNotReady) else None
    return False, str(reason) if reason else "not ready"


def build_health_app(app: HealthTarget) -> Starlette:
    async def livez(_: Request) -> Response:
        live = app.live()
        return JSONResponse({"status": "live" if live else "not live"}, 200 if live else 503)

    async def readyz(_: Request) -> Response:
        ready, reason = await _readiness(app)
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "reason": reason},
            200 if ready else 503,
        )

    async def metrics(_: Request) -> Response:
        body, content_type = app.metrics.render()
        return Response(body, media_type=content_type)

    return Starlette(
        routes=[
            Route("/livez", livez, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )


class HealthServer:
    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None], port: int) -> None:
        self._server = server
        self._task = task
        self.port = port
        """The bound port: the one the OS chose when port 0 was asked for."""

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (up to STOP_TIMEOUT_S), close."""
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT_S)
        except TimeoutError:
            self._server.force_exit = True
            await self._task


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot serve health on {host}:{port}: {exc.strerror}") from exc


async def serve_health(app: HealthTarget, host: str, port: int) -> HealthServer:
    """Start serving the probes and metrics of ``app`` on ``host:port`` (0: any free port).

    Raises OSError when the address cannot be bound (in use, not an address of this host).
    """
    sock = _bind(host, port)
    bound_port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        build_health_app(app),
        log_level="warning",
        lifespan="off",
        access_log=False,
        server_header=False,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="shoal:health")
    for _ in range(STARTUP_POLLS_MAX):
        if server.started:
            return HealthServer(server, task, bound_port)
        if task.done():
            break
        await asyncio.sleep(STARTUP_POLL_S)
    server.should_exit = True
    sock.close()
    if task.done():
        task.result()  # raises what stopped it
    else:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    raise RuntimeError(f"the health server on {host}:{port} did not start")
