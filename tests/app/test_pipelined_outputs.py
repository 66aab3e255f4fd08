"""An at-least-once subscriber's outputs are pipelined on a transport that can send without
waiting (``send_nowait``, the Kafka producer): the lane handles its next record while an
output's delivery is still out, and a record's offset is committed only once its output was
delivered. A failed delivery leaves the record uncommitted and it is handled again.

The transport here holds every output's delivery until the test releases (or fails) it, which
makes "the next record is handled before the first output is acknowledged" observable."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from shoal import App
from shoal.app.message import Headers
from shoal.app.resilience.dlq import dlq_topic
from shoal.app.resilience.retry import Retry
from shoal.app.transport import PipelinedSend, TransportBusy, TransportError
from shoal.app.transports.memory import MemoryTransport

OUTPUT = "bills"
GROUP = "billing"
WAIT_S_MAX = 20.0
"""A bound on a hang, not a timing."""


@dataclass
class Held:
    topic: str
    value: bytes
    key: bytes | None
    headers: Headers
    delivered: asyncio.Future[None]


class HeldMemoryTransport(MemoryTransport):
    """Sends to OUTPUT are queued and delivered only when the test says so (as if a broker had
    not acknowledged them yet); other topics are written at once."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[Held] = []

    def send_nowait(
        self, topic: str, value: bytes, key: bytes | None, headers: Headers
    ) -> asyncio.Future[None]:
        held = Held(topic, value, key, headers, asyncio.get_running_loop().create_future())
        self.held.append(held)
        return held.delivered

    async def send(self, topic: str, value: bytes, key: bytes | None, headers: Headers) -> None:
        if topic == OUTPUT:
            await self.send_nowait(topic, value, key, headers)
        else:
            await super().send(topic, value, key, headers)

    async def release(self, i: int) -> None:
        held = self.held[i]
        await self.broker.append(held.topic, held.value, held.key, held.headers)
        held.delivered.set_result(None)

    def fail(self, i: int) -> None:
        self.held[i].delivered.set_exception(TransportError("not acknowledged"))

    def committed(self, topic: str) -> int:
        """The group's committed next-offset, summed over the topic's partitions."""
        return sum(
            off for (g, (t, _)), off in self.broker.committed.items() if (g, t) == (GROUP, topic)
        )


async def until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S_MAX
    while not done():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


def billing_app(transport: HeldMemoryTransport, handled: list[int]) -> App:
    app = App("memory://", lag_interval_s=0)
    app.transport = transport

    @app.subscriber("orders", group=GROUP, output=OUTPUT, concurrency=1, dlq=False)
    async def bill(order: dict[str, int]) -> dict[str, int]:
        handled.append(order["id"])
        return {"bill": order["id"]}

    return app


def test_the_next_record_is_handled_before_an_output_is_acknowledged() -> None:
    transport = HeldMemoryTransport()
    assert isinstance(transport, PipelinedSend)
    handled: list[int] = []
    app = billing_app(transport, handled)

    async def scenario() -> None:
        async with app:
            for i in (1, 2, 3):
                await app.publish("orders", {"id": i}, key="customer-7")  # one lane
            # Awaiting each output would stop the lane at the first one, never acknowledged.
            await until(lambda: handled == [1, 2, 3], f"handled {handled}")
            assert len(transport.held) == 3
            assert transport.committed("orders") == 0  # no output delivered: nothing committed

            await transport.release(0)
            await until(lambda: transport.committed("orders") == 1, "the first offset commits")
            # The third output is acknowledged before the second: the third offset waits.
            await transport.release(2)
            await asyncio.sleep(0.2)  # several fetch rounds (POLL_TIMEOUT_S 0.1) to commit in
            assert transport.committed("orders") == 1
            await transport.release(1)
            await until(lambda: transport.committed("orders") == 3, "all three commit")
        bills = [m.value for m in await transport.read_topic(OUTPUT)]
        assert bills == [b'{"bill":1}', b'{"bill":3}', b'{"bill":2}']  # release order

    asyncio.run(asyncio.wait_for(scenario(), WAIT_S_MAX * 2))
    assert app.metrics._published[OUTPUT] == 3  # counted once delivered


def test_a_failed_output_delivery_leaves_its_record_to_be_handled_again() -> None:
    transport = HeldMemoryTransport()
    handled: list[int] = []
    app = billing_app(transport, handled)

    async def scenario() -> None:
        async with app:
            for i in (1, 2):
                await app.publish("orders", {"id": i}, key="customer-7")
            await until(lambda: len(transport.held) == 2, "both outputs sent")
            transport.fail(0)
            await transport.release(1)
            # The consumer fails and a new one reads from the committed offset (none): both
            # records are handled again, in order; the first one's output is awaited this
            # time (its failure goes through retries and the DLQ), the lane holds meanwhile.
            await until(lambda: len(transport.held) == 3, f"handled again: {handled}")
            assert handled == [1, 2, 1]
            assert transport.committed("orders") == 0
            await transport.release(2)
            await until(lambda: len(transport.held) == 4, f"then the second: {handled}")
            assert handled == [1, 2, 1, 2]
            await transport.release(3)
            await until(lambda: transport.committed("orders") == 2, "both commit")
        bills = [m.value for m in await transport.read_topic(OUTPUT)]
        assert bills == [b'{"bill":2}', b'{"bill":1}', b'{"bill":2}']  # at least once

    asyncio.run(asyncio.wait_for(scenario(), WAIT_S_MAX * 2))


