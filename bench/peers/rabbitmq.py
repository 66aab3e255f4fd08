"""RabbitMQ: a durable quorum queue, persistent messages, publisher confirms; aio-pika.

Publishing keeps ``CONFIRM_WINDOW`` messages awaiting confirmation, so the round trip to the
quorum queue's fsync is overlapped rather than paid per message. aio-pika spends a lot of
Python per message, which caps one process; ``client_alone`` publishes without confirms to a
routing key no queue is bound to (the broker drops it) to show that ceiling.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Final

import aio_pika
from bench.peers.common import (
    Collector,
    Latency,
    PacerReport,
    Throughput,
    Timer,
    pace_async,
    payload,
    start_pacer,
)

CONFIRM_WINDOW: Final = 1000
PREFETCH: Final = 2000
ACK_EVERY: Final = 500
"""Acknowledge with multiple=true once per this many deliveries: one frame, not 500."""
QUEUE_ARGS: Final[dict[str, Any]] = {"x-queue-type": "quorum"}


async def declare(url: str, dest: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(dest, durable=True, arguments=QUEUE_ARGS)


def message(body: bytes) -> aio_pika.Message:
    return aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)


async def publish_for(url: str, dest: str, size: int, seconds: float) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = channel.default_exchange
        value = os.urandom(size)
        sent = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            # A window of publishes in flight; each await returns on its broker confirm.
            await asyncio.gather(
                *(exchange.publish(message(value), dest) for _ in range(CONFIRM_WINDOW))
            )
            sent += CONFIRM_WINDOW
        return sent


async def consume_count(url: str, dest: str, records: int) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        queue = await channel.declare_queue(dest, durable=True, arguments=QUEUE_ARGS)
        got = 0
        async with queue.iterator() as deliveries:
            async for delivery in deliveries:
                got += 1
                if got % ACK_EVERY == 0 or got == records:
                    await delivery.ack(multiple=True)
                if got >= records:
                    break
        return got


SINK_SECONDS_MAX: Final = 3.0


async def sink_rate(url: str, size: int, records: int) -> float:
    """Publishes per second that aio-pika manages when the broker only has to drop them."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=False)
        exchange = channel.default_exchange
        value = os.urandom(size)
        sent = 0
        with Timer() as timer:
            deadline = time.perf_counter() + SINK_SECONDS_MAX
            while sent < records and time.perf_counter() < deadline:
                for _ in range(100):
                    await exchange.publish(
                        aio_pika.Message(value), "compare.nobody.listens", mandatory=False
                    )
                sent += 100
        return sent / timer.seconds


class RabbitSystem:
    kind = "rabbitmq"
    client = (
        f"aio-pika, 1 process, {CONFIRM_WINDOW} confirms in flight; "
        f"consume prefetch {PREFETCH}, ack multiple per {ACK_EVERY}"
    )

    def __init__(self, name: str, url: str, durability: str) -> None:
        self.name = name
        self.url = url
        self.durability = durability

    def prepare(self, dest: str) -> None:
        asyncio.run(declare(self.url, dest))

    def produce(self, dest: str, size: int, seconds: float) -> Throughput:
        with Timer() as timer:
            sent = asyncio.run(publish_for(self.url, dest, size, seconds))
        return Throughput(sent, size, timer.seconds, timer.cpu_s)

    def consume(self, dest: str, size: int, records: int) -> Throughput:
        with Timer() as timer:
            got = asyncio.run(asyncio.wait_for(consume_count(self.url, dest, records), 300))
        return Throughput(got, size, timer.seconds, timer.cpu_s)

    def latency(self, dest: str, rate: int, seconds: float, size: int, warmup_s: float) -> Latency:
        return asyncio.run(self._latency(dest, rate, seconds, size, warmup_s))

    async def _latency(
        self, dest: str, rate: int, seconds: float, size: int, warmup_s: float
    ) -> Latency:
        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=PREFETCH)
            queue = await channel.declare_queue(dest, durable=True, arguments=QUEUE_ARGS)
            pending: list[bytes] = []
            stamps: list[int] = []
            last: list[aio_pika.abc.AbstractIncomingMessage] = []

            async def on_message(delivery: aio_pika.abc.AbstractIncomingMessage) -> None:
                stamps.append(time.monotonic_ns())
                pending.append(delivery.body)
                last[:] = [delivery]

            await queue.consume(on_message)
            child = start_pacer(self.kind, self.url, dest, rate, seconds, size)
            collector = Collector(child, warmup_s)
            while not collector.finished:
                await asyncio.sleep(0.002)
                batch, pending[:] = pending[:], []
                received, stamps[:] = stamps[:], []
                collector.add(batch, received)
                if last:
                    # One multiple=true ack per pass: prefetch never fills, no frame per message.
                    delivery, last[:] = last[0], []
                    await delivery.ack(multiple=True)
        return collector.result(rate, size)

    def client_alone(self, size: int, records: int) -> dict[str, Any]:
        return {
            "records_per_s": asyncio.run(sink_rate(self.url, size, records)),
            "what": (
                "aio-pika publish, no confirms, to a routing key with no queue (the broker "
                "drops it): the client's own ceiling"
            ),
        }

    def stop(self) -> None:
        pass


async def pace_publish(url: str, dest: str, rate: int, seconds: float, size: int) -> PacerReport:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = channel.default_exchange
        in_flight: set[asyncio.Future[Any]] = set()

        async def send(dues: list[int]) -> None:
            for due in dues:
                task = asyncio.ensure_future(exchange.publish(message(payload(size, due)), dest))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if len(in_flight) > 10 * CONFIRM_WINDOW:
                await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.sleep(0)

        report = await pace_async(send, rate, seconds)
        if in_flight:
            await asyncio.gather(*in_flight)
        return report


def pace(url: str, dest: str, rate: int, seconds: float, size: int) -> PacerReport:
    return asyncio.run(pace_publish(url, dest, rate, seconds, size))
