"""The life of an order, as the order service tracks it from events: one transition table.

    placed ──paid──▶ paid ──reserved──▶ reserved ──shipped──▶ shipped
      │                │
      └─payment_failed─┴─refunded──▶ cancelled (with a reason)

The order service reads each event topic with its own consumer, so events of one order can
arrive out of causal order (a payment before the order it pays for). An event whose
predecessor has not been applied yet raises :class:`NotYetApplicable`, which the subscriber
retries with backoff until the predecessor is in. An event already applied is a redelivery and
changes nothing. Anything else is a transition the saga never makes: :class:`IllegalTransition`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

Status = Literal["placed", "paid", "reserved", "shipped", "cancelled"]
Event = Literal["placed", "paid", "payment_failed", "reserved", "refunded", "shipped"]

TRANSITIONS: Final[dict[tuple[Status | None, Event], Status]] = {
    (None, "placed"): "placed",
    ("placed", "paid"): "paid",
    ("placed", "payment_failed"): "cancelled",
    ("paid", "reserved"): "reserved",
    ("paid", "refunded"): "cancelled",
    ("reserved", "shipped"): "shipped",
}

PROGRESS: Final[dict[Status | None, int]] = {
    None: 0,
    "placed": 1,
    "paid": 2,
    "reserved": 3,
    "shipped": 4,
}
"""How far along the happy path a status is; cancelled is off it."""


class NotYetApplicable(Exception):
    """The event's predecessor has not arrived yet: transient, retried."""


class IllegalTransition(Exception):
    """The saga never moves an order this way: a bug, or an event from somewhere else."""


@dataclass
class OrderState:
    order_id: str
    status: Status | None = None
    history: list[Event] = field(default_factory=list)
    reason: str | None = None
    detail: dict[str, str] = field(default_factory=dict)


def _source(event: Event) -> Status | None:
    return next(src for (src, ev) in TRANSITIONS if ev == event)


@dataclass
class OrderBook:
    """Every order's state, in memory (a real order service would keep it in a database)."""

    orders: dict[str, OrderState] = field(default_factory=dict)

    def apply(self, order_id: str, event: Event, *, reason: str | None = None) -> bool:
        """Apply ``event``; True if it changed the order, False for a redelivery."""
        order = self.orders.setdefault(order_id, OrderState(order_id))
        target = TRANSITIONS.get((order.status, event))
        if target is not None:
            order.status = target
            order.history.append(event)
            if reason is not None:
                order.reason = reason
            return True
        if event in order.history:
            return False
        source = _source(event)
        if order.status != "cancelled" and PROGRESS[order.status] < PROGRESS[source]:
            raise NotYetApplicable(f"{order_id}: {event} before {source}")
        raise IllegalTransition(f"{order_id}: {event} while {order.status}")

    def status(self, order_id: str) -> Status | None:
        order = self.orders.get(order_id)
        return None if order is None else order.status
