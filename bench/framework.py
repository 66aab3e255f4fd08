"""The framework's cost: messages/s through a no-op JSON handler vs a raw confluent-kafka loop.

    .venv/bin/python bench/framework.py [--records 300000] [--size 100] [--partitions 4]
    .venv/bin/python bench/framework.py --memory-only   # the framework's own cost, no broker

Both read the same pre-produced topic from one `shoal broker` subprocess, in the same run:

- **raw**: the loop a careful hand-written consumer runs: ``consume(500)``, decoding every
  value, a synchronous commit per batch (at-least-once, like the framework); three times, with
  ``json.loads``, with msgspec (the framework's decoder: the headline ratio) and with no
  decoding at all (the client's ceiling).
- **framework**: ``App("kafka://...")`` with ``async def handle(doc: dict) -> None: pass``:
  decoding, tracing hook, metrics, offset tracking, per-batch commit.
- **framework, memory transport**: the same App on ``memory://`` (no broker, no client): what
  the framework itself costs per message.

Figures: messages/s of each (timed from the first record to the last, so group joins are not
counted), the ratio framework/raw (target >= 0.5) and the added time per message
((1/framework - 1/raw), in microseconds); then end-to-end latency (produce -> handler, p50/p99/
p99.9) at 1,000 and 5,000 records/s, of a raw ``poll()`` loop and of the framework. Nothing
here asserts speed; it prints and writes bench/results/framework.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from confluent_kafka import Consumer, Producer

from produce_consume import BrokerUnderTest, create_topic  # type: ignore[import-not-found]
from shoal import App

RESULTS = Path(__file__).parent / "results" / "framework.json"
CONSUME_BATCH = 500
RAW_COMMIT_EVERY = 100
"""The raw latency loop commits asynchronously every this many records (per record would load
the broker with a commit per record: not what a careful consumer does)."""


def payload(size: int, n: int) -> bytes:
    body = {"id": n, "symbol": "ACME", "pad": ""}
    raw = json.dumps(body).encode()
    body["pad"] = "x" * max(size - len(raw), 0)
    return json.dumps(body).encode()


def produce(bootstrap: str, topic: str, records: int, size: int) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 1 << 20, "log_level": 0}
    )
    for n in range(records):
        while True:
            try:
                producer.produce(topic, payload(size, n), key=str(n % 64).encode())
                break
            except BufferError:
                producer.poll(0.05)
        if n % 10_000 == 0:
            producer.poll(0)
    if producer.flush(60) != 0:
        raise RuntimeError("records were not delivered")


DECODERS: dict[str, Callable[[bytes], Any] | None] = {
    "json.loads": json.loads,
    "msgspec": msgspec.json.Decoder().decode,
    "none": None,
}


def raw_loop(bootstrap: str, topic: str, records: int, decoder: str) -> float:
    decode = DECODERS[decoder]
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"raw-{decoder}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "log_level": 0,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    started = 0.0
    try:
        while seen < records:
            msgs = consumer.consume(CONSUME_BATCH, 1.0)
            if not msgs:
                continue
            if not started:
                started = time.perf_counter()
            for msg in msgs:
                if msg.error() is None:
                    if decode is not None:
                        decode(msg.value())
                    seen += 1
            consumer.commit(asynchronous=False)
        return records / (time.perf_counter() - started)
    finally:
        consumer.close()


async def framework_loop(url: str, topic: str, records: int, preload: int = 0) -> float:
    app = App(url, lag_interval_s=0)
    seen = 0
    started = 0.0
    done = asyncio.Event()

    @app.subscriber(topic, group="framework")
    async def handle(doc: dict[str, Any]) -> None:
        nonlocal seen, started
        if not seen:
            started = time.perf_counter()
        seen += 1
        if seen == records:
            done.set()

    if preload:
        # memory://: the records are appended before the app starts, as on the broker.
        async with App(url) as loader:
            for n in range(preload):
                await loader.publish(topic, payload(100, n), key=str(n % 64))
    async with app:
        await done.wait()
        elapsed = time.perf_counter() - started
    return records / elapsed


class PacedProducer(threading.Thread):
    """Sends ``{"t": send time ns}`` at ``rate`` records/s for ``seconds``."""

    def __init__(self, bootstrap: str, topic: str, rate: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.rate, self.seconds = bootstrap, topic, rate, seconds
        self.sent = 0

    def run(self) -> None:
        # linger.ms=1: what a latency-minded producer uses; at 5,000/s one request per record
        # would measure the broker's request rate, not delivery latency.
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 1, "log_level": 0})
        start = time.perf_counter()
        total = int(self.rate * self.seconds)
        for n in range(total):
            due = start + n / self.rate
            while (now := time.perf_counter()) < due:
                time.sleep(min(due - now, 0.001))
            producer.produce(self.topic, msgspec.json.encode({"t": time.time_ns()}))
            producer.poll(0)
            self.sent += 1
        producer.flush(30)


def latency_summary(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)

    def at(q: float) -> float:
        return round(ordered[min(int(q * len(ordered)), len(ordered) - 1)], 3)

    return {"p50_ms": at(0.50), "p99_ms": at(0.99), "p999_ms": at(0.999), "n": len(ordered)}


def latency_raw(bootstrap: str, topic: str, rate: int, seconds: float) -> dict[str, float]:
    """The low-latency raw loop: ``poll()`` returns as soon as one record is there."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "raw-latency",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",  # a fresh topic: every record counts
            "log_level": 0,
        }
    )
    consumer.subscribe([topic])
    while not consumer.assignment():
        consumer.poll(0.1)
    producer = PacedProducer(bootstrap, topic, rate, seconds)
    producer.start()
    decode = msgspec.json.Decoder().decode
    samples: list[float] = []
    try:
        while producer.is_alive() or len(samples) < producer.sent:
            msg = consumer.poll(1.0)
            if msg is None or msg.error() is not None:
                if not producer.is_alive() and msg is None:
                    break
                continue
            samples.append((time.time_ns() - decode(msg.value())["t"]) / 1e6)
            if len(samples) % RAW_COMMIT_EVERY == 0:
                consumer.commit(asynchronous=True)
    finally:
        consumer.close()
    return latency_summary(samples)


