"""Queue subscribers (``queue=True``) on RabbitMQ: the group's quorum queue, each delivery
settled on its own.

ACCEPT and REJECT are a ``basic.ack`` of that delivery alone (a rejected record was
dead-lettered by the App first, or is skipped on purpose: a ``basic.reject`` would dead-letter
it a second time, through the queue's dead-letter exchange), RELEASE a ``basic.nack`` with
requeue, which a quorum queue counts: the delivery count is its ``x-delivery-count`` (earlier
deliveries) plus one. RabbitMQ has no per-message lock timeout: a consumer that dies loses its
connection and its deliveries go back to the queue at once; one that hangs keeps them until
the server's ``consumer_timeout`` (30 minutes by default) closes its channel. The quorum
queue's ``x-delivery-limit`` (the URL's ``delivery_limit``, 20 by default) dead-letters a
message returned more often than that: ``retry.max_attempts`` is checked against it at start.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from shoal.app.message import Message
from shoal.app.transport import Acknowledgement, TopicPartition, TransportError
from shoal.app.transports.amqp_codec import DELIVERY_COUNT, REDELIVERED
from shoal.app.transports.amqp_consumer import CALL_TIMEOUT_S, TRANSPORT_ERRORS, AmqpConsumer
from shoal.app.transports.amqp_topology import AmqpOptions
from shoal.app.transports.work_queue import FetchGuard, Settlement

if TYPE_CHECKING:
    from collections.abc import Callable


def delivery_count(message: Message) -> int:
    """Kafka's delivery count of a quorum-queue delivery: ``x-delivery-count`` counts the
    earlier deliveries that were returned; a redelivery without it (a classic queue) is at
    least the second."""
    earlier = message.header(DELIVERY_COUNT)
    if earlier:
        return int(earlier) + 1
    return 2 if message.header(REDELIVERED) else 1


class AmqpQueueConsumer(AmqpConsumer):
    def __init__(
        self,
        url: str,
        options: AmqpOptions,
        topics: list[str],
        group: str,
        on_subscribing: Callable[[AmqpConsumer, asyncio.Future[None]], None],
    ) -> None:
        super().__init__(url, options, topics, group, on_subscribing)
        self._guard = FetchGuard()

    async def fetch(self, max_records: int, timeout_s: float) -> list[Message]:
        self._guard.check()
        records = await super().fetch(max_records, timeout_s)
        for message in records:
            message.delivery_count = delivery_count(message)
        return self._guard.hold(records)

    async def settle(self, outcomes: list[tuple[Message, Acknowledgement]]) -> None:
        self._check()
        settled = Settlement(self._ledger, self._guard.take(), outcomes)
        try:
            for kind in (Acknowledgement.ACCEPT, Acknowledgement.REJECT):
                for deliveries in settled.of(kind).values():
                    for delivery in deliveries:
                        await asyncio.wait_for(delivery.ack(), CALL_TIMEOUT_S)
            for deliveries in settled.of(Acknowledgement.RELEASE).values():
                for delivery in deliveries:
                    await asyncio.wait_for(delivery.nack(requeue=True), CALL_TIMEOUT_S)
        except TRANSPORT_ERRORS as exc:
            # The connection is gone: RabbitMQ returns what was not acknowledged to the queue.
            raise TransportError(f"cannot settle deliveries of {self._group}: {exc}") from exc

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Queues keep no consumer offsets: :meth:`settle` makes the progress."""
