"""A stream processor inside the App (``@app.processor``) on a real broker: it starts and stops
with the app and counts in its readiness, a handler exception goes through the retry policy
and then the DLQ without stopping the processor, the metrics count it as they count
subscribers, and a restarted app restores the processor's table from its changelog."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator

import confluent_kafka
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shoal import App, Message, Retry
from shoal.app.streams.processor import Outputs, json_value
from shoal.app.streams.table import Table
from shoal.app.transport import TransportError
from shoal.embedded import EmbeddedBroker

pytestmark = pytest.mark.integration

PREFIX = "hosted"
EVENTS = f"{PREFIX}.events"
TOTALS = f"{PREFIX}.totals"
WAIT_S_MAX = 60.0
"""A hang guard, not a timing expectation."""
ATTEMPTS = 3


class Poison(Exception):
    pass


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(
        str(tmp_path_factory.mktemp("hosted-broker")), group_initial_rebalance_delay_ms=0
    ) as running:
        yield running


def _send(bootstrap: str, events: list[dict[str, object]]) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for event in events:
        producer.produce(EVENTS, json.dumps(event).encode(), str(event["k"]).encode())
    assert producer.flush(30) == 0


def _app(bootstrap: str, counts: Table, flaky_failures: Counter[int]) -> App:
    """Counts events per key; ``poison`` events always raise, ``flaky`` ones the first time."""
    app = App(f"kafka://{bootstrap}", name="hosted", lag_interval_s=0)

    @app.processor(
        EVENTS,
        group=f"{PREFIX}.group",
        stores=[counts],
        outputs=[TOTALS],
        retry=Retry(max_attempts=ATTEMPTS, base_delay_ms=0, max_delay_ms=0),
    )
    async def count(msg: Message, out: Outputs) -> None:
        event = json.loads(msg.value)
        if event.get("poison"):
            raise Poison(f"event {event['id']} cannot be counted")
        if event.get("flaky") and flaky_failures[event["id"]] == 0:
            flaky_failures[event["id"]] += 1
            raise ConnectionError("a dependency hiccup")
        key = event["k"]
        if counts.put(msg, key, counts.get(key, 0) + 1):
            out.send(TOTALS, json_value({"k": key, "n": counts.get(key)}), key)

    return app


async def _wait(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S_MAX
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _scrape(app: App) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, _ = app.metrics.render()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_a_processor_runs_in_the_app_with_retries_dlq_metrics_and_restore(
    broker: EmbeddedBroker,
) -> None:
    bootstrap = broker.bootstrap_servers
    first = [{"id": i, "k": "ABC"[i % 3]} for i in range(30)]
    first[7]["poison"] = True
    first[12]["flaky"] = True
    second = [{"id": 100 + i, "k": "ABC"[i % 3]} for i in range(12)]
    good = [e for e in first + second if not e.get("poison")]
    expected = dict(Counter(str(e["k"]) for e in good))

    async def scenario() -> None:
        counts = Table(f"{PREFIX}.counts", source=EVENTS)
        flaky: Counter[int] = Counter()
        app = _app(bootstrap, counts, flaky)
        assert not await app.ready()
        await app.start()
        try:
            _send(bootstrap, first)
            await _wait(lambda: sum(v for _, v in counts.items()) == len(first) - 1, "counts")
            assert await app.ready()
            assert app.live()
            dead = await app.transport.read_topic(f"{EVENTS}.dlq")
        finally:
            await app.stop()
        assert not await app.ready()

        # The poison record went to the DLQ after every attempt; the processor went on.
        assert [json.loads(m.value)["id"] for m in dead] == [7]
        assert dead[0].header("shoal.dlq.attempts") == str(ATTEMPTS).encode()
        assert dead[0].header("shoal.dlq.exception.message") == b"event 7 cannot be counted"
        assert flaky == {12: 1}
        got = _scrape(app)
        assert app.processors[0].name.endswith(".count")  # the handler's qualified name
        sub = frozenset({("subscriber", app.processors[0].name), ("topic", EVENTS)})
        assert got[("shoal_messages_processed_total", sub)] == len(first) - 1
        assert got[("shoal_messages_retried_total", sub)] == (ATTEMPTS - 1) + 1
        assert got[("shoal_messages_dead_lettered_total", sub)] == 1
        poison = sub | {("exception", f"{__name__}.Poison")}
        assert got[("shoal_messages_failed_total", poison)] == ATTEMPTS
        assert got[("shoal_messages_failed_total", sub | {("exception", "ConnectionError")})] == 1

        # A new app (a restarted process): the table comes back from its changelog and the
        # new records count on top of it, none twice.
        restored = Table(f"{PREFIX}.counts", source=EVENTS)
        again = _app(bootstrap, restored, flaky)
        await again.start()
        try:
            _send(bootstrap, second)
            await _wait(lambda: dict(restored.items()) == expected, "the restored counts")
            totals = await again.transport.read_topic(TOTALS)
        finally:
            await again.stop()
        last = {json.loads(m.value)["k"]: json.loads(m.value)["n"] for m in totals}
        assert last == expected

    asyncio.run(scenario())


def test_on_the_memory_transport_a_failing_record_is_dead_lettered_and_the_rest_counted() -> None:
    """The same lifecycle without a broker (the transport has no rebalance callbacks: the
    processor follows its consumer's assignment), and with ``dlq=False`` a failed record is
    logged and skipped."""

    async def scenario() -> None:
        counts = Table("mem.counts", source="mem.events")
        app = App("memory://hosted-mem", name="mem", lag_interval_s=0)

        @app.processor("mem.events", group="mem", stores=[counts], retry=Retry(max_attempts=1))
        async def count(msg: Message, out: Outputs) -> None:
            if msg.value == b"bad":
                raise ValueError("bad record")
            key = (msg.key or b"").decode()
            counts.put(msg, key, counts.get(key, 0) + 1)

        skipped_past: list[bytes] = []

        @app.processor("mem.events", group="mem-nodlq", dlq=False, retry=Retry(max_attempts=1))
        async def skip(msg: Message, out: Outputs) -> None:
            if msg.value == b"bad":
                raise ValueError("bad record")
            skipped_past.append(msg.value)

        await app.start()
        try:
            for value in (b"a", b"bad", b"b", b"c"):
                await app.transport.send("mem.events", value, b"k", [])
            await _wait(lambda: counts.get("k") == 3, "the good records")
            await _wait(lambda: skipped_past == [b"a", b"b", b"c"], "the dlq=False processor")
            dead = await app.transport.read_topic("mem.events.dlq")
            assert [m.value for m in dead] == [b"bad"]  # once: not from the dlq=False one
            assert await app.ready()
        finally:
            await app.stop()

    asyncio.run(scenario())


def test_exactly_once_processors_need_a_kafka_transport() -> None:
    app = App("memory://hosted-eos")

    @app.processor("eos.events", group="eos", exactly_once=True)
    async def handle(msg: Message, out: Outputs) -> None: ...

    with pytest.raises(TransportError, match="exactly_once=True needs a Kafka transport"):
        asyncio.run(app.start())


def test_a_processor_refuses_retry_topics_and_sync_handlers() -> None:
    app = App("memory://hosted-bad")
    with pytest.raises(ValueError, match="no retry topics"):
        app.processor("t", group="g", retry=Retry.with_topics(1_000))
    with pytest.raises(TypeError, match="async function"):
        app.processor("t", group="g")(lambda msg, out: None)  # type: ignore[arg-type]


def test_a_processors_lag_is_reported_under_its_group_until_it_catches_up(
    broker: EmbeddedBroker,
) -> None:
    """The lag metric counts a processor's records not yet committed: all of them while its
    handler is held up on the first, none once it has caught up."""
    bootstrap = broker.bootstrap_servers
    source, group, records = f"{PREFIX}.lagging", f"{PREFIX}.lag-group", 5

    async def scenario() -> None:
        app = App(f"kafka://{bootstrap}", name="lagging", lag_interval_s=0.05)
        release = asyncio.Event()

        @app.processor(source, group=group)
        async def slow(msg: Message, out: Outputs) -> None:
            await release.wait()

        def lag() -> float | None:
            series = [
                v
                for (name, labels), v in _scrape(app).items()
                if name == "shoal_consumer_lag" and ("group", group) in labels
            ]
            return sum(series) if series else None

        await app.start()
        try:
            producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all"})
            for i in range(records):
                producer.produce(source, str(i).encode(), b"k")
            assert producer.flush(30) == 0
            await _wait(lambda: lag() == records, f"a lag of {records}")
            release.set()
            await _wait(lambda: lag() == 0, "the lag to fall to 0")
        finally:
            release.set()
            await app.stop()

    asyncio.run(scenario())
