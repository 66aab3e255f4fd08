"""The framework's cost on RabbitMQ, Redis Streams and NATS JetStream, against each raw client.

    .venv/bin/python bench/framework_transports.py [--records 100000] [--rounds 2]
        [--publish-records 20000] [--window 64] [--systems amqp,redis,redis_everysec,nats]
        [--profile SYSTEM,...] [--quick] [--out DIR]

For each system a real server is started on a free loopback port (``tests/peers/servers.py``),
``--records`` JSON records of ~100 B (shaped as ``app.publish`` writes them: key and
``shoal.message-id`` header in the transport's own encoding) are pre-loaded once, and then,
alternating within the same run so that machine noise falls on both alike:

- **raw consume**: the raw client's straightforward loop doing the framework's work: decode
  every value with msgspec, acknowledge in batches of 500 (the App's fetch size):
  - amqp: aio-pika consumer on a quorum queue (the App's declaration), prefetch as the App
    sets it, ``ack(multiple=True)`` every 500 deliveries;
  - redis: ``XREADGROUP COUNT 500`` + one ``XACK`` of the batch;
  - nats: durable pull consumer with AckExplicit (the App's config), ``fetch(500)``, then
    ``ack()`` per message (fire-and-forget). A second raw figure, ``ack_sync`` per message
    gathered per batch, is what the App does (double acks): it shows what that choice costs.
- **framework consume**: ``App(url)`` with ``async def handle(doc: dict) -> None``, timed from
  the first record handled to the last (start-up and group joins are not counted; neither is
  the raw loop's).
- **publish**: ``app.publish(topic, dict)`` vs the raw client publishing the msgspec-encoded
  dict with the same durability (RabbitMQ publisher confirms, persistent, to the topic's
  exchange; Redis ``XADD``; JetStream publish awaiting its ack), sequential awaits and in
  ``asyncio.gather`` windows of ``--window`` concurrent publishes.

Figures: msgs/s of each (median over rounds), the ratio framework/raw (target >= 0.5) and the
time the framework adds per message (1/framework - 1/raw, in µs). ``--profile SYSTEM,...`` runs
one more framework consume (and sequential publish) of each under cProfile (the transports do
their I/O on the event loop, so one profiler on this thread sees everything) and prints where
the time goes. Nothing here asserts speed; it prints a markdown table and writes
``framework_transports.json`` and ``.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, bench/ is on sys.path and the repository root is not; the peer servers
# (tests/peers/servers.py) live there.
sys.path.insert(0, str(ROOT))

import aio_pika  # noqa: E402
import msgspec  # noqa: E402
import nats  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from tests.peers.servers import (  # noqa: E402
    PeerServer,
    RedisServer,
    start_nats,
    start_rabbitmq,
)

from shoal import App  # noqa: E402
from shoal.app.message import MESSAGE_ID_HEADER  # noqa: E402
from shoal.app.transports.amqp_codec import amqp_properties, routing_key  # noqa: E402
from shoal.app.transports.amqp_topology import (  # noqa: E402
    PREFETCH_MAX,
    AmqpOptions,
    Subscription,
    declare_group_queue,
    declare_topic,
)
from shoal.app.transports.nats_jetstream import (  # noqa: E402
    MSG_ID_HEADER,
    NatsSettings,
    nats_headers,
    stream_name,
)
from shoal.app.transports.redis_streams import entry_fields  # noqa: E402

RESULTS_DIR = Path(__file__).parent / "results"
BATCH = 500
"""The App's fetch size (runner.FETCH_RECORDS_MAX): the raw loops ack in batches of it too."""
PRELOAD_WINDOW = 1_000
"""Concurrent publishes while pre-loading: fast, and bounded so memory stays small."""
CONSUME_TIMEOUT_S = 600.0
"""A consume that has not seen every record by then has stalled: fail instead of hanging."""
TOPIC = "bench.transports"
PUBLISH_TOPIC = "bench.publish"
SYSTEMS = ("amqp", "redis", "redis_everysec", "nats")
_DECODE = msgspec.json.Decoder().decode
_ENCODE = msgspec.json.Encoder().encode


