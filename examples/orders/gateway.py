"""A simulated card payment gateway: deterministic declines, and an outage of a few calls.

Declines are business outcomes (an answer), not exceptions. An outage is an exception
(:class:`GatewayUnavailable`) which the payment service retries and its circuit breaker counts.
Charges and refunds are keyed by order id, as a real gateway's idempotency key would be, so a
redelivered order is never charged twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DECLINED_CARD: str = "4000-0000-0000-0002"
"""The test card number every gateway sandbox declines."""
LIMIT_CENTS: int = 100_000
"""Charges above this are declined: the sandbox's per-transaction limit."""


class GatewayUnavailable(Exception):
    """The gateway did not answer (transient)."""


@dataclass(frozen=True, slots=True)
class Charge:
    approved: bool
    charge_id: str
    reason: str = ""


@dataclass
class PaymentGateway:
    outage_calls: int = 0
    """The first this many calls fail with GatewayUnavailable: a short outage at start."""
    calls: int = 0
    charges: dict[str, int] = field(default_factory=dict)
    refunds: dict[str, int] = field(default_factory=dict)

    def _call(self) -> None:
        self.calls += 1
        if self.calls <= self.outage_calls:
            raise GatewayUnavailable(f"gateway timeout (call {self.calls})")

    async def charge(self, order_id: str, card: str, amount_cents: int) -> Charge:
        self._call()
        if card == DECLINED_CARD:
            return Charge(False, "", f"card {card} declined")
        if amount_cents > LIMIT_CENTS:
            return Charge(False, "", f"amount {amount_cents / 100:.2f} over the limit")
        self.charges.setdefault(order_id, amount_cents)
        return Charge(True, f"ch_{order_id}")

    async def refund(self, order_id: str, amount_cents: int) -> str:
        self._call()
        if order_id not in self.charges:
            raise ValueError(f"no charge for {order_id} to refund")
        self.refunds.setdefault(order_id, amount_cents)
        return f"re_{order_id}"
