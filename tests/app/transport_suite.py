"""The abstract transport suite: every transport of shoal.app must pass it.

A subclass provides the ``broker_url`` fixture; the URL must let two Apps of one test share a
broker (``memory://NAME``, ``kafka://HOST:PORT``). Retry timing runs on a fake clock and a fake
sleep, so the delays asserted are the ones configured, never wall-clock measurements. The
waits below are hang guards only.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from shoal import App, Message, Retry, redrive
from shoal.app import dlq
from shoal.testing.clock import FakeClock

WAIT_S = 60.0


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, WAIT_S * 2))


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def read_until(app: App, topic: str, count: int) -> list[Message]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        records = await app.transport.read_topic(topic)
        if len(records) >= count:
            return records
        if loop.time() > deadline:
            raise AssertionError(f"{topic} has {len(records)} records, expected {count}")
        await asyncio.sleep(0.05)


class FakeSleep:
    """Records each requested delay and moves the fake clock by it instead of waiting."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.delays_s: list[float] = []

    async def __call__(self, delay_s: float) -> None:
        self.delays_s.append(delay_s)
        self.clock.advance(round(delay_s * 1000))
        await asyncio.sleep(0)


@dataclass
class Order:
    id: int
    item: str


class Boom(Exception):
    pass


def topic_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def header(msg: Message, name: str) -> str:
    raw = msg.header(name)
    assert raw is not None, f"header {name} missing"
    return raw.decode()


