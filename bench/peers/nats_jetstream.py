"""NATS JetStream, file store, driven by nats-py.

Publishing uses ``publish_async`` with up to ``MAX_PENDING`` acknowledgements in flight, so the
JetStream round trip is overlapped. Consuming uses a durable pull consumer with AckAll (one ack
per fetched batch); latency uses an ordered push consumer (no acks, lowest delivery delay).
``client_alone`` publishes core NATS messages nobody subscribes to: the server drops them, so it
is a trivially fast sink and the figure is nats-py's own ceiling.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Final

import nats
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
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

MAX_PENDING: Final = 4000
FETCH_BATCH: Final = 1000
SINK_SECONDS_MAX: Final = 3.0


async def add_stream(url: str, dest: str) -> None:
    client = await nats.connect(url)
    try:
        await client.jetstream().add_stream(
            StreamConfig(name=dest, subjects=[dest], storage=StorageType.FILE)
        )
    finally:
        await client.close()


async def publish_for(url: str, dest: str, size: int, seconds: float) -> int:
    client = await nats.connect(url)
    try:
        js = client.jetstream(publish_async_max_pending=MAX_PENDING)
        value = os.urandom(size)
        sent = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for _ in range(100):
                await js.publish_async(dest, value)  # waits only when MAX_PENDING are in flight
            sent += 100
        await asyncio.wait_for(js.publish_async_completed(), 60)
        info = await js.stream_info(dest)
        if info.state.messages != sent:
            raise RuntimeError(f"{sent} publishes acknowledged, {info.state.messages} stored")
        return sent
    finally:
        await client.close()


async def consume_count(url: str, dest: str, records: int) -> int:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        sub = await js.pull_subscribe(
            dest,
            durable="compare-bench",
            config=ConsumerConfig(ack_policy=AckPolicy.ALL, max_ack_pending=FETCH_BATCH * 4),
        )
        got = 0
        while got < records:
            batch = await sub.fetch(min(FETCH_BATCH, records - got), timeout=30)
            got += len(batch)
            await batch[-1].ack()  # AckAll: acknowledges the whole batch
        return got
    finally:
        await client.close()


async def sink_rate(url: str, size: int, records: int) -> float:
    client = await nats.connect(url)
    try:
        value = os.urandom(size)
        sent = 0
        with Timer() as timer:
            deadline = time.perf_counter() + SINK_SECONDS_MAX
            while sent < records and time.perf_counter() < deadline:
                for _ in range(100):
                    await client.publish("compare.nobody.listens", value)
                sent += 100
            await client.flush()
        return sent / timer.seconds
    finally:
        await client.close()


class NatsSystem:
    kind = "nats"
    client = (
        f"nats-py, 1 process, publish_async with {MAX_PENDING} acks in flight; "
        f"pull consumer, fetch {FETCH_BATCH}, AckAll"
    )

    def __init__(self, name: str, url: str, durability: str) -> None:
        self.name = name
        self.url = url
        self.durability = durability

    def prepare(self, dest: str) -> None:
        asyncio.run(add_stream(self.url, dest))

    def produce(self, dest: str, size: int, seconds: float) -> Throughput:
        with Timer() as timer:
            sent = asyncio.run(publish_for(self.url, dest, size, seconds))
        return Throughput(sent, size, timer.seconds, timer.cpu_s)

    def consume(self, dest: str, size: int, records: int) -> Throughput:
        with Timer() as timer:
            got = asyncio.run(consume_count(self.url, dest, records))
        return Throughput(got, size, timer.seconds, timer.cpu_s)

    def latency(self, dest: str, rate: int, seconds: float, size: int, warmup_s: float) -> Latency:
        return asyncio.run(self._latency(dest, rate, seconds, size, warmup_s))

    async def _latency(
        self, dest: str, rate: int, seconds: float, size: int, warmup_s: float
    ) -> Latency:
        client = await nats.connect(self.url)
        try:
            pending: list[bytes] = []
            stamps: list[int] = []

            async def on_message(msg: Any) -> None:
                stamps.append(time.monotonic_ns())
                pending.append(msg.data)

            await client.jetstream().subscribe(dest, cb=on_message, ordered_consumer=True)
            child = start_pacer(self.kind, self.url, dest, rate, seconds, size)
            collector = Collector(child, warmup_s)
            while not collector.finished:
                await asyncio.sleep(0.002)
                batch, pending[:] = pending[:], []
                received, stamps[:] = stamps[:], []
                collector.add(batch, received)
        finally:
            await client.close()
        return collector.result(rate, size)

    def client_alone(self, size: int, records: int) -> dict[str, Any]:
        return {
            "records_per_s": asyncio.run(sink_rate(self.url, size, records)),
            "what": "nats-py core publish to a subject nobody subscribes (server drops it)",
        }

    def stop(self) -> None:
        pass


async def pace_publish(url: str, dest: str, rate: int, seconds: float, size: int) -> PacerReport:
    client = await nats.connect(url)
    try:
        js = client.jetstream(publish_async_max_pending=MAX_PENDING)

        async def send(dues: list[int]) -> None:
            for due in dues:
                await js.publish_async(dest, payload(size, due))

        report = await pace_async(send, rate, seconds)
        await asyncio.wait_for(js.publish_async_completed(), 60)
        return report
    finally:
        await client.close()


def pace(url: str, dest: str, rate: int, seconds: float, size: int) -> PacerReport:
    return asyncio.run(pace_publish(url, dest, rate, seconds, size))
