"""The order saga run once on a broker URL, and the checks of its outcome that every broker
(embedded, kafka://, RabbitMQ, Redis, NATS) must pass."""

from __future__ import annotations

import asyncio
from pathlib import Path

from examples.orders.plan import FIXED_ADDRESS, STOCK
from examples.orders.scenario import Outcome, Scenario

from shoal.app.resilience import dlq

Ran = tuple[Scenario, Outcome]


def run(broker_url: str, workdir: Path) -> Ran:
    scenario = Scenario(broker_url, workdir)
    return scenario, asyncio.run(scenario.run())


def check_good_orders_are_shipped(ran: Ran) -> None:
    _, outcome = ran
    for order_id in ("ORD-1", "ORD-2"):
        state = outcome.orders[order_id]
        assert state.status == "shipped"
        assert state.history == ["placed", "paid", "reserved", "shipped"]
        assert state.detail["tracking_id"] == f"TRK-{order_id}"
    assert outcome.problems == []


def check_declined_payments_cancel_the_order_without_a_charge(ran: Ran) -> None:
    _, outcome = ran
    for order_id, why in (("ORD-3", "card 4000-0000-0000-0002 declined"), ("ORD-6", "limit")):
        state = outcome.orders[order_id]
        assert state.status == "cancelled"
        assert state.history == ["placed", "payment_failed"]
        assert state.reason is not None
        assert state.reason.startswith("payment declined") and why in state.reason
        assert order_id not in outcome.charges
    assert not [r for r in outcome.reservations if r[0] in ("ORD-3", "ORD-6")]


def check_out_of_stock_order_is_refunded_then_cancelled(ran: Ran) -> None:
    _, outcome = ran
    state = outcome.orders["ORD-4"]
    assert state.status == "cancelled"
    assert state.history == ["placed", "paid", "refunded"]
    assert state.reason == "out of stock: 1 x globe; payment refunded"
    assert outcome.charges["ORD-4"] == 9_900
    assert outcome.refunds == {"ORD-4": 9_900}
    assert outcome.stock["globe"] == STOCK["globe"] == 0


def check_duplicate_payment_reserves_stock_once(ran: Ran) -> None:
    scenario, outcome = ran
    assert outcome.duplicate_id
    assert [r for r in outcome.reservations if r[0] == "ORD-1"] == [("ORD-1", "kettle", 1)]
    # One kettle for ORD-1, none for the declined ORD-3 and ORD-6.
    assert outcome.stock["kettle"] == STOCK["kettle"] - 1
    assert outcome.stock["teapot"] == STOCK["teapot"] - 2 - 1
    inventory_lines = [e.text for e in scenario.timeline.entries if e.service == "inventory"]
    assert inventory_lines.count("reserved 1 x kettle") == 1


def check_poison_order_is_dead_lettered_then_shipped_after_redrive(ran: Ran) -> None:
    scenario, outcome = ran
    (dead,) = outcome.dead_letters
    assert dead.topic == "inventory.reserved.dlq"
    assert dead.key == b"ORD-5"
    assert dead.message_id is not None
    assert dead.header(dlq.ORIGINAL_TOPIC) == b"inventory.reserved"
    assert dead.header(dlq.ORIGINAL_KEY) == b"ORD-5"
    assert dead.header(dlq.ATTEMPTS) == b"3"
    assert dead.header(dlq.EXCEPTION_TYPE) == b"examples.orders.shipping_service.AddressInvalid"
    assert dead.header(dlq.EXCEPTION_MESSAGE) == b"no postcode in '42 Nowhere Lane'"
    assert b"AddressInvalid" in (dead.header(dlq.EXCEPTION_TRACEBACK) or b"")

    assert outcome.redriven == 1
    state = outcome.orders["ORD-5"]
    assert state.status == "shipped"
    assert state.history == ["placed", "paid", "reserved", "shipped"]
    shipping = scenario.timeline.for_order("ORD-5")
    refused = [t for t in shipping if t.startswith("carrier refused")]
    assert len(refused) == 3
    # Shipped after the three refusals. (Whether the redrive's own log line comes before or
    # after the shipment depends on how fast the broker delivers the redriven record.)
    shipped = shipping.index(f"shipment TRK-ORD-5 to {FIXED_ADDRESS!r}")
    assert shipped > max(i for i, t in enumerate(shipping) if t.startswith("carrier refused"))


def check_gateway_outage_opens_the_breaker_yet_each_order_is_charged(ran: Ran) -> None:
    scenario, outcome = ran
    breaker = [e.text for e in scenario.timeline.entries if e.text.startswith("breaker")]
    assert breaker[0] == "breaker payment-gateway: closed -> open"
    assert breaker[-1] == "breaker payment-gateway: half_open -> closed"
    assert sorted(outcome.charges) == ["ORD-1", "ORD-2", "ORD-4", "ORD-5"]


CHECKS = (
    check_good_orders_are_shipped,
    check_declined_payments_cancel_the_order_without_a_charge,
    check_out_of_stock_order_is_refunded_then_cancelled,
    check_duplicate_payment_reserves_stock_once,
    check_poison_order_is_dead_lettered_then_shipped_after_redrive,
    check_gateway_outage_opens_the_breaker_yet_each_order_is_charged,
)