class TransportSuite:
    def test_publish_and_consume_typed(self, broker_url: str) -> None:
        orders, texts, blobs, dicts = (
            topic_name("orders"),
            topic_name("t"),
            topic_name("b"),
            topic_name("d"),
        )
        got: list[tuple[Order, Message]] = []
        other: list[object] = []

        async def scenario() -> None:
            app = App(broker_url)

            @app.subscriber(orders, group="billing")
            async def on_order(order: Order, msg: Message) -> None:
                got.append((order, msg))

            @app.subscriber(texts, group="g")
            async def on_text(text: str) -> None:
                other.append(text)

            @app.subscriber(blobs, group="g")
            async def on_blob(blob: bytes) -> None:
                other.append(blob)

            @app.subscriber(dicts, group="g")
            async def on_dict(doc: dict[str, Any]) -> None:
                other.append(doc)

            async with app:
                ids = [
                    await app.publish(orders, Order(1, "tea"), key="c1", headers={"trace": "t1"}),
                    await app.publish(orders, Order(2, "cake"), key=b"c1"),
                ]
                await app.publish(texts, "héllo")
                await app.publish(blobs, b"\x00\xff")
                await app.publish(dicts, {"a": [1, 2]})
                await wait_until(lambda: len(got) == 2 and len(other) == 3, "deliveries")

            assert [o for o, _ in got] == [Order(1, "tea"), Order(2, "cake")]
            first, second = got[0][1], got[1][1]
            assert (first.topic, first.key, second.key) == (orders, b"c1", b"c1")
            assert first.partition == second.partition
            assert second.offset == first.offset + 1
            assert first.header("trace") == b"t1"
            assert [first.message_id, second.message_id] == ids
            assert len(set(ids)) == 2
            assert sorted(map(repr, other)) == sorted(
                map(repr, ["héllo", b"\x00\xff", {"a": [1, 2]}])
            )

        run(scenario())

    def test_poison_message_reaches_dlq_with_every_header_then_redrive_delivers(
        self, broker_url: str
    ) -> None:
        topic = topic_name("payments")
        clock = FakeClock()
        sleep = FakeSleep(clock)
        attempts: list[Order] = []
        fixed = False
        done: list[Message] = []

        async def scenario() -> None:
            nonlocal fixed
            app = App(broker_url, clock=clock, sleep=sleep, rng=random.Random(7))

            @app.subscriber(
                topic,
                group="pay",
                retry=Retry(max_attempts=4, base_delay_ms=100, max_delay_ms=250),
                dlq=True,
            )
            async def pay(order: Order, msg: Message) -> None:
                attempts.append(order)
                if not fixed:
                    raise Boom(f"card declined for order {order.id}")
                done.append(msg)

            async with app:
                before_ms = clock.now_ms()
                msg_id = await app.publish(topic, Order(7, "tv"), key="cust-9", headers={"x": "1"})
                (dead,) = await read_until(app, dlq.dlq_topic(topic), 1)
                assert len(attempts) == 4
                assert len(sleep.delays_s) == 3

                assert dead.topic == f"{topic}.dlq"
                assert dead.key == b"cust-9"
                assert Order(**json.loads(dead.value)) == Order(7, "tv")
                assert header(dead, dlq.ORIGINAL_TOPIC) == topic
                assert header(dead, dlq.ORIGINAL_PARTITION) == "0"
                assert header(dead, dlq.ORIGINAL_OFFSET) == "0"
                assert header(dead, dlq.ORIGINAL_KEY) == "cust-9"
                assert int(header(dead, dlq.ORIGINAL_TIMESTAMP_MS)) > 0
                assert header(dead, dlq.EXCEPTION_TYPE) == f"{Boom.__module__}.Boom"
                assert header(dead, dlq.EXCEPTION_MESSAGE) == "card declined for order 7"
                tb = header(dead, dlq.EXCEPTION_TRACEBACK)
                assert "in pay" in tb and "Boom: card declined" in tb
                assert header(dead, dlq.ATTEMPTS) == "4"
                first_ms = int(header(dead, dlq.FIRST_FAILURE_MS))
                last_ms = int(header(dead, dlq.LAST_FAILURE_MS))
                assert first_ms == before_ms
                assert last_ms == first_ms + sum(round(d * 1000) for d in sleep.delays_s)
                assert dead.header("x") == b"1"
                assert dead.message_id == msg_id

                fixed = True
                assert await redrive(app, f"{topic}.dlq") == 1
                await wait_until(lambda: len(done) == 1, "the redriven record")

            again = done[0]
            assert again.topic == topic and again.key == b"cust-9"
            assert again.message_id == msg_id and again.header("x") == b"1"
            assert not [k for k, _ in again.headers if k.startswith(dlq.PREFIX)]
            assert len(attempts) == 5

        run(scenario())

    def test_transient_failure_succeeds_after_backoff_as_configured(self, broker_url: str) -> None:
        topic = topic_name("stock")
        clock = FakeClock()
        sleep = FakeSleep(clock)
        retry = Retry(max_attempts=5, base_delay_ms=200, max_delay_ms=500, retry_on=(Boom,))
        calls: list[int] = []

        async def scenario() -> None:
            app = App(broker_url, clock=clock, sleep=sleep, rng=random.Random(42))

            @app.subscriber(topic, group="stock", retry=retry)
            async def reserve(order: Order) -> None:
                calls.append(order.id)
                if len(calls) <= 3:
                    raise Boom("inventory service unavailable")

            async with app:
                await app.publish(topic, Order(3, "lamp"))
                await wait_until(lambda: len(calls) == 4, "the fourth attempt")
                assert await app.transport.read_topic(f"{topic}.dlq") == []

        run(scenario())
        expected = random.Random(42)
        ceilings_ms = [200, 400, 500]  # base * 2^(n-1), capped at max_delay_ms
        assert sleep.delays_s == [expected.uniform(0, c) / 1000 for c in ceilings_ms]
        assert calls == [3, 3, 3, 3]

    def test_exception_not_retried_goes_to_dlq_after_one_attempt(self, broker_url: str) -> None:
        topic = topic_name("refunds")
        sleep = FakeSleep(FakeClock())

        async def scenario() -> None:
            app = App(broker_url, sleep=sleep)

            @app.subscriber(topic, group="r", retry=Retry(max_attempts=5, retry_on=(Boom,)))
            async def refund(order: Order) -> None:
                raise KeyError("no such account")

            async with app:
                await app.publish(topic, Order(1, "x"))
                await app.publish(topic, b"not json")  # undecodable: straight to the DLQ
                dead = await read_until(app, f"{topic}.dlq", 2)
            assert [header(d, dlq.ATTEMPTS) for d in dead] == ["1", "1"]
            assert header(dead[0], dlq.EXCEPTION_TYPE) == "builtins.KeyError"
            assert header(dead[1], dlq.EXCEPTION_TYPE) == "shoal.app.serde.SerdeError"
            assert sleep.delays_s == []

        run(scenario())

    def test_order_per_key_is_preserved_with_concurrency_1(self, broker_url: str) -> None:
        topic = topic_name("events")
        seen: list[tuple[str, int]] = []
        keys = ["a", "b", "c"]
        per_key = 30

        async def scenario() -> None:
            app = App(broker_url)

            @app.subscriber(topic, group="ordered", concurrency=1)
            async def on_event(event: dict[str, Any]) -> None:
                await asyncio.sleep(random.random() / 1000)
                seen.append((event["key"], event["n"]))

            async with app:
                for n in range(per_key):
                    for key in keys:
                        await app.publish(topic, {"key": key, "n": n}, key=key)
                await wait_until(lambda: len(seen) == per_key * len(keys), "every event")

        run(scenario())
        for key in keys:
            assert [n for k, n in seen if k == key] == list(range(per_key))

    def test_a_restarted_app_resumes_after_what_it_committed(self, broker_url: str) -> None:
        topic = topic_name("ledger")
        first: list[int] = []
        second: list[int] = []

        async def one_run(sink: list[int], publish: range, expect: int) -> None:
            app = App(broker_url)

            @app.subscriber(topic, group="ledger")
            async def on_entry(n: int) -> None:
                sink.append(n)

            async with app:
                for n in publish:
                    await app.publish(topic, n)
                await wait_until(lambda: len(sink) == expect, "the entries")

        run(one_run(first, range(5), 5))
        run(one_run(second, range(5, 8), 3))
        assert first == [0, 1, 2, 3, 4]
        assert second == [5, 6, 7]