async def latency_framework(url: str, topic: str, rate: int, seconds: float) -> dict[str, float]:
    app = App(url, lag_interval_s=0)
    samples: list[float] = []

    @app.subscriber(topic, group="framework-latency")
    async def handle(doc: dict[str, Any]) -> None:
        samples.append((time.time_ns() - doc["t"]) / 1e6)

    async with app:
        while not await app.ready():  # noqa: ASYNC110 - polling a condition, not an event
            await asyncio.sleep(0.05)
        producer = PacedProducer(url.removeprefix("kafka://"), topic, rate, seconds)
        producer.start()
        while producer.is_alive() or len(samples) < producer.sent:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return latency_summary(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="only the memory:// figure (no broker, no client): a quick A/B of the framework",
    )
    args = parser.parse_args(argv)

    memory_records = min(args.records, 200_000)
    if args.memory_only:
        mem = asyncio.run(
            framework_loop("memory://bench", "bench", memory_records, preload=memory_records)
        )
        print(f"framework, memory:// (no broker, no client): {mem:>10,.0f} msg/s")
        return 0
    with tempfile.TemporaryDirectory(prefix="shoal-bench-framework-") as tmp:
        broker = BrokerUnderTest(Path(tmp), profile_path=None)
        broker.start()
        try:
            topic = "framework-bench"
            create_topic(broker.bootstrap, topic, args.partitions)
            produce(broker.bootstrap, topic, args.records, args.size)
            raws = {d: raw_loop(broker.bootstrap, topic, args.records, d) for d in DECODERS}
            fw = asyncio.run(framework_loop(f"kafka://{broker.bootstrap}", topic, args.records))
            latency: dict[str, dict[str, float]] = {}
            for rate in (1_000, 5_000):
                create_topic(broker.bootstrap, f"lat-raw-{rate}", 1)
                create_topic(broker.bootstrap, f"lat-fw-{rate}", 1)
                latency[f"raw@{rate}/s"] = latency_raw(
                    broker.bootstrap, f"lat-raw-{rate}", rate, args.latency_seconds
                )
                latency[f"framework@{rate}/s"] = asyncio.run(
                    latency_framework(
                        f"kafka://{broker.bootstrap}", f"lat-fw-{rate}", rate, args.latency_seconds
                    )
                )
        finally:
            broker.stop()
    mem = asyncio.run(
        framework_loop("memory://bench", "bench", memory_records, preload=memory_records)
    )
    # The headline compares with the fastest raw loop that still decodes (msgspec, the decoder
    # the framework uses): the framework's own cost, not a slow decoder's.
    raw = raws["msgspec"]
    result = {
        "records": args.records,
        "size_bytes": args.size,
        "partitions": args.partitions,
        "raw_msgs_per_s": {d: round(v) for d, v in raws.items()},
        "framework_msgs_per_s": round(fw),
        "framework_memory_msgs_per_s": round(mem),
        "ratio_framework_to_raw_msgspec": round(fw / raw, 3),
        "ratio_framework_to_raw_json_loads": round(fw / raws["json.loads"], 3),
        "added_us_per_msg": round((1 / fw - 1 / raw) * 1e6, 2),
        "latency_ms": latency,
    }
    for d, v in raws.items():
        print(f"raw confluent-kafka loop, decode={d:<10} commit per batch: {v:>10,.0f} msg/s")
    print(f"framework, no-op JSON handler, kafka:// on shoal:            {fw:>10,.0f} msg/s")
    print(f"framework, memory:// (no broker, no client):                 {mem:>10,.0f} msg/s")
    print(
        f"framework / raw(msgspec): {fw / raw:.2f}; framework / raw(json.loads): "
        f"{fw / raws['json.loads']:.2f}; added per message: {result['added_us_per_msg']} µs"
    )
    print("end-to-end latency, produce -> handler (ms):")
    for name, figures in latency.items():
        print(
            f"  {name:<18} p50 {figures['p50_ms']:>7.2f}  p99 {figures['p99_ms']:>7.2f}  "
            f"p99.9 {figures['p999_ms']:>7.2f}  ({figures['n']:.0f} records)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
