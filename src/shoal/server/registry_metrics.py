"""Counts of the schema registry's HTTP requests, by method and status code, taken by a thin
ASGI wrapper around the registry's app (the registry itself stays a plain Kafka client)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shoal.metrics.core import Histogram, bucket_bounds

REGISTRY_DURATION_BUCKETS_S = bucket_bounds(0.0005, 2.5, 10)
"""0.5 ms (a cached schema by id) to about 2 s (a registration waiting for its Kafka write)."""


class RegistryMetrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        """By (method, status code)."""
        self.duration_s = Histogram(REGISTRY_DURATION_BUCKETS_S)


class CountRequests:
    """ASGI middleware: counts each HTTP request that reaches ``app``."""

    def __init__(self, app: ASGIApp, metrics: RegistryMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        status = 500  # what the client sees when the app fails before answering
        started_s = time.perf_counter()

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, send_counted)
        finally:
            key = (str(scope.get("method", "GET")), status)
            requests = self._metrics.requests
            requests[key] = requests.get(key, 0) + 1
            self._metrics.duration_s.observe(time.perf_counter() - started_s)
