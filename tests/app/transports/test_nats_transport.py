"""The transport suite and JetStream-specific behaviour, against a real nats-server."""

from __future__ import annotations

import json
from pathlib import Path

import nats
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal import App, Message
from shoal.app.message import MESSAGE_ID_HEADER
from shoal.app.transports.nats_jetstream import (
    DELIVERY_COUNT_HEADER,
    STREAM_SEQ_HEADER,
    NatsSettings,
    NatsTransport,
    nats_headers,
    shoal_headers,
    stream_name,
)
from tests.app.transports.queue_checks import (
    RESTART_RECORDS,
    ride_out_a_restart,
    round_trip_tricky,
)
from tests.app.transports.transport_suite import WAIT_S, TransportSuite, run, topic_name
from tests.peers.servers import NatsServer, start_nats

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

TRICKY_HEADERS = [
    ("dup", b"first"),
    ("dup", b"second"),
    ("", b""),
    ("spaces ", b"  padded  "),
    ("crlf", b"line\r\nbreak"),
    ("colon: in name", b"x"),
    ("binary", bytes(range(256))),
    ("ünïcode-naμe", "välue".encode()),
]


def url_of(server: NatsServer, query: str = "ack_wait_s=5") -> str:
    return f"{server.url}?{query}"


def without_delivery_headers(msg: Message) -> list[tuple[str, bytes]]:
    return [h for h in msg.headers if h[0] not in (STREAM_SEQ_HEADER, DELIVERY_COUNT_HEADER)]


class TestNatsTransport(TransportSuite):
    @pytest.fixture
    def broker_url(self, nats_server: NatsServer) -> str:
        return url_of(nats_server)


# -- codecs and settings, without a server -------------------------------------------------------


@given(key=st.none() | st.binary(), headers=st.lists(st.tuples(st.text(), st.binary())))
def test_nats_headers_round_trip(key: bytes | None, headers: list) -> None:
    raw = nats_headers(key, headers)
    assert all("\r" not in v and "\n" not in v and v == v.strip() for v in raw.values())
    assert shoal_headers(raw) == (key, headers)


def test_messages_from_other_nats_clients_keep_their_headers() -> None:
    assert shoal_headers({"Trace": "t1"}) == (None, [("Trace", b"t1")])


def test_topics_map_to_valid_stream_names_and_subjects() -> None:
    assert stream_name("orders") == "orders"
    dlq, other = stream_name("orders.dlq"), stream_name("orders_dlq")
    assert "." not in dlq and dlq != other
    with pytest.raises(ValueError, match="not a NATS subject"):
        NatsSettings.from_url("nats://h:1").stream_config("bad topic")


def test_url_options() -> None:
    settings = NatsSettings.from_url("nats://u:p@h1:1,h2:2?ack_wait_s=2.5&max_deliver=3")
    assert settings.servers == ["nats://u:p@h1:1", "nats://u:p@h2:2"]
    assert (settings.ack_wait_s, settings.max_deliver) == (2.5, 3)
    with pytest.raises(ValueError, match="unknown NATS option"):
        NatsSettings.from_url("nats://h:1?ackwait=1")
    with pytest.raises(ValueError, match="max_deliver"):
        NatsSettings.from_url("nats://h:1?max_deliver=0")


# -- against the server --------------------------------------------------------------------------


def test_keys_and_headers_round_trip_exactly(nats_server: NatsServer) -> None:
    topic = topic_name("tricky")

    async def scenario() -> None:
        got, stored = await round_trip_tricky(
            url_of(nats_server), topic, TRICKY_HEADERS, without_delivery_headers
        )
        assert [m.header(STREAM_SEQ_HEADER) for m in stored] == [
            b"%d" % seq for seq in range(1, len(stored) + 1)
        ]
        assert all(m.header(DELIVERY_COUNT_HEADER) == b"1" for m in got)
        assert all(m.timestamp_ms > 0 for m in stored)

    run(scenario())


