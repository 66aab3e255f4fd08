"""Typed payloads: nested dataclasses, optionals, enums, datetimes, msgspec structs, pydantic."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import pydantic
import pytest

from shoal import App
from shoal.app.resilience import dlq
from shoal.app.serdes.payload import SerdeError, decode, decoder_for, encode
from shoal.app.testing import TestApp


class Status(enum.Enum):
    NEW = "new"
    PAID = "paid"


@dataclass
class Line:
    sku: str
    qty: int
    price: float


@dataclass
class Order:
    id: int
    lines: list[Line]
    status: Status
    placed_at: datetime
    note: str | None = None
    tags: dict[str, int] = field(default_factory=dict)


class Tick(msgspec.Struct):
    symbol: str
    price: float
    size: int


class Customer(pydantic.BaseModel):
    id: int
    email: str


ORDER = Order(
    7,
    [Line("tea", 2, 3.5), Line("cake", 1, 4.0)],
    Status.PAID,
    datetime(2026, 11, 28, 3, 30, tzinfo=UTC),
    tags={"gift": 1},
)


def test_nested_dataclasses_round_trip() -> None:
    assert decode(decoder_for(Order), encode(ORDER)) == ORDER


@pytest.mark.parametrize(
    "payload",
    [
        b'{"id": 1, "lines": {}, "status": "new", "placed_at": "2026-01-01T00:00:00"}',
        b'{"id": 1, "lines": [{"sku": 5, "qty": 1, "price": 1}], "status": "new",'
        b' "placed_at": "2026-01-01T00:00:00"}',
        b'{"id": 1, "lines": [], "status": "lost", "placed_at": "2026-01-01T00:00:00"}',
        b'{"id": 1, "lines": [], "status": "new", "placed_at": "yesterday"}',
        b'{"id": true, "lines": [], "status": "new", "placed_at": "2026-01-01T00:00:00"}',
        b'{"id": 1, "lines": [], "status": "new", "placed_at": "2026-01-01", "extra": 1}',
        b'{"id": 1}',
    ],
)
def test_payloads_of_the_wrong_shape_are_serde_errors(payload: bytes) -> None:
    with pytest.raises(SerdeError):
        decode(decoder_for(Order), payload)


def test_msgspec_structs_and_pydantic_models_are_decoded_for_handlers() -> None:
    app = App()
    got: list[Any] = []

    @app.subscriber("ticks", group="g")
    async def on_tick(tick: Tick) -> None:
        got.append(tick)

    @app.subscriber("customers", group="g")
    async def on_customer(customer: Customer) -> None:
        got.append(customer)

    @app.subscriber("orders", group="g")
    async def on_order(order: Order) -> None:
        got.append(order)

    async def scenario() -> None:
        async with TestApp(app) as t:
            await t.publish("ticks", Tick("ACME", 12.5, 100))
            await t.publish("customers", Customer(id=3, email="a@b.c"))
            await t.publish("orders", ORDER)
            await t.publish("ticks", {"symbol": "ACME", "price": "cheap", "size": 1})
            await t.drain()
            (dead,) = t.dlq("ticks")
            assert dead.header(dlq.EXCEPTION_TYPE) == b"shoal.app.serdes.payload.SerdeError"

    asyncio.run(scenario())
    # Three subscribers run side by side: compare regardless of the order they finished in.
    by_type = sorted(got, key=lambda v: type(v).__name__)
    assert by_type == [Customer(id=3, email="a@b.c"), ORDER, Tick("ACME", 12.5, 100)]
