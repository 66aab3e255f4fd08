"""A group's consumer on RabbitMQ: one quorum queue per subscribed topic, manual acks.

Work queues hand out deliveries rather than offsets, so the consumer numbers what it hands out:
``Message.partition`` is 0 and ``Message.offset`` a sequence per topic starting at 0, and
``commit({(topic, 0): n})`` acknowledges every delivery numbered below ``n`` with one multiple
ack. That is exact because each queue is consumed on a channel of its own (delivery tags, and
multiple acks, are per channel) and deliveries are numbered in delivery-tag order.

The consumer's connection is deliberately not a robust one: a delivery tag means something only
on the channel that received it, so a consumer that silently re-subscribed after a broker
restart would ack the wrong messages. Instead, losing the connection makes ``fetch``,
``commit`` and ``lag`` raise TransportError; the App then closes this consumer and opens a new
one, and RabbitMQ redelivers what was not acknowledged (at-least-once).

Pausing keeps the subscription: while paused, ``fetch`` hands out nothing, and RabbitMQ sends
no more than the prefetch window, so what is buffered stays in order for ``resume``. Cancelling
and re-consuming would return those deliveries to the queue, and in RabbitMQ 3.10 each return
counts towards the quorum queue's delivery limit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING, Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, ChannelPreconditionFailed

from shoal.app.message import Message
from shoal.app.transport import TopicPartition, TransportError
from shoal.app.transports.amqp_codec import decode_record
from shoal.app.transports.amqp_topology import (
    PREFETCH_MAX,
    AmqpOptions,
    Subscription,
    declare_group_queue,
)
from shoal.app.transports.ledger import DeliveryLedger

if TYPE_CHECKING:
    from collections.abc import Callable

CONNECT_TIMEOUT_S = 10.0
"""A broker that does not answer within this is down as far as the App is concerned; its
reconnect loop tries again."""
CALL_TIMEOUT_S = 30.0
"""Bound on one broker round trip (declare, qos, consume): turns a hang into TransportError."""
PREFETCH_MIN = 32
"""A first fetch of one record (a keep-alive poll while paused) must not leave the consumer
with a window of one for its whole life."""
TRANSPORT_ERRORS = (*CONNECTION_EXCEPTIONS, asyncio.TimeoutError)


class AmqpConsumer:
    def __init__(
        self,
        url: str,
        options: AmqpOptions,
        topics: list[str],
        group: str,
        on_subscribing: Callable[[AmqpConsumer, asyncio.Future[None]], None],
    ) -> None:
        if not topics:
            raise ValueError("a consumer needs at least one topic")
        self._url = url
        self._options = options
        self._subs = [Subscription.parse(t) for t in topics]
        self.topics = {s.topic for s in self._subs}
        self._group = group
        self._on_subscribing = on_subscribing
        self._connection: AbstractConnection | None = None
        self._queues: dict[str, str] = {}  # topic -> queue name
        self._channels: dict[str, AbstractChannel] = {}  # topic -> its consuming channel
        self._buffer: deque[tuple[str, AbstractIncomingMessage]] = deque()
        self._ledger: DeliveryLedger[AbstractIncomingMessage] = DeliveryLedger(())
        self._arrived = asyncio.Event()
        self._failure: str | None = None
        self._consuming = False
        self._paused = False
        self._started = False

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        # Registered before the first await: a send that follows App.start() waits for it.
        subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._on_subscribing(self, subscribed)
        declared = False
        try:
            self._connection = await aio_pika.connect(self._url, timeout=CONNECT_TIMEOUT_S)
            self._connection.close_callbacks.add(self._on_closed)
            async with self._connection.channel() as channel:
                for sub in self._subs:
                    self._queues[sub.topic] = await asyncio.wait_for(
                        declare_group_queue(channel, self._options, sub, self._group),
                        CALL_TIMEOUT_S,
                    )
            declared = True
        except ChannelPreconditionFailed as exc:
            raise TransportError(
                f"cannot subscribe {self._group} to {sorted(self.topics)}: {exc}. A queue or "
                "exchange of that name exists with other settings: use the URL options it was "
                "declared with, or delete it (its records with it) to declare it anew"
            ) from exc
        except TRANSPORT_ERRORS as exc:
            raise TransportError(
                f"cannot subscribe {self._group} to {sorted(self.topics)}: {exc}"
            ) from exc
        finally:
            subscribed.set_result(None)
            if not declared:  # failed part-way: leave nothing open
                await self.close()
        self._ledger = DeliveryLedger(self._queues)
        self._started = True

    def _on_closed(self, sender: object, exc: BaseException | None) -> None:
        """The connection, or a consuming channel, closed: this consumer's deliveries are void.

        A channel alone closes when the broker says so, e.g. a delivery left unacknowledged
        past the server's consumer_timeout (30 minutes by default)."""
        if self._failure is None:
            # The type, not the object: a connection prints its URL, password included.
            self._failure = f"{type(sender).__name__} closed: {exc or 'by the broker'}"
        self._arrived.set()  # wake a waiting fetch so that it raises

    async def _consume(self, max_records: int) -> None:
        """Subscribe each queue on a channel of its own, with prefetch sized to the fetches.

        Deferred to the first fetch because that is when the batch size is known, and a
        consumer's prefetch is fixed when it subscribes.
        """
        connection = self._live_connection()
        prefetch = self._options.prefetch or min(max(max_records, PREFETCH_MIN), PREFETCH_MAX)
        for topic, queue_name in self._queues.items():
            channel = await connection.channel(publisher_confirms=False)
            channel.close_callbacks.add(self._on_closed)
            await channel.set_qos(prefetch_count=prefetch)
            queue = await channel.get_queue(queue_name, ensure=False)
            await queue.consume(self._receiver(topic), no_ack=False)
            self._channels[topic] = channel
        self._consuming = True

    def _receiver(self, topic: str) -> Callable[[AbstractIncomingMessage], Any]:
        async def receive(message: AbstractIncomingMessage) -> None:
            self._buffer.append((topic, message))
            self._arrived.set()

        return receive

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        self._started = False
        self._buffer.clear()
        if connection is not None:
            # Closing returns every unacknowledged delivery to its queue for the next consumer.
            with contextlib.suppress(*TRANSPORT_ERRORS):
                await asyncio.wait_for(connection.close(), CALL_TIMEOUT_S)

    # -- consuming -----------------------------------------------------------------------------

    def _check(self) -> None:
        self._live_connection()

    def _live_connection(self) -> AbstractConnection:
        if self._failure is not None:
            raise TransportError(self._failure)
        if not self._started or self._connection is None:
            raise TransportError("the consumer is not started")
        return self._connection

    async def fetch(self, max_records: int, timeout_s: float) -> list[Message]:
        self._check()
        if not self._consuming:
            try:
                await asyncio.wait_for(self._consume(max_records), CALL_TIMEOUT_S)
            except TRANSPORT_ERRORS as exc:
                raise TransportError(f"cannot consume for {self._group}: {exc}") from exc
        if self._paused or not self._buffer:
            self._arrived.clear()
            # asyncio.timeout, not wait_for (which on Python 3.11 can swallow a cancel).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._arrived.wait()
            self._check()
            if self._paused:
                return []
        out: list[Message] = []
        while self._buffer and len(out) < max_records:
            topic, delivery = self._buffer.popleft()
            offset = self._ledger.hand_out(topic, delivery)
            out.append(
                decode_record(
                    topic,
                    offset,
                    delivery.body,
                    delivery.routing_key,
                    delivery.headers,
                    redelivered=bool(delivery.redelivered),
                )
            )
        return out

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self._check()
        for tp, next_offset in offsets.items():
            with self._ledger.settle(tp, next_offset) as done:
                if not done:
                    continue
                try:
                    # Everything on this channel up to this tag was handed out before it, and
                    # the App commits only runs it finished: one multiple ack settles those.
                    await asyncio.wait_for(done[-1].ack(multiple=True), CALL_TIMEOUT_S)
                except TRANSPORT_ERRORS as exc:
                    raise TransportError(f"cannot acknowledge {tp[0]}: {exc}") from exc

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._arrived.set()

    def assignment(self) -> list[TopicPartition]:
        return self._ledger.assignment() if self._started else []

    async def lag(self) -> dict[TopicPartition, int]:
        """Messages ready in the group's queues (not those delivered and not yet acked)."""
        connection = self._live_connection()
        out: dict[TopicPartition, int] = {}
        try:
            async with connection.channel() as channel:
                for topic, name in self._queues.items():
                    queue = await asyncio.wait_for(
                        channel.declare_queue(name, passive=True), CALL_TIMEOUT_S
                    )
                    count = queue.declaration_result.message_count
                    out[(topic, 0)] = count if count is not None else 0
        except TRANSPORT_ERRORS as exc:
            raise TransportError(f"cannot read the queue depth of {self._group}: {exc}") from exc
        return out
