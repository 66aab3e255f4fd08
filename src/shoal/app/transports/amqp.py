"""The RabbitMQ transport (AMQP 0-9-1 through aio-pika): ``amqp://user:pass@host:port/vhost``.

A shoal topic is a durable exchange; each subscriber group has a durable quorum queue bound to
it; every topic also has a stream, its journal, which ``read_topic`` reads (layout and names in
``amqp_topology``, the record encoding in ``amqp_codec``, consuming in ``amqp_consumer``).

Publishing uses one robust connection (aio-pika re-opens it, and its channel, after a broker
restart) and a channel with publisher confirms: ``send`` returns once RabbitMQ has confirmed
the persistent message, that is, once every queue it was routed to has it (quorum queues: in
the fsynced Raft log of a majority; streams: written). While the broker is unreachable ``send``
raises TransportError at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from aio_pika.exceptions import ChannelNotFoundEntity

from shoal.app.message import Headers, Message
from shoal.app.transport import DeliveryLimit, TransportError
from shoal.app.transports.amqp_codec import amqp_properties, decode_record, routing_key
from shoal.app.transports.amqp_consumer import (
    CALL_TIMEOUT_S,
    CONNECT_TIMEOUT_S,
    TRANSPORT_ERRORS,
    AmqpConsumer,
)
from shoal.app.transports.amqp_queue import AmqpQueueConsumer
from shoal.app.transports.amqp_topology import (
    DELAY_EXCHANGE,
    DELAY_QUEUE_HEADER,
    JOURNAL_KEY,
    Subscription,
    check_topic,
    declare_delay_queue,
    declare_topic,
    journal_name,
    split_url,
)

T = TypeVar("T")

SEND_TIMEOUT_S = 30.0
"""Publish plus confirm; a broker that has not confirmed by then is treated as down."""
SUBSCRIBE_WAIT_S = CONNECT_TIMEOUT_S + CALL_TIMEOUT_S
"""How long a send waits for a subscription of the same process that is being set up."""
READ_PREFETCH = 500
"""Stream deliveries in flight while ``read_topic`` reads a journal (streams need a prefetch)."""
READ_IDLE_S = 30.0
"""A journal read that receives nothing for this long has stalled: its end marker was
confirmed, so every record up to it is there to read."""
JOURNAL_MARKER = "shoal.journal-marker"


class AmqpTransport:
    def __init__(self, url: str) -> None:
        self.url = url
        self._client_url, self.options = split_url(url)
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._declared: set[str] = set()
        self._delay_queues: dict[tuple[str, int], str] = {}
        self._subscribing: dict[asyncio.Future[None], frozenset[str]] = {}

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._connection is not None:
            return
        try:
            connection = await aio_pika.connect_robust(self._client_url, timeout=CONNECT_TIMEOUT_S)
        except TRANSPORT_ERRORS as exc:
            raise TransportError(f"cannot connect to RabbitMQ: {exc}") from exc
        try:
            # on_return_raises: a record that no queue took (not even the journal) is an error,
            # not a silent loss.
            self._channel = await asyncio.wait_for(
                connection.channel(publisher_confirms=True, on_return_raises=True),
                CALL_TIMEOUT_S,
            )
        except TRANSPORT_ERRORS as exc:
            with contextlib.suppress(*TRANSPORT_ERRORS):
                await connection.close()
            raise TransportError(f"cannot open a channel on RabbitMQ: {exc}") from exc
        self._connection = connection

    async def stop(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._exchanges.clear()
        if connection is not None:
            with contextlib.suppress(*TRANSPORT_ERRORS):
                await asyncio.wait_for(connection.close(), CALL_TIMEOUT_S)

    def _live_connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise TransportError("the transport is not started")
        return self._connection

    async def _on_fresh_channel(
        self, what: str, action: Callable[[AbstractChannel], Awaitable[T]]
    ) -> T:
        """Run ``action`` on a short-lived channel of its own, bounded in time: a declaration
        the broker refuses closes its channel, and must not close the publishing one."""

        async def run() -> T:
            async with self._live_connection().channel(publisher_confirms=False) as channel:
                return await action(channel)

        try:
            return await asyncio.wait_for(run(), CALL_TIMEOUT_S)
        except TRANSPORT_ERRORS as exc:
            raise TransportError(f"{what}: {exc}") from exc

    async def ping(self) -> None:
        # A passive declare is a round trip that changes nothing; amq.direct always exists.
        await self._on_fresh_channel(
            "RabbitMQ does not answer",
            lambda channel: channel.declare_exchange("amq.direct", passive=True),
        )

    # -- topology ------------------------------------------------------------------------------

    async def ensure_topics(self, topics: list[str], *, compacted: bool = False) -> None:
        """Declare each topic's exchange and journal. ``compacted`` changes nothing: RabbitMQ
        has no compaction, and the journal keeps every record."""
        for spec in topics:
            await self._ensure_topic(Subscription.parse(spec).topic)

    async def _ensure_topic(self, topic: str) -> None:
        if topic in self._declared:
            return
        await self._on_fresh_channel(
            f"cannot declare topic {topic}",
            lambda channel: declare_topic(channel, self.options, topic),
        )
        self._declared.add(topic)

    async def _ensure_delay_queue(self, topic: str, delay_ms: int) -> str:
        name = self._delay_queues.get((topic, delay_ms))
        if name is not None:
            return name
        name = await self._on_fresh_channel(
            f"cannot declare the delay queue of {topic}",
            lambda channel: declare_delay_queue(channel, self.options, topic, delay_ms),
        )
        self._delay_queues[(topic, delay_ms)] = name
        return name

    # -- publishing ----------------------------------------------------------------------------

    async def send(self, topic: str, value: bytes, key: bytes | None, headers: Headers) -> None:
        check_topic(topic)
        await self._wait_for_subscriptions(topic)
        await self._ensure_topic(topic)
        await self._publish(topic, topic, routing_key(topic, key), value, key, headers, {})

    async def send_delayed(
        self, topic: str, value: bytes, key: bytes | None, headers: Headers, delay_ms: int
    ) -> None:
        """Publish a record that reaches ``topic`` after ``delay_ms``, without a plugin: it
        waits in ``shoal.delay.<topic>.<ms>``, whose message TTL dead-letters it to the topic's
        exchange with its own routing key."""
        check_topic(topic)
        queue = await self._ensure_delay_queue(topic, delay_ms)
        # The delay exchange routes on this header alone; the routing key is kept for the topic.
        extra = {DELAY_QUEUE_HEADER: queue}
        await self._publish(
            DELAY_EXCHANGE, topic, routing_key(topic, key), value, key, headers, extra
        )

    async def _publish(
        self,
        exchange_name: str,
        topic: str,
        key_text: str,
        value: bytes,
        key: bytes | None,
        headers: Headers,
        extra: dict[str, Any],
    ) -> None:
        properties = amqp_properties(key, headers)
        properties["headers"].update(extra)
        if self.options.exchange_type_for(topic) == "direct":
            # A direct exchange routes exact keys only; CC (kept through dead-lettering, so
            # delayed records get it too) also routes the record to the journal.
            properties["headers"]["CC"] = [JOURNAL_KEY]
        message = aio_pika.Message(
            value, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **properties
        )
        try:
            exchange = self._exchange(exchange_name)
            # asyncio.timeout, not wait_for: wait_for makes a task per publish on Python 3.11.
            async with asyncio.timeout(SEND_TIMEOUT_S):
                await exchange.publish(message, key_text)
        except ChannelNotFoundEntity as exc:
            # Deleted behind our back: declare it again on the next send.
            self._declared.discard(topic)
            self._delay_queues = {k: v for k, v in self._delay_queues.items() if k[0] != topic}
            raise TransportError(f"cannot publish to {topic}: {exc}") from exc
        except TRANSPORT_ERRORS as exc:
            raise TransportError(f"cannot publish to {topic}: {exc}") from exc

    def _exchange(self, name: str) -> AbstractExchange:
        channel = self._channel
        if channel is None:
            raise TransportError("the transport is not started")
        exchange = self._exchanges.get(name)
        if exchange is None:
            # No round trip: the exchange was declared by _ensure_topic or _ensure_delay_queue.
            exchange = aio_pika.Exchange(channel, name, passive=True)
            self._exchanges[name] = exchange
        return exchange

    def _on_subscribing(self, consumer: AmqpConsumer, subscribed: asyncio.Future[None]) -> None:
        self._subscribing[subscribed] = frozenset(consumer.topics)
        subscribed.add_done_callback(lambda done: self._subscribing.pop(done, None))

    async def _wait_for_subscriptions(self, topic: str) -> None:
        """Let a record reach the queues of subscriptions still being set up for its topic.

        RabbitMQ routes a record only to the queues bound at that moment (Kafka would keep it in
        the log for a new group). App.start() returns only once its subscribers' consumers have
        started, so for an App this finds nothing to wait for; it covers a consumer started by
        other code concurrently with a send. No yield when nothing is pending: it would cost
        every publish a trip round the event loop.
        """
        if not self._subscribing:
            return
        pending = [f for f, topics in self._subscribing.items() if topic in topics]
        if pending:
            await asyncio.wait(pending, timeout=SUBSCRIBE_WAIT_S)

    # -- consuming -----------------------------------------------------------------------------

    def consumer(self, topics: list[str], group: str) -> AmqpConsumer:
        return AmqpConsumer(self._client_url, self.options, topics, group, self._on_subscribing)

    def queue_consumer(self, topics: list[str], group: str) -> AmqpQueueConsumer:
        """A queue subscriber's consumer (issue 16): see amqp_queue."""
        return AmqpQueueConsumer(
            self._client_url, self.options, topics, group, self._on_subscribing
        )

    async def queue_delivery_limit(self, group: str, attempts: int) -> DeliveryLimit | None:
        """Deliveries before a quorum queue dead-letters a message itself: its
        ``x-delivery-limit`` counts returns, so one more than the limit (QueueDeliveryLimits)."""
        del group  # every group queue is declared with the URL's options
        if self.options.queue_type != "quorum" or self.options.delivery_limit <= 0:
            return None
        return DeliveryLimit(
            self.options.delivery_limit + 1,
            f"the quorum queue's x-delivery-limit={self.options.delivery_limit} (returns)",
            "dead-lettered by RabbitMQ after fewer attempts than the retry policy asks",
            f"raise the URL's delivery_limit to at least {attempts - 1} (a queue declared "
            "already keeps its arguments: delete it to declare it anew)",
        )

    async def read_topic(self, topic: str) -> list[Message]:
        """Every record in the topic's journal stream, from its first offset to the end it had
        when called; ``Message.offset`` is the stream offset.

        AMQP 0-9-1 does not tell a stream's end (the message count of a stream's declare-ok
        comes from statistics refreshed every few seconds), so the read marks it: it appends a
        marker, an empty message with a unique ``shoal.journal-marker`` header, straight to the
        stream, and reads up to it. Every record confirmed before the call precedes the marker.
        Markers stay in the stream (a few bytes each) and every read skips them.
        """
        check_topic(topic)
        connection = self._live_connection()
        try:
            channel = await connection.channel(publisher_confirms=False)
        except TRANSPORT_ERRORS as exc:
            raise TransportError(f"cannot read {topic}: {exc}") from exc
        try:
            return await self._read_journal(channel, topic)
        except ChannelNotFoundEntity:
            return []  # never declared: no record was ever sent to it
        except TRANSPORT_ERRORS as exc:
            raise TransportError(f"cannot read {topic}: {exc}") from exc
        finally:
            with contextlib.suppress(*TRANSPORT_ERRORS):
                await channel.close()

    async def _mark_journal_end(self, topic: str) -> str:
        marker = uuid.uuid4().hex
        publishing = self._channel
        if publishing is None:
            raise TransportError("the transport is not started")
        message = aio_pika.Message(
            b"", headers={JOURNAL_MARKER: marker}, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        # The default exchange routes to the queue named by the routing key: the stream only.
        await asyncio.wait_for(
            publishing.default_exchange.publish(message, journal_name(topic)), SEND_TIMEOUT_S
        )
        return marker

    async def _read_journal(self, channel: AbstractChannel, topic: str) -> list[Message]:
        journal = await asyncio.wait_for(
            channel.declare_queue(journal_name(topic), passive=True), CALL_TIMEOUT_S
        )
        marker = await self._mark_journal_end(topic)
        out: list[Message] = []
        progress = asyncio.Event()
        reached_end = False

        async def receive(delivery: AbstractIncomingMessage) -> None:
            nonlocal reached_end
            headers = delivery.headers or {}
            seen = headers.get(JOURNAL_MARKER)
            if reached_end or seen is not None:
                reached_end = reached_end or seen == marker
            else:
                offset = headers.get("x-stream-offset")
                out.append(
                    decode_record(
                        topic,
                        offset if isinstance(offset, int) else len(out),
                        delivery.body,
                        delivery.routing_key,
                        headers,
                    )
                )
            await delivery.ack()  # a stream consumer's acks grant it credit for more
            progress.set()

        await channel.set_qos(prefetch_count=READ_PREFETCH)
        tag = await journal.consume(receive, arguments={"x-stream-offset": "first"})
        try:
            while not reached_end:
                progress.clear()
                try:
                    # asyncio.timeout, not wait_for (which on Python 3.11 can swallow a cancel).
                    async with asyncio.timeout(READ_IDLE_S):
                        await progress.wait()
                except TimeoutError:
                    raise TransportError(
                        f"reading {topic} stalled after {len(out)} records"
                    ) from None
        finally:
            with contextlib.suppress(*TRANSPORT_ERRORS):
                await journal.cancel(tag)
        return out
