"""Queue subscribers (``queue=True``, issue 16): a Kafka share group under the framework, on
shoal's broker (and the release/reject test on Apache Kafka 4.4 too).

Two instances of one app share a one-partition topic (a consumer group would give it to one
of them); a failing record is released and redelivered with its delivery count visible to the
handler; a record that keeps failing is rejected to the DLQ after ``retry.max_attempts``
deliveries and never delivered again. Retry backoff runs on a fake sleep.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal import App, Message, Retry
from shoal.app.resilience import dlq
from shoal.app.resilience.breaker import Breaker
from shoal.app.transport import TransportError
from shoal.embedded import EmbeddedBroker
from shoal.testing.clock import FakeClock
from tests.app.transports.transport_suite import FakeSleep, read_until, run, wait_until
from tests.peers.kafka_peer import KafkaPeer

pytestmark = pytest.mark.integration

SPREAD_ROUNDS_MAX = 200
"""Records published one by one until both instances have handled one (a bound, not a time)."""
READY_POLLS_MAX = 600


@pytest.fixture(scope="module")
def shoal_queue_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(str(tmp_path_factory.mktemp("queue-broker"))).start()
    yield broker
    broker.stop()


WORK_QUEUES = ("amqp", "redis", "nats")
"""The work-queue transports: their queue consumers are the group's consumers settling each
delivery on its own; the lock timeout is short here (Redis claim_idle_ms, JetStream
ack_wait_s; RabbitMQ returns a dead consumer's deliveries when its connection drops)."""


def work_queue_url(request: pytest.FixtureRequest, kind: str) -> str:
    if kind == "amqp":
        return str(request.getfixturevalue("rabbitmq_server").url)
    if kind == "redis":
        return f"{request.getfixturevalue('redis_server').url}/0?claim_idle_ms=1000"
    return f"{request.getfixturevalue('nats_server').url}?ack_wait_s=1"


@pytest.fixture(
    params=[
        "memory",
        "shoal",
        pytest.param("kafka", marks=pytest.mark.peer),
        *(pytest.param(kind, marks=pytest.mark.peer) for kind in WORK_QUEUES),
    ]
)
def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return f"memory://queue-{uuid.uuid4().hex[:8]}"  # named: the test's Apps share it
    if request.param in WORK_QUEUES:
        return work_queue_url(request, request.param)
    if request.param == "shoal":
        broker: EmbeddedBroker = request.getfixturevalue("shoal_queue_broker")
        return f"kafka://{broker.bootstrap_servers}"
    peer: KafkaPeer = request.getfixturevalue("kafka_peer")
    return f"kafka://{peer.bootstrap_servers}"


async def _ready(app: App) -> None:
    """Ready once its share consumer has polled (a hang guard bounds the wait)."""
    for _ in range(READY_POLLS_MAX):
        if await app.ready():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{app.name} never became ready")


def _names() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"queue-{suffix}", f"queue-group-{suffix}"


def test_instances_of_a_queue_share_one_partition(shoal_queue_broker: EmbeddedBroker) -> None:
    # On shoal: not Kafka 4.4, for the CI budget (a Kafka share consumer's first assignment
    # waits a heartbeat interval, 5 s), nor memory://, whose waiting consumers wake in an order
    # that may favour one every time; the DLQ test runs on all three.
    broker_url = f"kafka://{shoal_queue_broker.bootstrap_servers}"
    topic, group = _names()
    handled: list[tuple[int, str, int | None]] = []

    def instance(number: int) -> App:
        app = App(broker_url, name=f"worker-{number}", lag_interval_s=0)

        @app.subscriber(topic, group=group, queue=True)
        async def work(job: str, msg: Message) -> None:
            handled.append((number, job, msg.delivery_count))

        return app

    async def scenario() -> None:
        first, second = instance(1), instance(2)
        async with first, second:
            await _ready(first)
            await _ready(second)
            published = 0
            while {n for n, _, _ in handled} != {1, 2} and published < SPREAD_ROUNDS_MAX:
                await first.publish(topic, f"job-{published}")
                published += 1
                await wait_until(lambda n=published: len(handled) == n, f"job-{published - 1}")
            await asyncio.sleep(0.2)  # a duplicate delivery would show up here
        jobs = [job for _, job, _ in handled]
        assert sorted(jobs) == sorted(f"job-{i}" for i in range(published)), "each job once"
        assert {n for n, _, _ in handled} == {1, 2}, "both instances get records of one partition"
        assert {count for _, _, count in handled} == {1}

    run(scenario())


def test_failures_are_released_redelivered_and_rejected_to_the_dlq(broker_url: str) -> None:
    topic, group = _names()
    clock = FakeClock()
    sleep = FakeSleep(clock)
    app = App(broker_url, clock=clock, sleep=sleep, lag_interval_s=0)
    seen: list[tuple[str, int | None]] = []

    @app.subscriber(topic, group=group, queue=True, retry=Retry(max_attempts=3, base_delay_ms=100))
    async def work(job: str, msg: Message) -> None:
        seen.append((job, msg.delivery_count))
        if job == "flaky" and msg.delivery_count == 1:
            raise ConnectionError("the first delivery fails")
        if job == "poison":
            raise ValueError("never processable")

    async def scenario() -> None:
        async with app:
            for job in ("flaky", "poison", "fine"):
                await app.publish(topic, job)
            dead = await read_until(app, dlq.dlq_topic(topic), 1)
            await wait_until(lambda: ("flaky", 2) in seen and ("fine", 1) in seen, "retries")
            # A later record is handled after the poison one was settled: it did not come back.
            await app.publish(topic, "sentinel")
            await wait_until(lambda: ("sentinel", 1) in seen, "the sentinel")
        assert [value for value in (m.value for m in dead)] == [b"poison"]
        assert dead[0].header(dlq.ATTEMPTS) == b"3"

    run(scenario())
    assert [count for job, count in seen if job == "poison"] == [1, 2, 3]
    assert [count for job, count in seen if job == "flaky"] == [1, 2]
    assert [count for job, count in seen if job == "fine"] == [1]
    assert len(sleep.delays_s) == 3  # a backoff before each release: flaky once, poison twice


def test_an_open_breaker_holds_the_queue_and_the_record_comes_back(
    shoal_queue_broker: EmbeddedBroker,
) -> None:
    """The dependency fails: the breaker opens, the record is released, and its next delivery
    waits at the breaker (the queue consumer paused, records in flight) until it lets a probe
    through; then it succeeds. The consumer is not failed by the wait."""
    topic, group = _names()
    clock = FakeClock()
    app = App(
        f"kafka://{shoal_queue_broker.bootstrap_servers}",
        clock=clock,
        sleep=FakeSleep(clock),
        lag_interval_s=0,
    )
    seen: list[int | None] = []

    @app.subscriber(topic, group=group, queue=True, breaker=Breaker(failures=1, open_s=5.0))
    async def work(job: str, msg: Message) -> None:
        seen.append(msg.delivery_count)
        if len(seen) == 1:
            raise ConnectionError("the dependency is down")

    async def scenario() -> None:
        async with app:
            await app.publish(topic, "job")
            await wait_until(lambda: len(seen) == 2, "the second delivery")
            assert app.live()

    run(scenario())
    assert seen == [1, 2]
    assert app.breakers.get(Breaker(failures=1, open_s=5.0), work.__qualname__).state == "closed"


class _WithoutQueues:
    """A transport as one without queues looks (RabbitMQ, Redis, NATS today)."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        if name == "queue_consumer":
            raise AttributeError(name)
        return getattr(self._inner, name)


def test_queue_refuses_what_it_cannot_do() -> None:
    app = App("memory://queue-refusal")
    app.replace_transport(_WithoutQueues(app.transport))  # type: ignore[arg-type]

    @app.subscriber("jobs", group="g", queue=True)
    async def work(job: str) -> None:
        del job

    with pytest.raises(TransportError, match="queue=True needs a transport with queues"):
        run(app.start())
    with pytest.raises(ValueError, match="exactly_once"):
        app.subscriber("jobs", group="g", queue=True, exactly_once=True)
    with pytest.raises(ValueError, match="no retry topics"):
        app.subscriber("jobs", group="g", queue=True, retry=Retry.with_topics(1_000))


def test_a_kafka_queue_fetch_takes_at_most_fetch_records_max(
    shoal_queue_broker: EmbeddedBroker,
) -> None:
    """A fetch is settled as a whole, within the record lock: the share consumer asks for
    FETCH_RECORDS_MAX records a poll, not librdkafka's 500 (the broker URL may still set it).
    The records are stored a batch each: a broker acquiring as Kafka 4.4 does by default
    (batch_optimized, all that librdkafka's ShareFetch v1 asks) hands out the rest of a stored
    batch its MaxRecords falls in, so a fetch may hold more where producers batch."""
    from confluent_kafka import Producer

    from shoal.app.transports.kafka_queue import FETCH_RECORDS_MAX, KafkaQueueConsumer

    topic, group = f"bounded-{uuid.uuid4()}", f"bounded-{uuid.uuid4()}"
    producer = Producer(
        {"bootstrap.servers": shoal_queue_broker.bootstrap_servers, "batch.num.messages": 1}
    )
    for i in range(3 * FETCH_RECORDS_MAX):
        producer.produce(topic, str(i).encode())
    assert producer.flush(30) == 0

    fetched: list[int] = []

    async def first_fetch() -> None:
        config = {"bootstrap.servers": shoal_queue_broker.bootstrap_servers}
        consumer = KafkaQueueConsumer(config, [topic], group)
        await consumer.start()
        try:
            for _ in range(100):
                if records := await consumer.fetch(10_000, 0.5):
                    fetched.append(len(records))
                    return
        finally:
            await consumer.close()

    run(first_fetch())
    assert fetched and 0 < fetched[0] <= FETCH_RECORDS_MAX, fetched


@pytest.fixture(params=["shoal", pytest.param("kafka", marks=pytest.mark.peer)])
def kafka_url(request: pytest.FixtureRequest) -> str:
    if request.param == "shoal":
        broker: EmbeddedBroker = request.getfixturevalue("shoal_queue_broker")
        return f"kafka://{broker.bootstrap_servers}"
    peer: KafkaPeer = request.getfixturevalue("kafka_peer")
    return f"kafka://{peer.bootstrap_servers}"


def _set_group_config(bootstrap: str, group: str, name: str, value: str) -> None:
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )

    change = ConfigResource(
        ResourceType.GROUP,
        group,
        incremental_configs=[ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)],
    )
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.incremental_alter_configs([change])[change].result(30)


def test_retry_attempts_above_the_share_delivery_limit_are_refused_at_start(
    kafka_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker archives a record released share.delivery.count.limit times: with a lower
    limit than retry.max_attempts a failing record would never reach the DLQ, so start refuses
    (the group's limit read with DescribeConfigs), or warns when the subscriber opted in."""
    topic, group = _names()
    _set_group_config(kafka_url.removeprefix("kafka://"), group, "share.delivery.count.limit", "3")

    def app_with(retry: Retry) -> App:
        app = App(kafka_url, lag_interval_s=0)

        @app.subscriber(topic, group=group, queue=True, retry=retry)
        async def work(job: str) -> None:
            del job

        return app

    refused = app_with(Retry(max_attempts=5))
    with pytest.raises(TransportError) as refusal:
        run(refused.start())
    message = str(refusal.value)
    assert "retry.max_attempts=5" in message and "after 3 deliveries" in message
    assert "share.delivery.count.limit" in message and "queue_limit_below_ok" in message

    async def starts_and_stops(app: App) -> None:
        async with app:
            pass

    run(starts_and_stops(app_with(Retry(max_attempts=3))))  # at the limit: the DLQ is reached
    caplog.clear()
    with caplog.at_level("WARNING", logger="shoal.app"):
        run(starts_and_stops(app_with(Retry(max_attempts=5, queue_limit_below_ok=True))))
    assert any("after 3 deliveries" in r.getMessage() for r in caplog.records)


CRASH_LINE_WAIT_S = 60.0
"""Bound on the child's start-up and on its handler getting the record (a hang guard)."""


@pytest.fixture(scope="module")
def short_lock_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """shoal with a 1 s record lock (a group config may not go below Kafka's 15 s minimum)."""
    broker = EmbeddedBroker(
        str(tmp_path_factory.mktemp("short-lock-broker")),
        group_share_record_lock_duration_ms=1000,
    ).start()
    yield broker
    broker.stop()


def _crash_url_of(request: pytest.FixtureRequest, kind: str) -> str:
    if kind == "shoal":
        return f"kafka://{request.getfixturevalue('short_lock_broker').bootstrap_servers}"
    return work_queue_url(request, kind)


async def _line(child: subprocess.Popen[str], expected: str) -> str:
    """The child's next stdout line, which must start with ``expected`` (bounded wait)."""
    assert child.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), CRASH_LINE_WAIT_S)
    assert line.startswith(expected), f"child said {line!r}, expected {expected!r}"
    return line.strip()


