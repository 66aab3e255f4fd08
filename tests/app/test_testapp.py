"""TestApp: an App's real handlers on a private memory broker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from shoal import App, Retry
from shoal.app.resilience import dlq
from shoal.app.testing import TestApp


@dataclass
class Order:
    id: int
    amount: float


@dataclass
class Bill:
    order_id: int
    total: float


def make_app() -> App:
    app = App("kafka://unused:9092")  # TestApp replaces the transport: nothing connects

    @app.subscriber("orders", group="billing", output="bills", retry=Retry(max_attempts=2))
    async def bill(order: Order) -> Bill:
        if order.amount < 0:
            raise ValueError("negative amount")
        return Bill(order.id, order.amount * 1.2)

    @app.subscriber("bills", group="ledger")
    async def book(b: Bill) -> None:
        booked.append(b)

    return app


booked: list[Bill] = []


def test_drain_waits_for_chained_handlers_and_the_dlq_is_inspectable() -> None:
    booked.clear()
    app = make_app()

    async def scenario() -> None:
        async with TestApp(app) as t:
            await t.publish("orders", Order(1, 10.0))
            await t.publish("orders", Order(2, -1.0))
            await t.drain()
            assert booked == [Bill(1, 12.0)]
            assert [m.offset for m in t.records("bills")] == [0]
            (dead,) = t.dlq("orders")
            assert dead.header(dlq.EXCEPTION_TYPE) == b"builtins.ValueError"
            assert dead.header(dlq.ATTEMPTS) == b"2"
        # The app's own transport is back, and it never connected anywhere.
        assert app.url == "kafka://unused:9092"
        assert type(app.transport).__name__ == "KafkaTransport"

    asyncio.run(scenario())


def test_drain_names_who_is_behind_when_it_times_out() -> None:
    app = App()
    gate = asyncio.Event()

    @app.subscriber("slow", group="stuck")
    async def stuck(n: int) -> None:
        await gate.wait()

    async def scenario() -> None:
        async with TestApp(app) as t:
            await t.publish("slow", 1)
            with pytest.raises(TimeoutError, match=r"stuck on slow\[0\]: 0/1"):
                await t.drain(timeout_s=0.2)
            gate.set()
            await t.drain()

    asyncio.run(scenario())