def test_the_same_message_id_is_stored_once(nats_server: NatsServer) -> None:
    topic = topic_name("dedup")

    async def scenario() -> None:
        async with App(url_of(nats_server)) as app:
            first = await app.publish(topic, "a", headers={MESSAGE_ID_HEADER: "same"})
            again = await app.publish(topic, "a", headers={MESSAGE_ID_HEADER: "same"})
            await app.publish(topic, "b")
            # A copy of a consumed record (a dead letter, a redrive) is not a retry.
            copy = [(MESSAGE_ID_HEADER, b"same"), (STREAM_SEQ_HEADER, b"1")]
            await app.transport.send(topic, b"copy", None, copy)
            stored = await app.transport.read_topic(topic)
        assert first == again == "same"
        assert [m.value for m in stored] == [b"a", b"b", b"copy"]  # str values go as UTF-8

    run(scenario())


def test_max_deliver_stops_redelivery(nats_server: NatsServer) -> None:
    topic = topic_name("poison")

    async def take_one(transport: NatsTransport) -> list[Message]:
        # Each consumer stands for one process that takes the record and dies without acking
        # it; close() hands it back at once (a nak) instead of after ack_wait.
        consumer = transport.consumer([topic], "g")
        await consumer.start()
        try:
            got: list[Message] = []
            for _ in range(5):
                got += await consumer.fetch(10, 0.5)
                if got:
                    break
            return got
        finally:
            await consumer.close()

    async def scenario() -> None:
        transport = NatsTransport(url_of(nats_server, "ack_wait_s=5&max_deliver=2"))
        await transport.start()
        watcher = await nats.connect(nats_server.url)
        try:
            subject = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream_name(topic)}.g"
            advisories = await watcher.subscribe(subject)
            await transport.send(topic, b"poison", None, [])
            deliveries = await take_one(transport) + await take_one(transport)
            assert [(m.value, m.header(DELIVERY_COUNT_HEADER)) for m in deliveries] == [
                (b"poison", b"1"),
                (b"poison", b"2"),
            ]
            await transport.send(topic, b"next", None, [])
            after = await take_one(transport)
            assert [m.value for m in after] == [b"next"]  # the poison is not delivered again
            advisory = json.loads((await advisories.next_msg(timeout=WAIT_S)).data)
            assert advisory["deliveries"] == 2
        finally:
            await watcher.close()
            await transport.stop()

    run(scenario())


def test_pause_lag_assignment_and_close_keeps_the_durable(
    nats_server: NatsServer,
) -> None:
    topic = topic_name("paused")

    async def scenario() -> None:
        transport = NatsTransport(url_of(nats_server))
        await transport.start()
        consumer = transport.consumer([topic], "g")
        try:
            assert consumer.assignment() == []
            await consumer.start()
            assert consumer.assignment() == [(topic, 0)]
            for n in range(3):
                await transport.send(topic, b"%d" % n, None, [])
            assert await consumer.lag() == {(topic, 0): 3}

            consumer.pause()
            assert await consumer.fetch(10, 0.05) == []
            consumer.resume()
            got: list[Message] = []
            while len(got) < 3:
                got += await consumer.fetch(10, 1.0)
            assert [(m.offset, m.value) for m in got] == [(0, b"0"), (1, b"1"), (2, b"2")]
            assert await consumer.lag() == {(topic, 0): 3}  # delivered, not yet acknowledged

            await consumer.commit({(topic, 0): 2})
            assert await consumer.lag() == {(topic, 0): 1}
            await consumer.commit({(topic, 0): 3})
            assert await consumer.lag() == {(topic, 0): 0}
        finally:
            await consumer.close()
        try:
            info = await transport.jetstream().consumer_info(stream_name(topic), "g")
            assert info.num_pending == 0 and info.num_ack_pending == 0
            assert info.delivered.stream_seq == 3  # the group's position survived close()
        finally:
            await transport.stop()

    run(scenario())


def test_the_app_reconnects_by_itself_after_a_server_restart(tmp_path: Path) -> None:
    with start_nats(tmp_path / "nats") as server:
        stored = run(ride_out_a_restart(server, url_of(server, "ack_wait_s=2")))
    # Retried publishes carried the same message id: each record is stored once. (The publish
    # that failed during the outage may be stored too: the client buffered it and sent it on
    # reconnecting. A failed send is "not known to be stored", as on Kafka.)
    values = sorted(int(m.value) for m in stored)
    assert [n for n in values if n >= 0] == list(range(RESTART_RECORDS))