def payload(size: int, n: int) -> bytes:
    """A JSON document of ``size`` bytes, as bench/framework.py writes them (not imported from
    there: that would load confluent-kafka and the Kafka bench for four lines)."""
    body = {"id": n, "symbol": "ACME", "pad": ""}
    raw = json.dumps(body).encode()
    body["pad"] = "x" * max(size - len(raw), 0)
    return json.dumps(body).encode()


def record(n: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(value, key, headers) of the n-th record, as app.publish would send it."""
    return payload(100, n), str(n % 64).encode(), [(MESSAGE_ID_HEADER, uuid.uuid4().hex.encode())]


def doc(n: int) -> dict[str, Any]:
    """What a publisher hands to app.publish (and the raw publisher encodes itself)."""
    return {"id": n, "symbol": "ACME", "pad": "x" * 52}


async def windows(count: int, window: int, one: Callable[[int], Awaitable[object]]) -> float:
    """msgs/s of ``count`` calls of ``one``: awaited one by one (window 1) or gathered."""
    started = time.perf_counter()
    if window <= 1:
        for n in range(count):
            await one(n)
    else:
        for base in range(0, count, window):
            await asyncio.gather(*(one(n) for n in range(base, min(base + window, count))))
    return count / (time.perf_counter() - started)


class Done:
    """Counts handled records; remembers when the first and the last one were handled."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen = 0
        self.first = 0.0
        self.last = 0.0
        self.event = asyncio.Event()

    def add(self, n: int = 1) -> None:
        if not self.seen:
            self.first = time.perf_counter()
        self.seen += n
        if self.seen >= self.expected:
            self.last = time.perf_counter()
            self.event.set()

    async def wait(self) -> float:
        await asyncio.wait_for(self.event.wait(), CONSUME_TIMEOUT_S)
        return self.expected / (self.last - self.first)


# -- raw clients ---------------------------------------------------------------------------------


class System:
    """A server, how to pre-load it, and the raw client's consume and publish loops."""

    name = ""
    durability = ""
    raw_consume_loop = ""

    def __init__(self, server: PeerServer) -> None:
        self.server = server

    @property
    def url(self) -> str:
        return self.server.url

    async def prepare(self, groups: list[str]) -> None:
        """Create what the groups read before the records go in (RabbitMQ routes a record
        only to queues that are bound when it arrives)."""

    async def preload(self, records: int) -> None:
        raise NotImplementedError

    async def raw_consume(self, group: str, records: int) -> dict[str, float]:
        raise NotImplementedError

    async def raw_publish(self, count: int, window: int) -> float:
        raise NotImplementedError


class Amqp(System):
    name = "amqp"
    durability = "quorum queue, persistent, publisher confirms"
    raw_consume_loop = "aio-pika consume, prefetch as the App, ack(multiple=True) per 500"
    options = AmqpOptions()

    async def prepare(self, groups: list[str]) -> None:
        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel()
            await declare_topic(channel, self.options, PUBLISH_TOPIC)
            for group in groups:
                # The App's own declaration: the raw loop reads the same kind of queue.
                await declare_group_queue(channel, self.options, Subscription.parse(TOPIC), group)

    async def preload(self, records: int) -> None:
        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(TOPIC, ensure=False)

            async def one(n: int) -> None:
                value, key, headers = record(n)
                message = aio_pika.Message(
                    value,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    **amqp_properties(key, headers),
                )
                await exchange.publish(message, routing_key(TOPIC, key))

            await windows(records, PRELOAD_WINDOW, one)

    async def raw_consume(self, group: str, records: int) -> dict[str, float]:
        connection = await aio_pika.connect(self.url)
        done = Done(records)
        async with connection:
            channel = await connection.channel()
            # What AmqpConsumer._consume sets for a fetch of 500.
            await channel.set_qos(prefetch_count=min(BATCH, PREFETCH_MAX))
            queue = await channel.get_queue(f"{TOPIC}.{group}", ensure=False)
            unacked = 0

            async def receive(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                nonlocal unacked
                _DECODE(message.body)
                unacked += 1
                if unacked == BATCH or done.seen + 1 == records:
                    unacked = 0
                    await message.ack(multiple=True)
                done.add()

            tag = await queue.consume(receive, no_ack=False)
            rate = await done.wait()
            await queue.cancel(tag)
        return {"raw": rate}

    async def raw_publish(self, count: int, window: int) -> float:
        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(PUBLISH_TOPIC, ensure=False)

            async def one(n: int) -> None:
                message = aio_pika.Message(
                    _ENCODE(doc(n)), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                )
                await exchange.publish(message, PUBLISH_TOPIC)

            return await windows(count, window, one)


class Redis(System):
    name = "redis"
    raw_consume_loop = "XREADGROUP COUNT 500 + XACK of the batch"

    def __init__(self, server: PeerServer) -> None:
        super().__init__(server)
        assert isinstance(server, RedisServer)
        self.name = "redis" if server.appendfsync == "always" else f"redis_{server.appendfsync}"
        self.durability = f"AOF appendfsync {server.appendfsync}"

    async def preload(self, records: int) -> None:
        client = aioredis.Redis.from_url(self.url)
        try:
            for base in range(0, records, PRELOAD_WINDOW):
                pipe = client.pipeline(transaction=False)
                for n in range(base, min(base + PRELOAD_WINDOW, records)):
                    pipe.xadd(TOPIC, entry_fields(*record(n)))  # type: ignore[arg-type]
                await pipe.execute()
        finally:
            await client.aclose()

    async def raw_consume(self, group: str, records: int) -> dict[str, float]:
        client = aioredis.Redis.from_url(self.url)
        done = Done(records)
        try:
            await client.xgroup_create(TOPIC, group, id="0", mkstream=True)
            while done.seen < records:
                reply: Any = await client.xreadgroup(
                    group, "raw", {TOPIC: ">"}, count=BATCH, block=100
                )
                for _stream, entries in reply or []:
                    ids = []
                    for entry_id, fields in entries:
                        _DECODE(fields[b"value"])
                        ids.append(entry_id)
                        done.add()
                    await client.xack(TOPIC, group, *ids)
            return {"raw": await done.wait()}
        finally:
            await client.aclose()

    async def raw_publish(self, count: int, window: int) -> float:
        client = aioredis.Redis.from_url(self.url)
        try:
            return await windows(
                count, window, lambda n: client.xadd(PUBLISH_TOPIC, {"value": _ENCODE(doc(n))})
            )
        finally:
            await client.aclose()


class Nats(System):
    name = "nats"
    durability = "JetStream file store, publish awaits the stream's ack"
    raw_consume_loop = "pull consumer (AckExplicit) fetch(500) + ack() per message"
    settings = NatsSettings(servers=[])

    async def prepare(self, groups: list[str]) -> None:
        nc = await nats.connect(self.url)
        try:
            js = nc.jetstream()
            for topic in (TOPIC, PUBLISH_TOPIC):
                await js.add_stream(self.settings.stream_config(topic))
        finally:
            await nc.close()

    async def preload(self, records: int) -> None:
        nc = await nats.connect(self.url)
        try:
            js = nc.jetstream()

            async def one(n: int) -> None:
                value, key, headers = record(n)
                raw = nats_headers(key, headers)
                raw[MSG_ID_HEADER] = headers[0][1].decode()
                await js.publish(TOPIC, value, stream=stream_name(TOPIC), headers=raw)

            await windows(records, PRELOAD_WINDOW, one)
        finally:
            await nc.close()

    async def raw_consume(self, group: str, records: int) -> dict[str, float]:
        out = {"raw": await self._consume(group, records, sync_acks=False)}
        # Same work with the App's acknowledgement (double ack): separates the transport's
        # choice of ack from the rest of the framework.
        out["raw_ack_sync"] = await self._consume(group + "-sync", records, sync_acks=True)
        return out

    async def _consume(self, group: str, records: int, *, sync_acks: bool) -> float:
        nc = await nats.connect(self.url)
        done = Done(records)
        try:
            js = nc.jetstream()
            config = self.settings.consumer_config(TOPIC, group)
            await js.add_consumer(stream_name(TOPIC), config)
            sub = await js.pull_subscribe_bind(config.durable_name, stream=stream_name(TOPIC))
            while done.seen < records:
                try:
                    msgs = await sub.fetch(BATCH, timeout=0.1)
                except nats.errors.TimeoutError:
                    continue
                for msg in msgs:
                    _DECODE(msg.data)
                    if not sync_acks:
                        await msg.ack()
                    done.add()
                if sync_acks:
                    await asyncio.gather(*(m.ack_sync() for m in msgs))
            return await done.wait()
        finally:
            await nc.close()

    async def raw_publish(self, count: int, window: int) -> float:
        nc = await nats.connect(self.url)
        try:
            js = nc.jetstream()
            stream = stream_name(PUBLISH_TOPIC)
            return await windows(
                count,
                window,
                lambda n: js.publish(PUBLISH_TOPIC, _ENCODE(doc(n)), stream=stream),
            )
        finally:
            await nc.close()


# -- the framework -------------------------------------------------------------------------------


async def framework_consume(url: str, group: str, records: int) -> float:
    app = App(url, lag_interval_s=0)
    done = Done(records)

    @app.subscriber(TOPIC, group=group)
    async def handle(doc: dict[str, Any]) -> None:
        done.add()

    async with app:
        return await done.wait()


async def framework_publish(url: str, count: int, window: int) -> float:
    async with App(url, lag_interval_s=0) as app:
        await app.publish(PUBLISH_TOPIC, doc(0))  # connection and topic set-up: not timed
        return await windows(count, window, lambda n: app.publish(PUBLISH_TOPIC, doc(n)))


def profiled(run: Callable[[], Awaitable[object]], top: int = 30) -> str:
    """cProfile of ``run`` on a fresh event loop: top functions by own and by cumulative time."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(run())  # type: ignore[arg-type]
    finally:
        profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return text.getvalue()


# -- running -------------------------------------------------------------------------------------


def start_server(name: str, data_dir: Path) -> System:
    if name == "amqp":
        return Amqp(start_rabbitmq(data_dir))
    if name == "redis":
        return Redis(RedisServer(data_dir, "always").start())
    if name == "redis_everysec":
        return Redis(RedisServer(data_dir, "everysec").start())
    if name == "nats":
        return Nats(start_nats(data_dir))
    raise ValueError(f"unknown system {name!r}: choose from {', '.join(SYSTEMS)}")


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values)),
        "min": round(min(values)),
        "max": round(max(values)),
    }


def compare(fw: float, raw: float) -> dict[str, float]:
    return {"ratio": round(fw / raw, 3), "added_us_per_msg": round((1 / fw - 1 / raw) * 1e6, 2)}


def bench_system(system: System, args: argparse.Namespace) -> dict[str, Any]:
    groups = [f"{who}-{r}" for r in range(args.rounds) for who in ("raw", "fw")]
    if system.name in args.profile:
        groups.append("profiled")
    asyncio.run(system.prepare(groups))
    began = time.perf_counter()
    asyncio.run(system.preload(args.records))
    preload_s = time.perf_counter() - began
    raw: dict[str, list[float]] = {}
    fw: list[float] = []
    for r in range(args.rounds):
        # Alternate raw and framework so that a noisy neighbour hits both.
        for name, rate in asyncio.run(system.raw_consume(f"raw-{r}", args.records)).items():
            raw.setdefault(name, []).append(rate)
        fw.append(asyncio.run(framework_consume(system.url, f"fw-{r}", args.records)))
    publish: dict[str, Any] = {}
    for window in (1, args.window):
        raw_pub: list[float] = []
        fw_pub: list[float] = []
        for _ in range(args.rounds):
            raw_pub.append(asyncio.run(system.raw_publish(args.publish_records, window)))
            fw_pub.append(asyncio.run(framework_publish(system.url, args.publish_records, window)))
        label = "sequential" if window == 1 else f"window_{window}"
        raw_med, fw_med = statistics.median(raw_pub), statistics.median(fw_pub)
        publish[label] = {
            "raw_msgs_per_s": summary(raw_pub),
            "framework_msgs_per_s": summary(fw_pub),
            **compare(fw_med, raw_med),
        }
    raw_med, fw_med = statistics.median(raw["raw"]), statistics.median(fw)
    result: dict[str, Any] = {
        "durability": system.durability,
        "raw_consume_loop": system.raw_consume_loop,
        "preload_msgs_per_s": round(args.records / preload_s),
        "consume": {
            "raw_msgs_per_s": summary(raw["raw"]),
            "framework_msgs_per_s": summary(fw),
            **compare(fw_med, raw_med),
        },
        "publish": publish,
    }
    for name, values in raw.items():
        if name != "raw":
            result["consume"][f"{name}_msgs_per_s"] = summary(values)
            result["consume"][f"ratio_to_{name}"] = round(fw_med / statistics.median(values), 3)
    if system.name in args.profile:
        consume = profiled(lambda: framework_consume(system.url, "profiled", args.records))
        print(f"\n== cProfile: framework consuming from {system.name} ==\n{consume}")
        sending = profiled(lambda: framework_publish(system.url, args.publish_records, 1))
        print(f"\n== cProfile: framework publishing to {system.name}, sequential ==\n{sending}")
        result["profile"] = {"consume": consume, "publish_sequential": sending}
    return result


def markdown(results: dict[str, Any]) -> str:
    cfg = results["config"]
    lines = [
        "# Framework vs raw client per transport",
        "",
        f"{cfg['records']:,} records of ~100 B JSON pre-loaded; consume: median of "
        f"{cfg['rounds']} alternating rounds (min-max); publish: {cfg['publish_records']:,} "
        f"records, sequential awaits and gather windows of {cfg['window']}.",
        f"Machine: {cfg['machine']}. Figures are noisy: read the ratios.",
        "",
        "| system | durability | what | raw msg/s | framework msg/s | framework / raw | "
        "added µs/msg |",
        "|---|---|---|---:|---:|---:|---:|",
    ]

    def row(name: str, durability: str, what: str, cell: dict[str, Any]) -> str:
        raw, fw = cell["raw_msgs_per_s"], cell["framework_msgs_per_s"]
        return (
            f"| {name} | {durability} | {what} | {raw['median']:,} ({raw['min']:,}-{raw['max']:,})"
            f" | {fw['median']:,} ({fw['min']:,}-{fw['max']:,}) | {cell['ratio']:.2f} | "
            f"{cell['added_us_per_msg']:.1f} |"
        )

    for name, entry in results["systems"].items():
        lines.append(row(name, entry["durability"], "consume", entry["consume"]))
        for label, cell in entry["publish"].items():
            lines.append(row(name, "", f"publish, {label.replace('_', ' ')}", cell))
    lines += ["", "Raw consume loops:", ""]
    for name, entry in results["systems"].items():
        line = f"- {name}: {entry['raw_consume_loop']}"
        extra = entry["consume"].get("raw_ack_sync_msgs_per_s")
        if extra:
            line += (
                f"; with ack_sync per message (the App's double ack): {extra['median']:,} msg/s, "
                f"framework / that: {entry['consume']['ratio_to_raw_ack_sync']:.2f}"
            )
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--publish-records", type=int, default=20_000)
    # 64, not 100: redis-py's pool holds 100 connections by default and raises (not waits)
    # past that, and the Redis transport keeps one for its delay scheduler, so a window of 100
    # app.publish calls fails with "Too many connections".
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument(
        "--profile", default="", help="comma-separated systems to profile the framework on"
    )
    parser.add_argument("--quick", action="store_true", help="few records, one round (CI)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--dir", type=Path, default=None, help="parent of the server data dirs")
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.rounds, args.publish_records, args.window = 2_000, 1, 300, 50
    names = [s for s in args.systems.split(",") if s]
    args.profile = [s for s in args.profile.split(",") if s]

    results: dict[str, Any] = {
        "config": {
            "records": args.records,
            "rounds": args.rounds,
            "publish_records": args.publish_records,
            "window": args.window,
            "quick": args.quick,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with other work "
            f"(load average {os.getloadavg()[0]:.1f} at start), "
            f"{platform.python_implementation()} {platform.python_version()}",
        },
        "systems": {},
    }
    with tempfile.TemporaryDirectory(prefix="shoal-bench-transports-", dir=args.dir) as tmp:
        for name in names:
            system = start_server(name, Path(tmp) / name)
            try:
                results["systems"][system.name] = bench_system(system, args)
            finally:
                system.server.stop()
            print(f"{name}: {json.dumps(results['systems'][system.name]['consume'])}", flush=True)
    table = markdown(results)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "framework_transports.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "framework_transports.md").write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