@pytest.mark.parametrize("kind", ["shoal", *WORK_QUEUES])
def test_a_killed_instance_s_record_comes_back_to_another_after_the_lock_timeout(
    request: pytest.FixtureRequest, kind: str
) -> None:
    """An App instance SIGKILLed while its handler holds a record: another instance of the
    group gets the record after the queue's lock timeout (RabbitMQ: when the dead instance's
    connection drops), with delivery count 2, once."""
    if kind != "shoal":
        request.applymarker(pytest.mark.peer)
    url = _crash_url_of(request, kind)
    topic, group = _names()
    handled: list[tuple[str, int | None]] = []
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("queue_crash_child.py")), url, topic, group],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )

    async def scenario() -> None:
        try:
            await _line(child, "ready")
            publisher = App(url, name="publisher", lag_interval_s=0)
            async with publisher:
                await publisher.publish(topic, "job")
            assert await _line(child, "holding") == "holding job 1"
        finally:
            child.kill()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
        survivor = App(url, name="survivor", lag_interval_s=0)

        @survivor.subscriber(topic, group=group, queue=True)
        async def work(job: str, msg: Message) -> None:
            handled.append((job, msg.delivery_count))

        async with survivor:
            await wait_until(lambda: bool(handled), "the dead instance's record")
            # A later record is handled once too, and the first one did not come back.
            await survivor.publish(topic, "after")
            await wait_until(lambda: ("after", 1) in handled, "a later record")

    run(scenario())
    assert handled == [("job", 2), ("after", 1)]


