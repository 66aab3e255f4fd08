"""The shipping service: creates a shipment for every reserved order.

An address without a postcode cannot be shipped. The carrier reports that the same way as its
hiccups, so the service spends its few retries and the record lands in
``inventory.reserved.dlq`` with the failure in its headers. An operator corrects the address in
the :class:`AddressBook` and redrives the DLQ; the record comes back unchanged (same message
id) and now ships.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from examples.orders.events import InventoryReserved, ShipmentCreated, Topics
from examples.orders.timeline import Timeline
from shoal import App, Retry

SERVICE = "shipping"

POSTCODE: Final = re.compile(r"\b\d{5}\b")
SHIPPING_RETRY = Retry(max_attempts=3, base_delay_ms=20, max_delay_ms=100)
"""A few quick retries, then the DLQ: a record that fails three times needs a person."""


class AddressInvalid(Exception):
    """The carrier refused the address: retrying the same address will not help."""


@dataclass
class AddressBook:
    """Corrections to customers' addresses, keyed by order id (what support staff edit)."""

    corrections: dict[str, str] = field(default_factory=dict)

    def correct(self, order_id: str, address: str) -> None:
        self.corrections[order_id] = address

    def resolve(self, order_id: str, address: str) -> str:
        return self.corrections.get(order_id, address)


def create_app(
    broker_url: str, *, addresses: AddressBook, timeline: Timeline, topics: Topics
) -> App:
    app = App(broker_url, name="shipping", description="ships reserved orders")

    @app.subscriber(
        topics.inventory_reserved,
        group=topics.group("shipping.ship"),
        retry=SHIPPING_RETRY,
        dlq=True,
        output=topics.shipments_created,
    )
    async def ship(reserved: InventoryReserved) -> ShipmentCreated:
        address = addresses.resolve(reserved.order_id, reserved.address)
        if POSTCODE.search(address) is None:
            timeline.add(SERVICE, reserved.order_id, f"carrier refused address {address!r}")
            raise AddressInvalid(f"no postcode in {address!r}")
        tracking_id = f"TRK-{reserved.order_id}"
        timeline.add(SERVICE, reserved.order_id, f"shipment {tracking_id} to {address!r}")
        return ShipmentCreated(reserved.order_id, tracking_id, address)

    return app
