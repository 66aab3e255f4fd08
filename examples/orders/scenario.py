"""The whole story on one broker URL: four services, six orders, a duplicate and a redrive.

    run_scenario("embedded:///tmp/x", Path("/tmp/x"))      # or kafka://, amqp://, redis://...

It waits for outcomes (order states, DLQ records, processed counts) rather than for time;
``wait_s`` only stops a run that hangs. The :class:`Outcome` says what happened and lists every
way it differs from the plan.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from examples.orders import inventory_service, order_service, payment_service, shipping_service
from examples.orders import stock as stock_db
from examples.orders.events import PaymentSucceeded, Topics
from examples.orders.gateway import PaymentGateway
from examples.orders.order_state import OrderBook, OrderState
from examples.orders.plan import (
    DUPLICATE_ORDER,
    FIXED_ADDRESS,
    GATEWAY_OUTAGE_CALLS,
    OUT_OF_STOCK_ORDER,
    PLAN,
    POISON_ORDER,
    STOCK,
    expected_stock,
)
from examples.orders.shipping_service import AddressBook
from examples.orders.timeline import Timeline
from shoal import App, Message, redrive
from shoal.app import dlq_topic
from shoal.app.message import MESSAGE_ID_HEADER

WAIT_S_MAX: Final = 120.0
"""A hang guard, not a timing expectation: the scenario normally ends in a few seconds."""
POLL_S: Final = 0.05
SCENARIO: Final = "scenario"


class ScenarioTimeout(Exception):
    """A step's outcome did not come within the hang guard."""


@dataclass
class Outcome:
    orders: dict[str, OrderState]
    stock: dict[str, int]
    reservations: list[tuple[str, str, int]]
    dead_letters: list[Message]
    """The poison order's records in the shipping DLQ, read before the redrive."""
    redriven: int
    duplicate_id: str
    charges: dict[str, int]
    refunds: dict[str, int]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class Scenario:
    def __init__(
        self,
        broker_url: str,
        workdir: Path,
        *,
        namespace: str = "",
        wait_s: float = WAIT_S_MAX,
    ) -> None:
        self.broker_url = broker_url
        self.workdir = workdir
        self.topics = Topics(namespace)
        self.wait_s = wait_s
        self.timeline = Timeline()
        self.book = OrderBook()
        self.gateway = PaymentGateway(outage_calls=GATEWAY_OUTAGE_CALLS)
        self.addresses = AddressBook()
        self.db_path = workdir / "inventory.db"

    def _apps(self, url: str) -> tuple[App, App, App, App]:
        t, timeline = self.topics, self.timeline
        return (
            order_service.create_app(url, book=self.book, timeline=timeline, topics=t),
            payment_service.create_app(url, gateway=self.gateway, timeline=timeline, topics=t),
            inventory_service.create_app(
                url, db_path=self.db_path, levels=STOCK, timeline=timeline, topics=t
            ),
            shipping_service.create_app(url, addresses=self.addresses, timeline=timeline, topics=t),
        )

    async def run(self) -> Outcome:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # embedded://PATH: the four Apps share the one in-process broker on PATH.
        orders, payments, inventory, shipping = self._apps(self.broker_url)
        async with contextlib.AsyncExitStack() as running:
            for app in (orders, payments, inventory, shipping):
                await running.enter_async_context(app)
            payment_service.watch_gateway_breaker(payments, self.timeline)
            for planned in PLAN:
                await order_service.place_order(orders, self.topics, planned.order, self.timeline)
            dead = await self._until_settled(shipping)
            duplicate_id = await self._publish_duplicate(payments, inventory)
            redriven = await self._fix_and_redrive(shipping)
        return self._outcome(dead, redriven, duplicate_id)

    async def _until(
        self,
        check: Callable[[], bool | Awaitable[bool]],
        what: str,
        state: Callable[[], str] | None = None,
    ) -> None:
        """Wait until ``check`` holds; past ``wait_s`` raise, naming ``what`` and, when given,
        the ``state`` that was still wrong (so a hung run says where it stopped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while True:
            done = check()
            if inspect.isawaitable(done):
                done = await done
            if done:
                return
            if loop.time() > deadline:
                found = "" if state is None else f"; still {state()}"
                raise ScenarioTimeout(f"gave up waiting for {what}{found}")
            await asyncio.sleep(POLL_S)

    async def _poison_dead_letters(self, app: App) -> list[Message]:
        records = await app.transport.read_topic(dlq_topic(self.topics.inventory_reserved))
        return [r for r in records if r.key == POISON_ORDER.encode()]

    async def _until_settled(self, shipping: App) -> list[Message]:
        """Every order but the poison one at its end state, and the poison one dead-lettered."""
        settled = [p for p in PLAN if p.order.order_id != POISON_ORDER]

        def orders_done() -> bool:
            return all(self.book.status(p.order.order_id) == p.status for p in settled)

        def unsettled() -> str:
            return ", ".join(
                f"{p.order.order_id}: {self.book.status(p.order.order_id)} (not {p.status})"
                for p in settled
                if self.book.status(p.order.order_id) != p.status
            )

        await self._until(orders_done, "every order but the poison one to settle", unsettled)
        dead: list[Message] = []

        async def poison_dead() -> bool:
            dead[:] = await self._poison_dead_letters(shipping)
            return bool(dead)

        await self._until(poison_dead, f"{POISON_ORDER} in the shipping DLQ")
        self.timeline.add(SCENARIO, POISON_ORDER, "found in the DLQ")
        return dead

    async def _publish_duplicate(self, payments: App, inventory: App) -> str:
        """Publish the duplicate order's payment again with its original message id, as an
        at-least-once producer retrying after a lost ack would, and wait until the inventory
        has consumed it."""
        topic = self.topics.payments_succeeded
        records = await payments.transport.read_topic(topic)
        original = next(r for r in records if r.key == DUPLICATE_ORDER.encode())
        if original.message_id is None:
            raise RuntimeError(f"{topic} record without a shoal message id")
        payment = PaymentSucceeded(**json.loads(original.value))
        await payments.publish(
            topic, payment, key=original.key, headers={MESSAGE_ID_HEADER: original.message_id}
        )
        # Count what the topic holds now rather than assume one more: a broker that
        # deduplicates on the message id itself (NATS JetStream) drops the copy at once.
        published = len(await payments.transport.read_topic(topic))
        kept = "stored it" if published > len(records) else "dropped it as a duplicate"
        self.timeline.add(
            SCENARIO, DUPLICATE_ORDER, f"payment re-published with the same id; broker {kept}"
        )

        def consumed_all() -> bool:
            return processed(inventory, topic) >= published

        await self._until(consumed_all, "the inventory to consume the duplicate")
        return original.message_id

    async def _fix_and_redrive(self, shipping: App) -> int:
        self.addresses.correct(POISON_ORDER, FIXED_ADDRESS)
        self.timeline.add(SCENARIO, POISON_ORDER, f"address corrected to {FIXED_ADDRESS!r}")
        count = await redrive(
            shipping,
            dlq_topic(self.topics.inventory_reserved),
            where=lambda m: m.key == POISON_ORDER.encode(),
        )
        self.timeline.add(SCENARIO, POISON_ORDER, f"redrove {count} record(s) from the DLQ")
        await self._until(
            lambda: self.book.status(POISON_ORDER) == "shipped", f"{POISON_ORDER} to ship"
        )
        return count

    def _outcome(self, dead: list[Message], redriven: int, duplicate_id: str) -> Outcome:
        outcome = Outcome(
            orders=self.book.orders,
            stock=stock_db.levels(self.db_path),
            reservations=stock_db.reservations(self.db_path),
            dead_letters=dead,
            redriven=redriven,
            duplicate_id=duplicate_id,
            charges=dict(self.gateway.charges),
            refunds=dict(self.gateway.refunds),
        )
        outcome.problems = problems(outcome)
        return outcome


CONSUMED_FAMILIES = ("shoal_messages_processed", "shoal_messages_duplicate")


def processed(app: App, topic: str) -> int:
    """Records of ``topic`` consumed by ``app``: handled, or skipped as duplicates, from the
    App's own metrics (the public signal that a skipped duplicate was consumed)."""
    total = 0
    for family in app.metrics.families():
        if family.name not in CONSUMED_FAMILIES:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("topic") == topic:
                total += int(sample.value)
    return total


