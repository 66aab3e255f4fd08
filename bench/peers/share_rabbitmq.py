"""RabbitMQ quorum queues for the share-group bench: the queue RabbitMQ users compare with.

A durable quorum queue, persistent messages published with confirms; each consumer child has
one connection and channel with a prefetch of ``share_kafka.FETCH_RECORDS`` (what a share
consumer acquires per poll), acknowledges each delivery on its own (``basic.ack``, not
``multiple``), and gives the sampled records back once with ``basic.nack(requeue=True)``: the
quorum queue redelivers them with ``x-delivery-count`` set.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from typing import Any, Final

import aio_pika
from bench.peers.share_common import (
    POLL_S,
    RUN_TIMEOUT_S,
    ChildResult,
    Shared,
    id_of,
    released_on_first_delivery,
    value_of,
)
from bench.peers.share_kafka import FETCH_RECORDS

CONFIRM_WINDOW: Final = 1000
QUEUE_ARGS: Final[dict[str, Any]] = {"x-queue-type": "quorum"}


async def _prepare(url: str, queue: str, records: int, size: int) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True, arguments=QUEUE_ARGS)
        exchange = channel.default_exchange
        for first in range(0, records, CONFIRM_WINDOW):
            # A window of publishes in flight; each await returns on its broker confirm.
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            value_of(record_id, size),
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        queue,
                    )
                    for record_id in range(first, min(records, first + CONFIRM_WINDOW))
                )
            )


def prepare_and_publish(url: str, queue: str, records: int, size: int) -> None:
    asyncio.run(_prepare(url, queue, records, size))


def _delivery_count(message: aio_pika.abc.AbstractIncomingMessage) -> int:
    """Kafka's delivery count from the quorum queue's ``x-delivery-count`` (the number of
    earlier deliveries, absent on the first)."""
    earlier = message.headers.get("x-delivery-count")
    return 1 + int(earlier) if isinstance(earlier, int) else 1


async def _consume(url: str, queue_name: str, shared: Shared, result: ChildResult) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=FETCH_RECORDS)
        queue = await channel.declare_queue(queue_name, durable=True, arguments=QUEUE_ARGS)
        finished = asyncio.Event()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            now = time.monotonic_ns()
            if result.first_record_ns is None:
                result.first_record_ns = now
            record_id, count = id_of(message.body), _delivery_count(message)
            result.max_delivery_count = max(result.max_delivery_count, count)
            if count > 1:
                result.redelivered_ns.setdefault(record_id, now)
            if count == 1 and released_on_first_delivery(record_id):
                result.released_ns[record_id] = time.monotonic_ns()
                await message.nack(requeue=True)
            else:
                await message.ack()
                result.accepted += 1
                shared.add_accepted(1)
                if shared.done():
                    finished.set()

        with shared.ready.get_lock():
            shared.ready.value += 1
        await asyncio.to_thread(shared.start.wait)
        cpu0 = time.process_time()
        tag = await queue.consume(on_message)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        # The last acknowledgement may be another child's: this one looks at the shared count
        # every POLL_S as well as after each of its own.
        while not shared.done() and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), POLL_S)
        result.cpu_s = time.process_time() - cpu0
        await queue.cancel(tag)


def consumer_child(url: str, queue: str, shared: Shared) -> None:
    result = ChildResult()
    try:
        asyncio.run(_consume(url, queue, shared, result))
    except Exception:
        result.error = traceback.format_exc()
    shared.results.put(result.as_json())
