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
from typing import Any, TypeVar

from shoal import App, Message, Retry, redrive
from shoal.app.resilience import dlq
from shoal.testing.clock import FakeClock

WAIT_S = 60.0


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, WAIT_S * 2))


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


class CoreScenarios:
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
            assert header(dead[1], dlq.EXCEPTION_TYPE) == "shoal.app.serdes.payload.SerdeError"
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


class ManualSleep:
    """A sleep that returns only once the test has moved the fake clock past its end, so a
    test decides exactly when a delayed record may go."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    async def __call__(self, delay_s: float) -> None:
        until = self.clock.monotonic_ms() + delay_s * 1000
        while self.clock.monotonic_ms() < until:  # noqa: ASYNC110 - the clock has no event
            await asyncio.sleep(0.005)


@dataclass
class Receipt:
    order_id: int
    total: float


class TransportSuite(CoreScenarios):
    """The whole suite: the core scenarios above and the resilience features below."""

    def test_retry_topics_do_not_block_and_end_in_the_dlq_with_the_original_coordinates(
        self, broker_url: str
    ) -> None:
        topic = topic_name("checkout")
        clock = FakeClock()
        deliveries: list[tuple[int, str, int]] = []  # (order id, topic delivered on, attempt)
        fail_times = {1: 2, 3: 99}  # order 1 fails twice then succeeds; order 3 always fails

        async def scenario() -> None:
            app = App(broker_url, clock=clock, sleep=ManualSleep(clock))

            @app.subscriber(topic, group="checkout", retry=Retry.with_topics(1_000, 5_000))
            async def check_out(order: Order, msg: Message) -> None:
                seen = sum(1 for o, _, _ in deliveries if o == order.id)
                deliveries.append((order.id, msg.topic, seen + 1))
                if seen < fail_times.get(order.id, 0):
                    raise Boom(f"gateway timeout for {order.id}")

            async with app:
                for n in (1, 2, 3):
                    await app.publish(topic, Order(n, "x"), key=f"k{n}")
                # Order 2 is handled while order 1 waits for its retry delay: nothing blocks.
                await wait_until(lambda: (2, topic, 1) in deliveries, "order 2")
                await wait_until(lambda: (3, topic, 1) in deliveries, "order 3's first try")
                assert (1, f"{topic}.retry.1", 2) not in deliveries
                clock.advance(1_000)
                await wait_until(lambda: (3, f"{topic}.retry.1", 2) in deliveries, "retry 1")
                assert (1, f"{topic}.retry.1", 2) in deliveries
                assert not [d for d in deliveries if d[1].endswith(".retry.2")]
                clock.advance(5_000)
                await wait_until(lambda: (1, f"{topic}.retry.2", 3) in deliveries, "order 1")
                (dead,) = await read_until(app, f"{topic}.dlq", 1)

            assert Order(**json.loads(dead.value)) == Order(3, "x")
            assert header(dead, dlq.ORIGINAL_TOPIC) == topic
            assert header(dead, dlq.ORIGINAL_OFFSET) == "2"
            assert header(dead, dlq.ATTEMPTS) == "3"
            assert header(dead, dlq.ORIGINAL_KEY) == "k3"
            assert (
                int(header(dead, dlq.LAST_FAILURE_MS)) - int(header(dead, dlq.FIRST_FAILURE_MS))
                == 6_000
            )
            assert not [k for k, _ in dead.headers if k.startswith("shoal.retry.")]
            assert sorted(o for o, _, _ in deliveries) == [1, 1, 1, 2, 3, 3, 3]

        run(scenario())

    def test_breaker_opens_pauses_consumption_half_opens_and_closes(self, broker_url: str) -> None:
        from shoal.app.resilience.breaker import Breaker

        topic = topic_name("payments")
        clock = FakeClock()
        sleep = FakeSleep(clock)
        calls: list[tuple[int, int]] = []  # (order id, monotonic ms of the call)
        recover_at_ms = 15_000.0  # the payment service is down for the first 15 s
        handled: list[int] = []
        rendered: list[bytes] = []

        async def scenario() -> None:
            app = App(broker_url, clock=clock, sleep=sleep, rng=random.Random(1))
            policy = Breaker(failures=3, window_s=60, open_s=10, trip_on=(ConnectionError,))

            @app.subscriber(
                topic, group="pay", retry=Retry(max_attempts=5, base_delay_ms=10), breaker=policy
            )
            async def pay(order: Order) -> None:
                calls.append((order.id, int(clock.monotonic_ms())))
                if clock.monotonic_ms() < recover_at_ms:
                    raise ConnectionError("payment service unreachable")
                handled.append(order.id)

            async with app:
                for n in range(1, 6):
                    await app.publish(topic, Order(n, "x"))
                await wait_until(lambda: len(handled) == 5, "every order")
                assert await app.transport.read_topic(f"{topic}.dlq") == []
                rendered.append(app.metrics.render()[0])

        run(scenario())
        assert handled == [1, 2, 3, 4, 5]
        # Three failures open the breaker; no call while it is open (10 s); the probe at
        # half-open fails (still down) and re-opens it; the next probe succeeds and closes it.
        failing = [t for _, t in calls if t < recover_at_ms]
        assert len(failing) == 4, calls
        opened_at = failing[2]
        assert failing[3] >= opened_at + 10_000
        assert next(t for _, t in calls if t >= recover_at_ms) >= failing[3] + 10_000
        assert b"shoal_breaker_state" in rendered[0]

    def test_idempotent_subscriber_applies_a_message_id_once(
        self, broker_url: str, tmp_path: Any
    ) -> None:
        from shoal.app.resilience.idempotency import SQLiteStore

        topic = topic_name("reserve")
        effects: list[int] = []

        async def scenario() -> None:
            store = SQLiteStore(tmp_path / "dedup.db")
            app = App(broker_url, idempotency_store=store)

            @app.subscriber(topic, group="inventory", idempotent=True)
            async def reserve(order: Order, msg: Message) -> None:
                assert msg.transaction is not None
                msg.transaction.execute("CREATE TABLE IF NOT EXISTS r (id INTEGER)")
                msg.transaction.execute("INSERT INTO r VALUES (?)", (order.id,))
                effects.append(order.id)

            async with app:
                same = {"shoal.message-id": "order-1-reserve"}
                await app.publish(topic, Order(1, "x"), headers=same)
                await app.publish(topic, Order(1, "x"), headers=same)  # a producer retry
                await app.publish(topic, Order(2, "y"))
                await app.publish(topic, Order(3, "z"))
                await wait_until(lambda: 3 in effects, "order 3")

            import sqlite3

            rows = sqlite3.connect(tmp_path / "dedup.db").execute("SELECT id FROM r").fetchall()
            assert sorted(r for (r,) in rows) == [1, 2, 3]

        run(scenario())
        assert effects == [1, 2, 3]

    def test_return_value_goes_to_the_output_topic_with_causation(self, broker_url: str) -> None:
        topic, out = topic_name("orders"), topic_name("receipts")
        got: list[tuple[Receipt, Message]] = []

        async def scenario() -> None:
            app = App(broker_url)

            @app.subscriber(topic, group="billing", output=out)
            async def bill(order: Order) -> Receipt | None:
                return None if order.id == 0 else Receipt(order.id, 9.5)

            @app.subscriber(out, group="mail")
            async def mail(receipt: Receipt, msg: Message) -> None:
                got.append((receipt, msg))

            async with app:
                await app.publish(topic, Order(0, "free"))  # None: nothing published
                source = await app.publish(topic, Order(4, "tea"), key="c4")
                await wait_until(lambda: len(got) == 1, "the receipt")
                assert len(await app.transport.read_topic(out)) == 1

            receipt, msg = got[0]
            assert receipt == Receipt(4, 9.5)
            assert msg.key == b"c4"
            assert msg.header("shoal.causation-id") == source.encode()
            assert msg.message_id is not None and msg.message_id != source

        run(scenario())

    def test_order_per_key_holds_under_concurrency_16(self, broker_url: str) -> None:
        topic = topic_name("ticks")
        seen: list[tuple[str, int]] = []
        in_flight = 0
        most_in_flight = 0
        keys = [f"sym{i}" for i in range(16)]
        per_key = 25

        async def scenario() -> None:
            app = App(broker_url)

            @app.subscriber(topic, group="ticks", concurrency=16)
            async def on_tick(tick: dict[str, Any]) -> None:
                nonlocal in_flight, most_in_flight
                in_flight += 1
                most_in_flight = max(most_in_flight, in_flight)
                await asyncio.sleep(random.random() / 500)
                seen.append((tick["key"], tick["n"]))
                in_flight -= 1

            async with app:
                for n in range(per_key):
                    for key in keys:
                        await app.publish(topic, {"key": key, "n": n}, key=key)
                await wait_until(lambda: len(seen) == per_key * len(keys), "every tick")

        run(scenario())
        for key in keys:
            assert [n for k, n in seen if k == key] == list(range(per_key)), key
        assert most_in_flight > 1  # keys really ran in parallel

    def test_stop_finishes_in_flight_commits_and_a_restart_neither_skips_nor_repeats(
        self, broker_url: str
    ) -> None:
        topic = topic_name("slow")
        first: list[int] = []
        second: list[int] = []

        async def one_run(sink: list[int], publish: bool, stop_after: int | None) -> None:
            app = App(broker_url)

            @app.subscriber(topic, group="slow")
            async def on_n(n: int) -> None:
                await asyncio.sleep(0.02)
                sink.append(n)

            async with app:
                if publish:
                    for n in range(30):
                        await app.publish(topic, n)
                if stop_after is not None:
                    await wait_until(lambda: len(sink) >= stop_after, "some records")
                else:
                    await wait_until(lambda: len(first) + len(sink) >= 30, "the rest")

        run(one_run(first, True, 5))
        run(one_run(second, False, None))
        assert first == list(range(len(first)))
        assert first + second == list(range(30))

    def test_hooks_run_around_the_subscribers_and_publishers_are_declared(
        self, broker_url: str
    ) -> None:
        topic = topic_name("hooks")
        events: list[str] = []

        async def scenario() -> None:
            app = App(broker_url, name="orders-service")
            out = app.publisher(topic, payload=Order, description="new orders")

            @app.on_startup
            async def connect() -> None:
                events.append("startup")

            @app.on_shutdown
            def disconnect() -> None:
                events.append("shutdown")

            @app.subscriber(topic, group="h")
            async def on_order(order: Order) -> None:
                events.append(f"order {order.id}")

            async with app:
                assert events == ["startup"]
                await out.publish(Order(5, "x"))
                await wait_until(lambda: "order 5" in events, "the order")
                await wait_until(app.live, "liveness")
                ready = False
                loop = asyncio.get_running_loop()
                deadline = loop.time() + WAIT_S
                while not ready and loop.time() < deadline:
                    ready = await app.ready()
                    await asyncio.sleep(0.05)
                assert ready
            assert events == ["startup", "order 5", "shutdown"]
            assert not await app.ready()
            assert [p.topic for p in app.publishers] == [topic]

        run(scenario())
