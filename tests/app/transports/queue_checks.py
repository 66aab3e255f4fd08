"""Checks the work-queue transports' tests share beyond the transport suite (Redis Streams and
NATS JetStream): keys and headers that a naive encoding would break, and an App that rides out
its server's restart. Each transport's test adds what its server shows on top."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from shoal import App, Message
from shoal.app.message import MESSAGE_ID_HEADER
from shoal.app.transport import TransportError
from tests.app.transports.transport_suite import WAIT_S, topic_name, wait_until
from tests.peers.servers import PeerServer

TRICKY_KEYS = [b"", b"\x00", b"\xff\xfe\r\n", "ключ".encode(), b"a" * 1000]
OUTAGE_S = 2.0
"""Longer than the client's own retries of a command, so the App's reconnect path runs."""
RESTART_RECORDS = 200

Headers = list[tuple[str, bytes]]


async def round_trip_tricky(
    url: str,
    topic: str,
    tricky_headers: Headers,
    without_delivery_headers: Callable[[Message], Headers],
) -> tuple[list[Message], list[Message]]:
    """Publish TRICKY_KEYS and a None key, each with ``tricky_headers``, and consume them: what
    the subscriber got and what the topic stores, both checked to hold exactly what was sent
    (``without_delivery_headers`` drops the headers the transport adds on delivery)."""
    got: list[Message] = []
    app = App(url)

    @app.subscriber(topic, group="g")
    async def take(value: bytes, msg: Message) -> None:
        got.append(msg)

    async with app:
        for key in [*TRICKY_KEYS, None]:
            await app.publish(topic, b"\x00v", key=key, headers=tricky_headers)
        await wait_until(lambda: len(got) == len(TRICKY_KEYS) + 1, "every record")
        stored = await app.transport.read_topic(topic)

    for records in (got, stored):
        assert [m.key for m in records] == [*TRICKY_KEYS, None]
        for msg in records:
            assert msg.value == b"\x00v"
            headers = without_delivery_headers(msg)
            assert headers[:-1] == tricky_headers
            assert headers[-1][0] == MESSAGE_ID_HEADER
    assert [m.offset for m in stored] == list(range(len(stored)))
    return got, stored


async def publish_until_acknowledged(app: App, topic: str, n: int) -> None:
    """Retry one publish (same message id) across an outage; bounded by the suite's wait."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        try:
            await app.publish(topic, n, headers={MESSAGE_ID_HEADER: f"record-{n}"})
            return
        except TransportError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def ride_out_a_restart(server: PeerServer, url: str) -> list[Message]:
    """Publish RESTART_RECORDS records, stopping ``server`` half-way for OUTAGE_S: the
    subscriber sees every acknowledged record. What the topic stores in the end."""
    topic = topic_name("restart")
    seen: set[int] = set()
    app = App(url)

    @app.subscriber(topic, group="g")
    async def take(n: int) -> None:
        seen.add(n)

    async with app:
        for n in range(RESTART_RECORDS):
            if n == RESTART_RECORDS // 2:
                await wait_until(lambda: len(seen) > 0, "the subscriber to run")
                await asyncio.to_thread(server.stop)
                with pytest.raises(TransportError):
                    await app.publish(topic, -1)  # the outage is real for a producer
                await asyncio.sleep(OUTAGE_S)  # and the subscriber polls a dead server
                await asyncio.to_thread(server.start)
            await publish_until_acknowledged(app, topic, n)
        await wait_until(lambda: seen >= set(range(RESTART_RECORDS)), "every acknowledged record")
        return await app.transport.read_topic(topic)
