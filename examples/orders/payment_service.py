"""The payment service: charges new orders, and refunds them when the saga must be undone.

The gateway is the fragile dependency. Its transient failures are retried in place with
exponential backoff; a run of them opens a circuit breaker named after the gateway, which
pauses both subscribers that call it (charges and refunds share the breaker by its name) until
a probe call gets through. A declined card is an answer, not a failure: it becomes a
``payments.failed`` event and the order is cancelled.
"""

from __future__ import annotations

from examples.orders.events import (
    InventoryRejected,
    OrderPlaced,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    Topics,
)
from examples.orders.gateway import GatewayUnavailable, PaymentGateway
from examples.orders.timeline import Timeline
from shoal import App, Message, Retry
from shoal.app import Breaker

SERVICE = "payments"

GATEWAY_RETRY = Retry(
    max_attempts=5, base_delay_ms=50, max_delay_ms=400, retry_on=(GatewayUnavailable,)
)
"""Only the gateway's timeouts are worth another try; any other error is a bug and goes to the
DLQ at once. While the breaker holds a record no attempt is used up, so 5 is plenty."""

GATEWAY_BREAKER = Breaker(
    name="payment-gateway", failures=3, window_s=30.0, open_s=0.3, trip_on=(GatewayUnavailable,)
)
"""Three timeouts within 30 s mean the gateway is down, not slow; open_s is short so the
scenario shows the half-open probe within a second (production would wait tens of seconds)."""


def create_app(
    broker_url: str, *, gateway: PaymentGateway, timeline: Timeline, topics: Topics
) -> App:
    app = App(broker_url, name="payments", description="charges orders and refunds them")
    app.publisher(topics.payments_failed, payload=PaymentFailed, description="declined charges")

    @app.subscriber(
        topics.orders_placed,
        group=topics.group("payments.charge"),
        retry=GATEWAY_RETRY,
        breaker=GATEWAY_BREAKER,
        output=topics.payments_succeeded,
    )
    async def charge(order: OrderPlaced, msg: Message) -> PaymentSucceeded | None:
        try:
            result = await gateway.charge(order.order_id, order.card, order.amount_cents)
        except GatewayUnavailable as exc:
            timeline.add(SERVICE, order.order_id, f"charge failed: {exc}")
            raise
        if not result.approved:
            timeline.add(SERVICE, order.order_id, f"declined: {result.reason}")
            failed = PaymentFailed(order.order_id, result.reason)
            # The other outcome: an id derived from the input's, as the App does for output.
            await app.publish(topics.payments_failed, failed, key=msg.key, caused_by=msg)
            return None
        timeline.add(SERVICE, order.order_id, f"charged {order.amount_cents / 100:.2f}")
        return PaymentSucceeded(
            order.order_id,
            result.charge_id,
            order.amount_cents,
            order.item,
            order.quantity,
            order.address,
        )

    @app.subscriber(
        topics.inventory_rejected,
        group=topics.group("payments.refund"),
        retry=GATEWAY_RETRY,
        breaker=GATEWAY_BREAKER,
        output=topics.payments_refunded,
    )
    async def refund(rejected: InventoryRejected) -> PaymentRefunded:
        """The saga's compensation: the order cannot be fulfilled, so its charge is undone."""
        refund_id = await gateway.refund(rejected.order_id, rejected.amount_cents)
        timeline.add(SERVICE, rejected.order_id, f"refunded {rejected.amount_cents / 100:.2f}")
        return PaymentRefunded(rejected.order_id, refund_id, rejected.amount_cents, rejected.reason)

    return app


def watch_gateway_breaker(app: App, timeline: Timeline) -> None:
    """Put the gateway breaker's state changes on the timeline. Call after ``app.start()``:
    the App installs its own (metrics, log) callbacks only on a breaker with none yet."""
    state = app.breakers.get(GATEWAY_BREAKER, owner=GATEWAY_BREAKER.name or "")
    state.on_change.append(
        lambda old, new: timeline.add(
            SERVICE, "-", f"breaker {GATEWAY_BREAKER.name}: {old} -> {new}"
        )
    )