@pytest.mark.parametrize(
    ("kind", "query"),
    [pytest.param("amqp", "?delivery_limit=2", marks=pytest.mark.peer),
     pytest.param("nats", "?max_deliver=3", marks=pytest.mark.peer)],
)  # fmt: skip
def test_work_queue_delivery_limits_are_checked_at_start(
    request: pytest.FixtureRequest, kind: str, query: str
) -> None:
    """RabbitMQ's x-delivery-limit (returns: 2 allows 3 deliveries) and JetStream's
    max_deliver (3) are the queue's own limits: retry.max_attempts=4 is refused, 3 starts."""
    base = work_queue_url(request, kind).split("?")[0]
    topic, group = _names()

    def app_with(retry: Retry) -> App:
        app = App(base + query, lag_interval_s=0)

        @app.subscriber(topic, group=group, queue=True, retry=retry)
        async def work(job: str) -> None:
            del job

        return app

    with pytest.raises(TransportError, match=r"retry\.max_attempts=4 .* after 3 deliveries"):
        run(app_with(Retry(max_attempts=4)).start())

    async def starts_and_stops(app: App) -> None:
        async with app:
            pass

    run(starts_and_stops(app_with(Retry(max_attempts=3))))


SHORT_LOCK_MS = 1000
"""short_lock_broker's record lock."""
LOCK_PERIODS_OPEN = 3
"""The breaker below stays open this many record locks (and a half) of real time."""


