"""The transport suite and RabbitMQ-specific behaviour, against a real RabbitMQ node.

The session node (``rabbitmq_server``) serves the suite and most tests; the restart test starts
a node of its own, since restarting the shared one would disturb the others.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal import App, Message, redrive
from shoal.app.message import MESSAGE_ID_HEADER, Headers
from shoal.app.resilience import dlq
from shoal.app.transport import TransportError
from shoal.app.transports.amqp import AmqpTransport
from shoal.app.transports.amqp_codec import (
    DEATH_REASON,
    DELIVERY_COUNT,
    REDELIVERED,
    decode_record,
    pack_headers,
    unpack_headers,
)
from shoal.app.transports.amqp_topology import Subscription, split_url
from tests.app.transports.transport_suite import WAIT_S, TransportSuite, run, topic_name, wait_until
from tests.peers.servers import RabbitServer, start_rabbitmq

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

TRICKY_KEYS = [b"", b"\x00", b"\xff\xfe\r\n", "ключ.eu".encode(), b"a.b.#.*", b"k" * 200]
TRICKY_HEADERS: Headers = [
    ("dup", b"first"),
    ("dup", b"second"),
    ("", b""),
    ("bin", bytes(range(256))),
    ("x-looks-like-the-broker", b"\x00"),
    ("ünïcode", "välue".encode()),
    ("long", b"v" * 20_000),
    ("dup", b"third"),
]


class TestAmqpTransport(TransportSuite):
    @pytest.fixture
    def broker_url(self, rabbitmq_server: RabbitServer) -> str:
        return rabbitmq_server.url


def own_headers(msg: Message) -> Headers:
    """The headers a publisher sent: without the delivery facts the consumer appends."""
    return [(n, v) for n, v in msg.headers if not n.startswith("shoal.amqp.")]


async def collect(consumer: Any, count: int) -> list[Message]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    out: list[Message] = []
    while len(out) < count:
        if loop.time() > deadline:
            raise AssertionError(f"got {len(out)} records, expected {count}")
        out += await consumer.fetch(count - len(out), 0.1)
    return out


# -- encoding -------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(), st.binary())))
def test_header_lists_pack_and_unpack_exactly(headers: list[tuple[str, bytes]]) -> None:
    assert unpack_headers(pack_headers(headers)) == headers


def test_a_message_from_another_amqp_publisher_keeps_its_headers_and_routing_key() -> None:
    msg = decode_record("t", 3, b"v", "eu.paris", {"trace": "abc", "n": 5, "x-death": []})
    assert (msg.key, msg.offset, msg.partition) == (b"eu.paris", 3, 0)
    assert msg.headers == [("trace", b"abc"), ("n", b"5")]


def test_url_options_are_parsed_and_removed_from_the_client_url() -> None:
    url, options = split_url(
        "amqp://u:p@h:1/v?queue_type=classic&exchange_type=fanout&exchange.audit=direct"
        "&delivery_limit=3&message_ttl_ms=100&max_priority=5&prefetch=7&heartbeat=10"
    )
    assert url == "amqp://u:p@h:1/v?heartbeat=10"
    assert (options.queue_type, options.delivery_limit, options.prefetch) == ("classic", 3, 7)
    assert options.exchange_type_for("orders") == "fanout"
    assert options.exchange_type_for("audit") == "direct"
    assert (options.message_ttl_ms, options.max_priority) == (100, 5)
    with pytest.raises(ValueError, match="quorum queues have no priorities"):
        split_url("amqp://h/?max_priority=5")
    with pytest.raises(ValueError, match="queue_type"):
        split_url("amqp://h/?queue_type=lazy")
    assert Subscription.parse("orders:eu.*,us.#") == Subscription("orders", ("eu.*", "us.#"))
    with pytest.raises(ValueError, match="reserves names"):
        Subscription.parse("amq.topic")


# -- against RabbitMQ -----------------------------------------------------------------------------


def test_keys_and_headers_round_trip_exactly_through_queue_and_journal(
    rabbitmq_server: RabbitServer,
) -> None:
    topic = topic_name("tricky")

    async def scenario() -> None:
        transport = AmqpTransport(rabbitmq_server.url)
        await transport.start()
        consumer = transport.consumer([topic], "g")
        await consumer.start()
        try:
            for n, key in enumerate([*TRICKY_KEYS, None]):
                await transport.send(topic, b"v%d" % n, key, TRICKY_HEADERS)
            got = await collect(consumer, len(TRICKY_KEYS) + 1)
            journal = await transport.read_topic(topic)
        finally:
            await consumer.close()
            await transport.stop()
        for records in (got, journal):
            assert [m.key for m in records] == [*TRICKY_KEYS, None]
            assert [m.value for m in records] == [b"v%d" % n for n in range(len(records))]
            assert all(own_headers(m) == TRICKY_HEADERS for m in records)
            assert [m.offset for m in records] == list(range(len(records)))
            assert all(m.timestamp_ms > 0 for m in records)

    run(scenario())


def test_an_app_round_trips_headers_and_keys(rabbitmq_server: RabbitServer) -> None:
    topic = topic_name("roundtrip")
    got: list[Message] = []

    async def scenario() -> None:
        app = App(rabbitmq_server.url)

        @app.subscriber(topic, group="g")
        async def on(value: bytes, msg: Message) -> None:
            got.append(msg)

        async with app:
            ids = [
                await app.publish(topic, b"x", key=key, headers=TRICKY_HEADERS)
                for key in TRICKY_KEYS
            ]
            await wait_until(lambda: len(got) == len(TRICKY_KEYS), "every record")
        assert [m.key for m in got] == TRICKY_KEYS
        assert [m.message_id for m in got] == ids
        assert all(
            own_headers(m) == [*TRICKY_HEADERS, (MESSAGE_ID_HEADER, i.encode())]
            for m, i in zip(got, ids, strict=True)
        )

    run(scenario())


def test_a_subscriber_bound_to_a_pattern_gets_only_matching_keys(
    rabbitmq_server: RabbitServer,
) -> None:
    topic = topic_name("orders")
    eu: list[bytes | None] = []
    everything: list[bytes | None] = []
    keys = [b"eu.paris", b"us.nyc", b"eu.berlin", b"eu.paris.north", None, b"asia.tokyo"]

    async def scenario() -> None:
        app = App(rabbitmq_server.url)

        @app.subscriber(f"{topic}:eu.*", group="eu")
        async def on_eu(value: bytes, msg: Message) -> None:
            assert msg.topic == topic
            eu.append(msg.key)

        @app.subscriber(topic, group="all")
        async def on_all(value: bytes, msg: Message) -> None:
            everything.append(msg.key)

        async with app:
            for key in keys:
                await app.publish(topic, b"x", key=key)
            await wait_until(lambda: len(everything) == len(keys), "every record")
            # Records are routed when published, so the eu queue has all it will ever get.
            await wait_until(lambda: len(eu) == 2, "the eu records")
            assert len(await app.transport.read_topic(topic)) == len(keys)

    run(scenario())
    assert eu == [b"eu.paris", b"eu.berlin"]
    assert everything == keys


@pytest.mark.parametrize(
    ("kind", "pattern", "keys", "headers"),
    [
        ("direct", "eu,us", ["eu", "asia", "us", None], [{}, {}, {}, {}]),
        (
            "headers",
            "region=eu&tier=1,region=us",
            [None, None, None, None],
            [{"region": "eu", "tier": "1"}, {"region": "eu"}, {"region": "us"}, {}],
        ),
    ],
)
def test_direct_and_headers_exchanges_route_by_their_bindings_and_journal_everything(
    rabbitmq_server: RabbitServer,
    kind: str,
    pattern: str,
    keys: list[str | None],
    headers: list[dict[str, str]],
) -> None:
    topic = topic_name(kind)
    got: list[int] = []

    async def scenario() -> None:
        app = App(f"{rabbitmq_server.url}?exchange.{topic}={kind}")

        @app.subscriber(f"{topic}:{pattern}", group="g")
        async def on(n: int) -> None:
            got.append(n)

        async with app:
            for n, (key, hdrs) in enumerate(zip(keys, headers, strict=True)):
                await app.publish(topic, n, key=key, headers=hdrs)
            journal = await app.transport.read_topic(topic)
            await wait_until(lambda: len(got) == 2, "the matching records")
        assert [int(m.value) for m in journal] == [0, 1, 2, 3]

    run(scenario())
    assert got == [0, 2]


def _appender(sink: list[int]) -> Any:
    async def append(n: int) -> None:
        sink.append(n)

    return append


def test_a_fanout_exchange_gives_every_group_every_record(
    rabbitmq_server: RabbitServer,
) -> None:
    topic = topic_name("news")
    got: dict[str, list[int]] = {"a": [], "b": []}

    async def scenario() -> None:
        app = App(f"{rabbitmq_server.url}?exchange.{topic}=fanout")
        for group, sink in got.items():
            app.subscriber(topic, group=group)(_appender(sink))

        async with app:
            for n in range(20):
                await app.publish(topic, n, key=f"k{n % 3}")
            await wait_until(lambda: all(len(s) == 20 for s in got.values()), "both groups")

    run(scenario())
    assert got == {"a": list(range(20)), "b": list(range(20))}


def test_commit_acks_below_the_offset_and_the_rest_is_redelivered_in_order(
    rabbitmq_server: RabbitServer,
) -> None:
    topic = topic_name("acks")

    async def scenario() -> None:
        transport = AmqpTransport(rabbitmq_server.url)
        await transport.start()
        try:
            first = transport.consumer([topic], "g")
            assert first.assignment() == []
            await first.start()
            assert first.assignment() == [(topic, 0)]
            for n in range(5):
                await transport.send(topic, b"%d" % n, None, [])
            # Not consumed yet: all five are ready in the group's queue.
            assert await first.lag() == {(topic, 0): 5}
            got = await collect(first, 5)
            assert [(m.partition, m.offset, m.value) for m in got] == [
                (0, n, b"%d" % n) for n in range(5)
            ]
            assert all(REDELIVERED not in dict(m.headers) for m in got)
            await first.commit({(topic, 0): 3})
            await first.close()

            second = transport.consumer([topic], "g")
            await second.start()
            again = await collect(second, 2)
            # A new consumer numbers its deliveries from 0 again; the broker says they are
            # redeliveries, and the quorum queue how often they were delivered before.
            assert [(m.offset, m.value) for m in again] == [(0, b"3"), (1, b"4")]
            assert all(m.header(REDELIVERED) == b"true" for m in again)
            assert all(m.header(DELIVERY_COUNT) == b"1" for m in again)
            await second.commit({(topic, 0): 2})
            assert await second.lag() == {(topic, 0): 0}
            await second.close()
        finally:
            await transport.stop()

    run(scenario())


def test_a_paused_consumer_hands_out_nothing_until_resumed(
    rabbitmq_server: RabbitServer,
) -> None:
    topic = topic_name("paused")

    async def scenario() -> None:
        transport = AmqpTransport(rabbitmq_server.url)
        await transport.start()
        consumer = transport.consumer([topic], "g")
        await consumer.start()
        try:
            await transport.send(topic, b"0", None, [])
            assert [m.value for m in await collect(consumer, 1)] == [b"0"]
            consumer.pause()
            for n in range(1, 4):
                await transport.send(topic, b"%d" % n, None, [])
            # Long enough for the deliveries to reach the consumer; it still hands out nothing.
            for _ in range(5):
                assert await consumer.fetch(10, 0.1) == []
            assert consumer.assignment() == [(topic, 0)]
            consumer.resume()
            rest = await collect(consumer, 3)
            assert [(m.offset, m.value) for m in rest] == [(1, b"1"), (2, b"2"), (3, b"3")]
            await consumer.commit({(topic, 0): 4})
        finally:
            await consumer.close()
            await transport.stop()

    run(scenario())


def test_the_delivery_limit_sends_a_record_that_keeps_coming_back_to_the_dlq(
    rabbitmq_server: RabbitServer,
) -> None:
    topic = topic_name("crashy")
    returns: list[int] = []
    redriven: list[bytes] = []

    async def scenario() -> None:
        transport = AmqpTransport(f"{rabbitmq_server.url}?delivery_limit=2")
        await transport.start()
        try:
            setup = transport.consumer([topic], "g")
            await setup.start()
            await setup.close()
            await transport.send(topic, b"poison", b"k1", [("h", b"1")])
            # A consumer that takes the record and dies without acking, again and again (as a
            # handler that crashes its process would): the broker counts each return.
            while not await transport.read_topic(f"{topic}.dlq"):
                assert len(returns) < 20, "the delivery limit never applied"
                consumer = transport.consumer([topic], "g")
                await consumer.start()
                returns.append(len(await consumer.fetch(10, 1.0)))
                await consumer.close()
            (dead,) = await transport.read_topic(f"{topic}.dlq")
            assert (dead.value, dead.key, dead.header("h")) == (b"poison", b"k1", b"1")
            assert dead.header(dlq.ORIGINAL_TOPIC) == topic.encode()
            assert dead.header(DEATH_REASON) == b"delivery_limit"
        finally:
            await transport.stop()

        # Redrive knows where the record came from, as for records the App dead-lettered.
        app = App(f"{rabbitmq_server.url}?delivery_limit=2")

        @app.subscriber(topic, group="g")
        async def on(value: bytes, msg: Message) -> None:
            redriven.append(msg.value)
            assert not [n for n, _ in own_headers(msg) if n.startswith(dlq.PREFIX)]

        async with app:
            assert await redrive(app, f"{topic}.dlq") == 1
            await wait_until(lambda: redriven == [b"poison"], "the redriven record")

    run(scenario())
    # Delivered 3 times: the first and the 2 the limit allows. (Dead-lettering is asynchronous,
    # so a last consumer may find the queue already empty and the DLQ not yet written.)
    assert sum(returns) == 3


def test_a_delayed_record_reaches_the_topic_after_records_sent_later(
    rabbitmq_server: RabbitServer,
) -> None:
    topic = topic_name("later")
    got: list[Message] = []

    async def scenario() -> None:
        app = App(rabbitmq_server.url)

        @app.subscriber(topic, group="g")
        async def on(value: bytes, msg: Message) -> None:
            got.append(msg)

        async with app:
            transport = app.transport
            assert isinstance(transport, AmqpTransport)
            await app.publish(topic, b"warm-up")
            await wait_until(lambda: len(got) == 1, "the subscription")
            await transport.send_delayed(topic, b"delayed", b"eu.k", [("h", b"\x00")], 2000)
            await transport.send(topic, b"now", b"eu.k", [])
            await wait_until(lambda: len(got) == 3, "the delayed record")
            journal = await transport.read_topic(topic)
        assert [m.value for m in got] == [b"warm-up", b"now", b"delayed"]
        delayed = got[2]
        assert (delayed.key, own_headers(delayed)) == (b"eu.k", [("h", b"\x00")])
        # A delay is not a failure: nothing says it was dead-lettered.
        assert delayed.header(dlq.ORIGINAL_TOPIC) is None
        assert [m.value for m in journal] == [b"warm-up", b"now", b"delayed"]

    run(scenario())


def test_classic_queues_work_too_and_ping_answers(
    rabbitmq_server: RabbitServer,
) -> None:
    topic = topic_name("classic")
    got: list[int] = []

    async def scenario() -> None:
        app = App(f"{rabbitmq_server.url}?queue_type=classic&prefetch=2")

        @app.subscriber(topic, group="g")
        async def on(n: int) -> None:
            got.append(n)

        not_started = AmqpTransport(rabbitmq_server.url)
        with pytest.raises(TransportError):
            await not_started.ping()
        async with app:
            await app.transport.ping()
            for n in range(10):
                await app.publish(topic, n)
            await wait_until(lambda: len(got) == 10, "every record")

    run(scenario())
    assert got == list(range(10))


def test_every_confirmed_record_is_consumed_across_a_broker_restart(tmp_path: Path) -> None:
    topic = topic_name("restart")
    total = 200
    confirmed: set[str] = set()
    consumed: list[str] = []

    async def scenario(server: RabbitServer) -> None:
        app = App(server.url)

        @app.subscriber(topic, group="g")
        async def on(n: int, msg: Message) -> None:
            assert msg.message_id is not None
            consumed.append(msg.message_id)

        async def publish_all() -> None:
            for n in range(total):
                message_id = f"m{n}"
                while message_id not in confirmed:
                    try:
                        await app.publish(topic, n, headers={MESSAGE_ID_HEADER: message_id})
                        confirmed.add(message_id)
                    except TransportError:
                        await asyncio.sleep(0.2)  # the broker is down: try again
                await asyncio.sleep(0.01)

        async with app:
            publisher = asyncio.create_task(publish_all())
            await wait_until(lambda: len(set(consumed)) >= total // 2, "half the records")
            await asyncio.to_thread(server.stop)
            # Down: a send fails at once rather than waiting for the broker to come back.
            with pytest.raises(TransportError):
                await app.transport.send(topic, b"0", None, [])
            with pytest.raises(TransportError):
                await app.transport.ping()
            await asyncio.to_thread(server.start)
            await asyncio.wait_for(publisher, WAIT_S)
            await wait_until(lambda: confirmed <= set(consumed), "every confirmed record")

    with start_rabbitmq(tmp_path / "rabbit") as server:
        asyncio.run(asyncio.wait_for(scenario(server), WAIT_S * 4))
    assert len(confirmed) == total
