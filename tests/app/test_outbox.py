"""The outbox: the one way the delivery pipeline sends records (outputs, retries, dead letters),
and delayed send used only through the DelayedSend capability."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from shoal import App, Retry
from shoal.app.message import MESSAGE_ID_HEADER, Headers
from shoal.app.observability.metrics import Instruments
from shoal.app.outbox import Outbox, TransportOutbox
from shoal.app.serdes.codec import Codec
from shoal.app.transport import DelayedSend
from shoal.app.transports.memory import MemoryTransport


class DelayingMemoryTransport(MemoryTransport):
    """A memory transport with the DelayedSend capability: it notes each delayed send and
    appends the record at once (what a due record becomes)."""

    def __init__(self) -> None:
        super().__init__()
        self.delayed: list[tuple[str, int]] = []

    async def send_delayed(
        self, topic: str, value: bytes, key: bytes | None, headers: Headers, delay_ms: int
    ) -> None:
        self.delayed.append((topic, delay_ms))
        await self.send(topic, value, key, headers)


@dataclass
class RecordingOutbox:
    """Wraps the App's outbox and notes every call, to show what goes through it."""

    inner: Outbox
    published: list[str] = field(default_factory=list)
    forwarded: list[tuple[str, int | None]] = field(default_factory=list)

    async def publish(
        self, topic: str, value: object, *, key: bytes | None, headers: Headers, codec: Codec | None
    ) -> str:
        self.published.append(topic)
        return await self.inner.publish(topic, value, key=key, headers=headers, codec=codec)

    async def forward(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Headers,
        *,
        delay_ms: int | None = None,
    ) -> None:
        self.forwarded.append((topic, delay_ms))
        await self.inner.forward(topic, value, key, headers, delay_ms=delay_ms)


def test_a_retry_is_sent_delayed_only_by_a_transport_that_can() -> None:
    delaying = DelayingMemoryTransport()
    plain = MemoryTransport()
    assert isinstance(delaying, DelayedSend)
    assert not isinstance(plain, DelayedSend)

    async def scenario() -> None:
        outbox = TransportOutbox(delaying, "kafka", Instruments())
        await outbox.forward("t.retry.1", b"v", b"k", [], delay_ms=250)
        await outbox.forward("t.dlq", b"v", b"k", [])  # a dead letter is never delayed
        assert delaying.delayed == [("t.retry.1", 250)]
        assert [m.topic for m in await delaying.read_topic("t.dlq")] == ["t.dlq"]

        outbox = TransportOutbox(plain, "kafka", Instruments())
        await outbox.forward("t.retry.1", b"v", b"k", [], delay_ms=250)
        # No capability: sent at once; the retry topic's consumer waits for the due time.
        (sent,) = await plain.read_topic("t.retry.1")
        assert (sent.value, sent.key) == (b"v", b"k")

    asyncio.run(scenario())


def test_publish_keeps_a_given_message_id_and_adds_one_otherwise() -> None:
    transport = MemoryTransport()

    async def scenario() -> None:
        outbox = TransportOutbox(transport, "kafka", Instruments())
        given = await outbox.publish(
            "t", {"a": 1}, key=None, headers=[(MESSAGE_ID_HEADER, b"abc")], codec=None
        )
        fresh = await outbox.publish("t", {"a": 2}, key=None, headers=[], codec=None)
        first, second = await transport.read_topic("t")
        assert given == "abc" and first.message_id == "abc"
        assert fresh not in ("", "abc") and second.message_id == fresh
        assert second.value == b'{"a":2}'

    asyncio.run(scenario())


def test_outputs_retries_and_dead_letters_go_through_the_apps_outbox() -> None:
    app = App("memory://", lag_interval_s=0)
    app.transport = DelayingMemoryTransport()
    recording = RecordingOutbox(app.outbox)
    app.outbox = recording
    done = asyncio.Event()
    attempts: dict[int, int] = {}

    @app.subscriber("orders", group="g", output="bills", retry=Retry(max_attempts=2, topics=(10,)))
    async def bill(order: dict[str, int]) -> dict[str, int]:
        attempts[order["id"]] = attempts.get(order["id"], 0) + 1
        if order["id"] == 2:
            if attempts[2] == 2:
                done.set()
            raise ValueError("no")
        return {"bill": order["id"]}

    async def scenario() -> None:
        async with app:
            await app.publish("orders", {"id": 1})
            await app.publish("orders", {"id": 2})
            await asyncio.wait_for(done.wait(), 10)
            # The dead letter follows the second failure; whether it went through the outbox
            # is asserted below, so wait for it in the topic itself.
            while not await app.transport.read_topic("orders.dlq"):  # noqa: ASYNC110
                await asyncio.sleep(0.01)

    asyncio.run(asyncio.wait_for(scenario(), 20))
    # app.publish goes through it too, then the handler's output; the failed record moves to
    # its retry topic (delayed by the transport that can) and, failing again, to the DLQ.
    assert sorted(recording.published) == ["bills", "orders", "orders"]
    assert recording.forwarded == [("orders.retry.1", 10), ("orders.dlq", None)]