def test_an_open_breaker_acquires_nothing_so_no_delivery_is_counted(
    short_lock_broker: EmbeddedBroker,
) -> None:
    """The breaker opens on a record's failure and stays open for several record locks (real
    time: the broker's locks run on its own clock). Meanwhile the queue consumer fetches
    nothing: the failed record is delivered again once, as the probe, with delivery count 2
    (before, its next delivery waited at the breaker past its lock, which the broker counted,
    and its late outcome was refused, so it ran a third time), and a record published during
    the outage is delivered once, with delivery count 1, after the probe."""
    topic, group = _names()
    app = App(f"kafka://{short_lock_broker.bootstrap_servers}", lag_interval_s=0)
    breaker = Breaker(failures=1, open_s=(LOCK_PERIODS_OPEN + 0.5) * SHORT_LOCK_MS / 1000)
    seen: list[tuple[str, int | None]] = []

    @app.subscriber(topic, group=group, queue=True, breaker=breaker)
    async def work(job: str, msg: Message) -> None:
        seen.append((job, msg.delivery_count))
        if seen == [("trip", 1)]:
            raise ConnectionError("the dependency is down")

    async def scenario() -> None:
        async with app:
            await _ready(app)
            await app.publish(topic, "trip")
            await wait_until(lambda: bool(seen), "the failing delivery")
            await app.publish(topic, "waiting")
            await wait_until(lambda: ("waiting", 1) in seen, "the waiting record")
            # A later record is handled once too; neither earlier one came back.
            await app.publish(topic, "after")
            await wait_until(lambda: ("after", 1) in seen, "a later record")

    run(scenario())
    assert seen == [("trip", 1), ("trip", 2), ("waiting", 1), ("after", 1)]
    assert app.breakers.get(breaker, work.__qualname__).opened_total == 1