class PoisonMemoryTransport(MemoryTransport):
    """Outputs are pipelined; the output of order 1 can never be delivered (as a broker refuses
    a record too large, or a topic the app may not write): its delivery fails every time, at
    once, whether sent with or without waiting."""

    POISON = b'{"bill":1}'

    def send_nowait(
        self, topic: str, value: bytes, key: bytes | None, headers: Headers
    ) -> asyncio.Future[None]:
        if value == self.POISON:
            refused: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            refused.set_exception(TransportError("MSG_SIZE_TOO_LARGE"))
            return refused
        return asyncio.ensure_future(super().send(topic, value, key, headers))

    async def send(self, topic: str, value: bytes, key: bytes | None, headers: Headers) -> None:
        await self.send_nowait(topic, value, key, headers)


def test_an_output_that_never_delivers_takes_its_record_to_the_dlq_and_the_rest_goes_on() -> None:
    transport = PoisonMemoryTransport()
    handled: list[int] = []
    app = App("memory://", lag_interval_s=0)
    app.transport = transport
    attempts = 3

    @app.subscriber(
        "orders",
        group=GROUP,
        output=OUTPUT,
        concurrency=1,
        retry=Retry(max_attempts=attempts, base_delay_ms=0, max_delay_ms=0),
    )
    async def bill(order: dict[str, int]) -> dict[str, int]:
        handled.append(order["id"])
        return {"bill": order["id"]}

    def committed() -> int:
        return sum(
            off
            for (g, (t, _)), off in transport.broker.committed.items()
            if (g, t) == (GROUP, "orders")
        )

    async def scenario() -> None:
        async with app:
            for i in (1, 2, 3, 4):
                await app.publish("orders", {"id": i}, key="customer-7")  # one lane
            await until(lambda: committed() == 4, f"every offset commits; handled {handled}")
            dead = await transport.read_topic(dlq_topic("orders"))
            bills = [m.value for m in await transport.read_topic(OUTPUT)]
        # Once pipelined (its failure seen at once: its lane stops there), then awaited for
        # its attempts; the records after it once each, in order.
        assert handled == [1] + [1] * attempts + [2, 3, 4]
        assert [m.value for m in dead] == [b'{"id":1}']
        assert bills == [b'{"bill":2}', b'{"bill":3}', b'{"bill":4}']

    asyncio.run(asyncio.wait_for(scenario(), WAIT_S_MAX * 2))


def test_stop_does_not_wait_past_its_budget_for_an_output_never_acknowledged() -> None:
    transport = HeldMemoryTransport()
    handled: list[int] = []
    app = billing_app(transport, handled)

    async def scenario() -> None:
        await app.start()
        await app.publish("orders", {"id": 1}, key="customer-7")
        await until(lambda: len(transport.held) == 1, "the output is out")
        # App.stop cancels the consumer loop once its handlers' budget is spent.
        await app.stop(timeout_s=2.0)
        assert transport.committed("orders") == 0  # never delivered: handled again later

    asyncio.run(asyncio.wait_for(scenario(), WAIT_S_MAX))


class SharedQueueTransport(HeldMemoryTransport):
    """A send queue shared by every publisher of the app, full at QUEUE_MAX records not yet
    delivered (librdkafka's queue.buffering.max.messages): a send then raises TransportBusy,
    as the Kafka transport does on "Queue full"."""

    QUEUE_MAX = 4

    def send_nowait(
        self, topic: str, value: bytes, key: bytes | None, headers: Headers
    ) -> asyncio.Future[None]:
        if sum(not h.delivered.done() for h in self.held) >= self.QUEUE_MAX:
            raise TransportBusy("cannot produce now: Local: Queue full")
        return super().send_nowait(topic, value, key, headers)


def test_a_full_send_queue_holds_outputs_back_instead_of_failing_their_records() -> None:
    """Two subscribers' outputs fill the app's one send queue: the records that find it full
    wait for room (back-pressure); none is handled twice or dead-lettered (found in review:
    the queue-full error went to the retry policy, which ran healthy handlers again and sent
    their records to the DLQ)."""
    transport = SharedQueueTransport()
    app = App("memory://", lag_interval_s=0)
    app.transport = transport
    calls: list[str] = []
    retry = Retry(max_attempts=2, base_delay_ms=0, max_delay_ms=0)

    @app.subscriber("a", group="ga", output=OUTPUT, concurrency=1, retry=retry)
    async def first(order: dict[str, int]) -> dict[str, int]:
        calls.append(f"a{order['id']}")
        return order

    @app.subscriber("b", group="gb", output=OUTPUT, concurrency=1, retry=retry)
    async def second(order: dict[str, int]) -> dict[str, int]:
        calls.append(f"b{order['id']}")
        return order

    async def scenario() -> None:
        async with app:
            for i in range(3):
                await app.publish("a", {"id": i}, key="k")
            await until(lambda: len(transport.held) == 3, "a's outputs queued")
            for i in range(3):
                await app.publish("b", {"id": i}, key="k")
            await until(lambda: "b1" in calls, "b's second record handled (queue full)")
            await asyncio.sleep(0.2)  # b's output waits for room; nothing is retried meanwhile
            for i in range(3):
                await transport.release(i)
            await until(lambda: len(transport.held) == 6, "b's outputs queued once room came")
            for i in range(3, 6):
                await transport.release(i)
            committed = transport.broker.committed
            await until(
                lambda: (
                    sum(o for (g, (t, _)), o in committed.items() if (g, t) == ("gb", "b")) == 3
                ),
                "b committed to its end",
            )

    asyncio.run(asyncio.wait_for(scenario(), WAIT_S_MAX * 2))
    assert sorted(calls) == ["a0", "a1", "a2", "b0", "b1", "b2"]
    assert transport.broker.topic(dlq_topic("b"))[0] == []
