"""The transport suite and RabbitMQ-specific behaviour, against a real RabbitMQ node.

The session node (``rabbitmq_server``) serves the suite and most tests; the restart test starts
a node of its own, since restarting the shared one would disturb the others.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal import App, Message
from shoal.app import dlq
from shoal.app.amqp import AmqpTransport
from shoal.app.amqp_codec import (
    DEATH_REASON,
    DELIVERY_COUNT,
    REDELIVERED,
    decode_record,
    pack_headers,
    unpack_headers,
)
from shoal.app.amqp_topology import Subscription, split_url
from shoal.app.message import MESSAGE_ID_HEADER, Headers
from shoal.app.transport import TransportError
from tests.app.transport_suite import WAIT_S, TransportSuite, run, topic_name, wait_until
from tests.peers.servers import RabbitServer, rabbitmq_server, start_rabbitmq  # noqa: F401

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
    def broker_url(self, rabbitmq_server: RabbitServer) -> str:  # noqa: F811
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
    with pytest.raises(ValueError, match="amq."):
        Subscription.parse("amq.topic")


# -- against RabbitMQ -----------------------------------------------------------------------------


def test_keys_and_headers_round_trip_exactly_through_queue_and_journal(
    rabbitmq_server: RabbitServer,  # noqa: F811
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


def test_an_app_round_trips_headers_and_keys(rabbitmq_server: RabbitServer) -> None:  # noqa: F811
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