def problems(outcome: Outcome) -> list[str]:
    """Every way ``outcome`` differs from the plan; empty when the saga did what it should."""
    found = []
    for planned in PLAN:
        order_id = planned.order.order_id
        state = outcome.orders.get(order_id)
        status = None if state is None else state.status
        reason = (state.reason if state is not None else None) or ""
        if status != planned.status or planned.reason_contains not in reason:
            found.append(
                f"{order_id}: {status} ({reason or 'no reason'}), expected {planned.status}"
                + (f" ({planned.reason_contains})" if planned.reason_contains else "")
            )
    if outcome.stock != expected_stock():
        found.append(f"stock is {outcome.stock}, expected {expected_stock()}")
    reserved = [r for r in outcome.reservations if r[0] == DUPLICATE_ORDER]
    if len(reserved) != 1:
        found.append(f"{DUPLICATE_ORDER} reserved {len(reserved)} times, expected once")
    if not outcome.dead_letters:
        found.append(f"{POISON_ORDER} never reached the DLQ")
    if outcome.redriven != 1:
        found.append(f"redrive republished {outcome.redriven} records, expected 1")
    if sorted(outcome.refunds) != [OUT_OF_STOCK_ORDER]:
        found.append(f"refunds {sorted(outcome.refunds)}, expected [{OUT_OF_STOCK_ORDER!r}]")
    return found


async def run_scenario(
    broker_url: str, workdir: Path, *, namespace: str = "", wait_s: float = WAIT_S_MAX
) -> Outcome:
    """Run the scenario on ``broker_url``, keeping the inventory database in ``workdir``."""
    return await Scenario(broker_url, workdir, namespace=namespace, wait_s=wait_s).run()
