"""Redis Streams (XADD / XREADGROUP + XACK) driven by redis-py with pipelines.

redis-py pays Python for every command it packs and every reply it parses, so a pipeline of
``PIPELINE_DEPTH`` commands per round trip is what keeps the client from being the whole story;
``client_alone`` measures packing alone (no server) to show that ceiling.
"""

from __future__ import annotations

import os
import time
from typing import Any, Final

import redis
from bench.peers.common import (
    Collector,
    Latency,
    PacerReport,
    Throughput,
    Timer,
    pace_sync,
    start_pacer,
)
from bench.peers.common import payload as stamped
from redis.connection import Connection

PIPELINE_DEPTH: Final = 1000
"""Commands per round trip: Redis fsyncs the AOF once per event-loop pass, so deeper pipelines
give it bigger group commits; 1,000 is where redis-py's own cost dominates."""
READ_COUNT: Final = 1000
GROUP: Final = "compare-bench"
FIELD: Final = b"v"


class RedisStreamsSystem:
    kind = "redis"
    client = f"redis-py, 1 process, pipelines of {PIPELINE_DEPTH} XADD; XREADGROUP COUNT 1000"

    def __init__(self, name: str, url: str, durability: str) -> None:
        self.name = name
        self.url = url
        self.durability = durability
        self.redis = redis.Redis.from_url(url)

    def prepare(self, dest: str) -> None:
        # The group starts at the end ($): a stream reader sees what is written after it joins.
        self.redis.xgroup_create(dest, GROUP, id="$", mkstream=True)

    def produce(self, dest: str, size: int, seconds: float) -> Throughput:
        value = os.urandom(size)
        pipe = self.redis.pipeline(transaction=False)
        sent = 0
        with Timer() as timer:
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                for _ in range(PIPELINE_DEPTH):
                    pipe.xadd(dest, {FIELD: value})
                pipe.execute()  # replies arrive once each XADD is in the fsynced AOF
                sent += PIPELINE_DEPTH
        landed = self.redis.xlen(dest)
        if landed != sent:
            raise RuntimeError(f"{self.name}: {sent} XADD acknowledged, {landed} in the stream")
        return Throughput(sent, size, timer.seconds, timer.cpu_s)

    def consume(self, dest: str, size: int, records: int) -> Throughput:
        self.redis.xgroup_setid(dest, GROUP, id="0")  # read the stream from its start
        got = 0
        with Timer() as timer:
            while got < records:
                entries: Any = self.redis.xreadgroup(
                    GROUP, "reader", {dest: ">"}, count=READ_COUNT, block=1000
                )
                if not entries:
                    raise RuntimeError(f"{self.name}: consumer stalled at {got}/{records}")
                ids = [entry_id for entry_id, _ in entries[0][1]]
                self.redis.xack(dest, GROUP, *ids)
                got += len(ids)
        return Throughput(got, size, timer.seconds, timer.cpu_s)

    def latency(self, dest: str, rate: int, seconds: float, size: int, warmup_s: float) -> Latency:
        reader = redis.Redis.from_url(self.url)
        collector = Collector(start_pacer(self.kind, self.url, dest, rate, seconds, size), warmup_s)
        while not collector.finished:
            entries: Any = reader.xreadgroup(
                GROUP, "latency", {dest: ">"}, count=READ_COUNT, block=50
            )
            if entries:
                batch = entries[0][1]
                collector.add([fields[FIELD] for _, fields in batch])
                reader.xack(dest, GROUP, *[entry_id for entry_id, _ in batch])
        reader.close()
        return collector.result(rate, size)

    def client_alone(self, size: int, records: int) -> dict[str, Any]:
        """Packing XADD commands into wire bytes, as a pipeline does, with no server."""
        connection = Connection()  # type: ignore[no-untyped-call]
        value = os.urandom(size)
        with Timer() as timer:
            for _ in range(records // PIPELINE_DEPTH):
                connection.pack_commands(  # type: ignore[no-untyped-call]
                    [("XADD", "t", "*", FIELD, value) for _ in range(PIPELINE_DEPTH)]
                )
        return {
            "records_per_s": records // PIPELINE_DEPTH * PIPELINE_DEPTH / timer.seconds,
            "what": "redis-py packing XADD pipelines, no server (reply parsing not included)",
        }

    def stop(self) -> None:
        self.redis.close()


def pace(url: str, dest: str, rate: int, seconds: float, size: int) -> PacerReport:
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)

    def send(dues: list[int]) -> None:
        for due in dues:
            pipe.xadd(dest, {FIELD: stamped(size, due)})
        pipe.execute()

    try:
        return pace_sync(send, rate, seconds)
    finally:
        client.close()