def test_records_fetched_with_the_failing_one_go_back_at_once_when_the_breaker_opens() -> None:
    """A record of the same fetch as the one whose failure opened the breaker has not started:
    it is released at once (a delivery the queue counts, once) rather than held at the breaker
    for its open time, past the record lock; it comes back after the probe. memory:// on a
    fake clock: the open time passes without waiting."""
    topic, group = _names()
    clock = FakeClock()
    sleep = FakeSleep(clock)
    url = f"memory://queue-{uuid.uuid4().hex[:8]}"
    app = App(url, clock=clock, sleep=sleep, lag_interval_s=0)
    breaker = Breaker(failures=1, open_s=60.0)
    seen: list[tuple[str, int | None]] = []

    @app.subscriber(topic, group=group, queue=True, breaker=breaker)
    async def work(job: str, msg: Message) -> None:
        seen.append((job, msg.delivery_count))
        if seen == [("trip", 1)]:
            raise ConnectionError("the dependency is down")

    async def scenario() -> None:
        publisher = App(url, name="publisher", lag_interval_s=0)
        async with publisher:
            await publisher.publish(topic, "trip")
            await publisher.publish(topic, "sibling")
        async with app:
            await wait_until(lambda: ("sibling", 2) in seen, "the sibling's redelivery")

    run(scenario())
    assert seen == [("trip", 1), ("trip", 2), ("sibling", 2)]
    # The open time passed in the runner's looks (no fetch), none of them as long as it.
    assert sum(sleep.delays_s) >= breaker.open_s
    assert max(sleep.delays_s) < breaker.open_s
