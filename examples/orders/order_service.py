"""The order service: accepts orders, and tracks each one's state from the other services' events.

It is the saga's memory: every event of an order moves it through :mod:`order_state`, and the
two events that end an order badly (a declined payment, a refund after a failed reservation)
are turned into ``orders.cancelled`` by returning an :class:`OrderCancelled` to that output.
"""

from __future__ import annotations

from examples.orders.events import (
    InventoryReserved,
    OrderCancelled,
    OrderPlaced,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    ShipmentCreated,
    Topics,
)
from examples.orders.order_state import Event, NotYetApplicable, OrderBook
from examples.orders.timeline import Timeline
from shoal import App, Retry

SERVICE = "orders"

OUT_OF_ORDER_RETRY = Retry(
    max_attempts=60, base_delay_ms=20, max_delay_ms=500, retry_on=(NotYetApplicable,)
)
"""An event that overtook its predecessor waits for it: the predecessor is already on the
broker, so it arrives within one consumer's lag. 60 attempts of at most 0.5 s outlast any lag
this scenario sees; anything else (an illegal transition) goes to the DLQ at once."""


async def place_order(app: App, topics: Topics, order: OrderPlaced, timeline: Timeline) -> str:
    """Accept ``order``: publish it to ``orders.placed`` (keyed by order id, so every event of
    one order stays in one partition of each topic); return its message id."""
    timeline.add(SERVICE, order.order_id, f"accepted: {order.quantity} x {order.item}")
    return await app.publish(topics.orders_placed, order, key=order.order_id)


def create_app(broker_url: str, *, book: OrderBook, timeline: Timeline, topics: Topics) -> App:
    app = App(broker_url, name="orders", description="accepts orders and tracks their state")
    app.publisher(topics.orders_placed, payload=OrderPlaced, description="orders accepted")

    def track(order_id: str, event: Event, text: str, reason: str | None = None) -> None:
        if book.apply(order_id, event, reason=reason):
            timeline.add(SERVICE, order_id, text)

    @app.subscriber(
        topics.orders_placed, group=topics.group("orders.placed"), retry=OUT_OF_ORDER_RETRY
    )
    async def on_placed(order: OrderPlaced) -> None:
        track(order.order_id, "placed", "order placed")

    @app.subscriber(
        topics.payments_succeeded, group=topics.group("orders.paid"), retry=OUT_OF_ORDER_RETRY
    )
    async def on_paid(payment: PaymentSucceeded) -> None:
        track(payment.order_id, "paid", f"paid ({payment.charge_id})")

    @app.subscriber(
        topics.payments_failed,
        group=topics.group("orders.declined"),
        retry=OUT_OF_ORDER_RETRY,
        output=topics.orders_cancelled,
    )
    async def on_declined(failed: PaymentFailed) -> OrderCancelled:
        reason = f"payment declined: {failed.reason}"
        track(failed.order_id, "payment_failed", f"cancelled ({reason})", reason)
        return OrderCancelled(failed.order_id, reason)

    @app.subscriber(
        topics.inventory_reserved, group=topics.group("orders.reserved"), retry=OUT_OF_ORDER_RETRY
    )
    async def on_reserved(reserved: InventoryReserved) -> None:
        track(reserved.order_id, "reserved", "stock reserved")

    @app.subscriber(
        topics.payments_refunded,
        group=topics.group("orders.refunded"),
        retry=OUT_OF_ORDER_RETRY,
        output=topics.orders_cancelled,
    )
    async def on_refunded(refund: PaymentRefunded) -> OrderCancelled:
        reason = f"{refund.reason}; payment refunded"
        track(refund.order_id, "refunded", f"cancelled ({reason})", reason)
        return OrderCancelled(refund.order_id, reason)

    @app.subscriber(
        topics.shipments_created, group=topics.group("orders.shipped"), retry=OUT_OF_ORDER_RETRY
    )
    async def on_shipped(shipment: ShipmentCreated) -> None:
        track(shipment.order_id, "shipped", f"shipped ({shipment.tracking_id})")
        book.orders[shipment.order_id].detail["tracking_id"] = shipment.tracking_id

    return app
