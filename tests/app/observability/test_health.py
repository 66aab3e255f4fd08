"""The health server over real HTTP: probes follow the app's state, metrics are scrapeable."""

from __future__ import annotations

import asyncio
import signal
import socket

import httpx
import pytest

from shoal.app import App
from shoal.app.observability import health
from shoal.app.observability.health import serve_health
from shoal.app.observability.metrics import Instruments

pytestmark = pytest.mark.integration


class StandIn:
    """The three things the health server asks of an App, switchable by the test."""

    def __init__(self) -> None:
        self.metrics = Instruments()
        self.is_live = True
        self.is_ready = False
        self.not_ready_reason: str | None = "consumers are joining their groups"
        self.ready_error: Exception | None = None
        self.ready_hangs = False

    def live(self) -> bool:
        return self.is_live

    async def ready(self) -> bool:
        if self.ready_hangs:
            await asyncio.Event().wait()
        if self.ready_error is not None:
            raise self.ready_error
        return self.is_ready


def test_probes_follow_the_app_and_metrics_are_served() -> None:
    app = StandIn()
    app.metrics.processed("bill", "orders", 0.002)

    async def scenario() -> None:
        server = await serve_health(app, "127.0.0.1", 0)
        assert server.port > 0
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
                live = await http.get("/livez")
                assert live.status_code == 200

                not_ready = await http.get("/readyz")
                assert not_ready.status_code == 503
                assert not_ready.json() == {
                    "status": "not ready",
                    "reason": "consumers are joining their groups",
                }

                app.is_ready = True
                ready = await http.get("/readyz")
                assert ready.status_code == 200
                assert ready.json()["status"] == "ready"

                app.ready_error = ConnectionError("broker unreachable")
                failed = await http.get("/readyz")
                assert failed.status_code == 503
                assert "broker unreachable" in failed.json()["reason"]

                app.is_live = False
                assert (await http.get("/livez")).status_code == 503

                metrics = await http.get("/metrics")
                assert metrics.status_code == 200
                assert metrics.headers["content-type"].startswith("text/plain")
                assert (
                    'shoal_messages_processed_total{subscriber="bill",topic="orders"} 1.0'
                    in metrics.text
                )
                assert (await http.get("/nothing")).status_code == 404
        finally:
            await server.stop()
        # Stopped means the port no longer accepts connections.
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient() as http:
                await http.get(f"http://127.0.0.1:{server.port}/livez")

    asyncio.run(scenario())


def test_a_hung_readiness_check_answers_503(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "READY_TIMEOUT_S", 0.05)
    app = StandIn()
    app.ready_hangs = True

    async def scenario() -> None:
        server = await serve_health(app, "127.0.0.1", 0)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
                response = await http.get("/readyz")
            assert response.status_code == 503
            assert "did not answer" in response.json()["reason"]
        finally:
            await server.stop()

    asyncio.run(scenario())


def test_a_port_in_use_is_an_os_error_naming_the_address() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]

        async def scenario() -> None:
            await serve_health(StandIn(), "127.0.0.1", port)

        with pytest.raises(OSError, match=f"cannot serve health on 127.0.0.1:{port}"):
            asyncio.run(scenario())


def test_signals_stay_with_the_app() -> None:
    # uvicorn would install its own SIGTERM handler; App.run must keep receiving SIGTERM.
    async def scenario() -> object:
        server = await serve_health(StandIn(), "127.0.0.1", 0)
        try:
            return signal.getsignal(signal.SIGTERM)
        finally:
            await server.stop()

    before = signal.getsignal(signal.SIGTERM)
    assert asyncio.run(scenario()) is before
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_real_app_over_the_memory_transport() -> None:
    app = App("memory://", name="probe-test")
    handled = asyncio.Event()

    @app.subscriber("orders", group="billing")
    async def bill(order: dict[str, int]) -> None:
        handled.set()

    async def scenario() -> None:
        async with app:
            server = await serve_health(app, "127.0.0.1", 0)
            try:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
                    assert (await http.get("/livez")).status_code == 200
                    await app.publish("orders", {"amount": 3})
                    await asyncio.wait_for(handled.wait(), 30)
                    # Bounded wait: readiness follows the consumer's assignment.
                    for _ in range(300):
                        if (await http.get("/readyz")).status_code == 200:
                            break
                        await asyncio.sleep(0.05)
                    else:
                        raise AssertionError("/readyz never answered 200")
                    metrics = (await http.get("/metrics")).text
            finally:
                await server.stop()
        assert 'shoal_messages_published_total{topic="orders"} 1.0' in metrics
        assert "shoal_handler_duration_seconds_count" in metrics

    asyncio.run(scenario())
