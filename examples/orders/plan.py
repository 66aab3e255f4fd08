"""The orders of the scenario, what each one shows, and the end state each must reach."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from examples.orders.events import OrderPlaced
from examples.orders.gateway import DECLINED_CARD
from examples.orders.order_state import Status

GOOD_CARD: Final = "4242-4242-4242-4242"
STOCK: Final = {"kettle": 5, "teapot": 4, "globe": 0}
GATEWAY_OUTAGE_CALLS: Final = 4
"""Enough failed calls in a row to open the breaker (3) and fail its first probe (the 4th)."""
DUPLICATE_ORDER: Final = "ORD-1"
"""Its payment is re-published with the same message id: stock must drop once."""
OUT_OF_STOCK_ORDER: Final = "ORD-4"
"""Paid for an item with no stock: the one order the saga refunds."""
POISON_ORDER: Final = "ORD-5"
FIXED_ADDRESS: Final = "42 Nowhere Lane, 10115 Berlin"


@dataclass(frozen=True, slots=True)
class Planned:
    order: OrderPlaced
    status: Status
    reason_contains: str
    shows: str


def _order(n: int, item: str, quantity: int, cents: int, card: str, address: str) -> OrderPlaced:
    return OrderPlaced(f"ORD-{n}", f"customer-{n}", item, quantity, cents, card, address)


HOME: Final = "1 Main Street, 10115 Berlin"

PLAN: Final = (
    Planned(
        _order(1, "kettle", 1, 4_500, GOOD_CARD, HOME),
        "shipped",
        "",
        "happy path; its payment is then re-published as a duplicate",
    ),
    Planned(_order(2, "teapot", 2, 6_000, GOOD_CARD, HOME), "shipped", "", "happy path"),
    Planned(
        _order(3, "kettle", 1, 4_500, DECLINED_CARD, HOME),
        "cancelled",
        "payment declined",
        "declined card: payments.failed, then orders.cancelled",
    ),
    Planned(
        _order(4, "globe", 1, 9_900, GOOD_CARD, HOME),
        "cancelled",
        "out of stock",
        "paid, then out of stock: refunded and cancelled (the saga compensates)",
    ),
    Planned(
        _order(5, "teapot", 1, 3_000, GOOD_CARD, "42 Nowhere Lane"),
        "shipped",
        "",
        "address without postcode: DLQ, then shipped after the fix and a redrive",
    ),
    Planned(
        _order(6, "kettle", 30, 135_000, GOOD_CARD, HOME),
        "cancelled",
        "over the limit",
        "amount over the gateway limit: declined, cancelled",
    ),
)


def expected_stock() -> dict[str, int]:
    """Stock after the run: the initial levels less what the shipped orders took, once each."""
    left = dict(STOCK)
    for planned in PLAN:
        if planned.status == "shipped":
            left[planned.order.item] -= planned.order.quantity
    return left
