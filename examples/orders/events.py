"""The events the four services exchange, and the topics they travel on.

Payloads are dataclasses: shoal.app encodes them as JSON and decodes them for any handler whose
first parameter is annotated with the class. Amounts are integer cents, never floats.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    order_id: str
    customer: str
    item: str
    quantity: int
    amount_cents: int
    card: str
    address: str


@dataclass(frozen=True, slots=True)
class PaymentSucceeded:
    order_id: str
    charge_id: str
    amount_cents: int
    item: str
    quantity: int
    address: str


@dataclass(frozen=True, slots=True)
class PaymentFailed:
    order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class InventoryReserved:
    order_id: str
    item: str
    quantity: int
    address: str


@dataclass(frozen=True, slots=True)
class InventoryRejected:
    order_id: str
    charge_id: str
    amount_cents: int
    reason: str


@dataclass(frozen=True, slots=True)
class PaymentRefunded:
    order_id: str
    refund_id: str
    amount_cents: int
    reason: str


@dataclass(frozen=True, slots=True)
class ShipmentCreated:
    order_id: str
    tracking_id: str
    address: str


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic of the saga, under one ``namespace`` prefix.

    The prefix lets several runs share one broker (a long-lived Kafka, RabbitMQ or Redis)
    without reading each other's events: consumer groups and DLQs are per topic name.
    """

    namespace: str = ""

    def _name(self, base: str) -> str:
        return f"{self.namespace}{base}"

    @property
    def orders_placed(self) -> str:
        return self._name("orders.placed")

    @property
    def orders_cancelled(self) -> str:
        return self._name("orders.cancelled")

    @property
    def payments_succeeded(self) -> str:
        return self._name("payments.succeeded")

    @property
    def payments_failed(self) -> str:
        return self._name("payments.failed")

    @property
    def payments_refunded(self) -> str:
        return self._name("payments.refunded")

    @property
    def inventory_reserved(self) -> str:
        return self._name("inventory.reserved")

    @property
    def inventory_rejected(self) -> str:
        return self._name("inventory.rejected")

    @property
    def shipments_created(self) -> str:
        return self._name("shipments.created")

    def group(self, base: str) -> str:
        """A consumer group name in this namespace (a new namespace starts from offset 0)."""
        return self._name(base)
