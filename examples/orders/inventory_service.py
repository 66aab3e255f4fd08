"""The inventory service: reserves stock for paid orders, exactly once per payment.

The subscriber is idempotent on the shoal message id with a :class:`SQLiteStore`, and the stock
lives in the same SQLite file. The handler writes through ``msg.transaction`` (the store's open
transaction), so the decrement and the dedup record commit together: a redelivered or
re-published payment finds its id recorded and is skipped, and a crash in between leaves
neither. Short stock is an answer (``inventory.rejected``), which the payment service
compensates with a refund.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping
from pathlib import Path

from examples.orders import stock
from examples.orders.events import InventoryRejected, InventoryReserved, PaymentSucceeded, Topics
from examples.orders.timeline import Timeline
from shoal import App, Message
from shoal.app.resilience.idempotency import SQLiteStore

SERVICE = "inventory"


def create_app(
    broker_url: str,
    *,
    db_path: Path,
    levels: Mapping[str, int],
    timeline: Timeline,
    topics: Topics,
) -> App:
    app = App(
        broker_url,
        name="inventory",
        description="reserves stock for paid orders",
        idempotency_store=SQLiteStore(db_path),
    )
    app.publisher(topics.inventory_rejected, payload=InventoryRejected, description="short stock")

    @app.on_startup
    async def create_stock() -> None:
        await asyncio.to_thread(stock.seed, db_path, levels)

    @app.subscriber(
        topics.payments_succeeded,
        group=topics.group("inventory.reserve"),
        idempotent=True,
        output=topics.inventory_reserved,
    )
    async def reserve(payment: PaymentSucceeded, msg: Message) -> InventoryReserved | None:
        conn = msg.transaction
        if not isinstance(conn, sqlite3.Connection):
            # Without the store's transaction the reservation would not be exactly-once.
            raise TypeError("the inventory service needs the SQLite idempotency store")
        if stock.reserve(conn, payment.order_id, payment.item, payment.quantity):
            timeline.add(SERVICE, payment.order_id, f"reserved {payment.quantity} x {payment.item}")
            return InventoryReserved(
                payment.order_id, payment.item, payment.quantity, payment.address
            )
        reason = f"out of stock: {payment.quantity} x {payment.item}"
        timeline.add(SERVICE, payment.order_id, reason)
        rejected = InventoryRejected(
            payment.order_id, payment.charge_id, payment.amount_cents, reason
        )
        # The other outcome: an id derived from the input's, as the App does for output.
        await app.publish(topics.inventory_rejected, rejected, key=msg.key, caused_by=msg)
        return None

    return app
