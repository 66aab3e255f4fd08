"""What ``/metrics`` costs: the scrape time of a broker holding 1,000 partitions and 100
consumer groups, and produce throughput with a scrape every second against none.

Issue 17's goals: a scrape under 100 ms, and produce throughput with a scrape every second
within 3% of the throughput without. The broker runs as its own ``shoal broker`` process (the
scrapes and the load are this process's clients), so the scrape's cost is paid where it would
be in production: on the broker's event loop, between requests.

    make bench-metrics                             # 1,000 partitions, 100 groups, 3 rounds
    python bench/metrics_scrape.py --quick         # a smoke run (tests/bench runs it)

Prints the scrape time (median, min, max over ``--scrapes``), the exposition's size, and the
produce throughput per round with and without scrapes (alternating, so drift hits both); writes
the figures as JSON to ``--out`` (default bench/results/metrics_scrape.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT: Final = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.peers.systems import shoal_process  # noqa: E402  (run as a script)
from tests.peers.kafka_peer import free_port  # noqa: E402

RESULTS: Final = ROOT / "bench" / "results"
CLIENT_TIMEOUT_S: Final = 60.0
"""Bounds each admin or client call; measures nothing."""
PARTITIONS_PER_TOPIC: Final = 10
RECORD_BYTES: Final = 100
SCRAPE_INTERVAL_S: Final = 1.0
PRODUCE_TOPIC: Final = "metrics-bench-produce"


@dataclass
class Results:
    partitions: int
    groups: int
    scrape_ms: list[float] = field(default_factory=list)
    exposition_bytes: int = 0
    exposition_lines: int = 0
    plain_records_per_s: list[float] = field(default_factory=list)
    scraped_records_per_s: list[float] = field(default_factory=list)
    scrapes_during_load: int = 0


@contextlib.contextmanager
def broker(work: Path) -> Iterator[tuple[str, str]]:
    """A ``shoal broker`` process; yields (bootstrap servers, HTTP base URL)."""
    bootstrap = f"127.0.0.1:{free_port()}"
    with shoal_process(work, ["--kafka-listen", bootstrap]) as http:
        yield bootstrap, http


def populate(bootstrap: str, partitions: int, groups: int) -> None:
    """Topics of ``PARTITIONS_PER_TOPIC`` partitions (one record in each), and ``groups``
    groups, each committing an offset on every partition of one topic (so every group shows
    lag, lag seconds and a Burrow status)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [f"metrics-bench-{i:04d}" for i in range(max(1, partitions // PARTITIONS_PER_TOPIC))]
    new = [NewTopic(name, PARTITIONS_PER_TOPIC) for name in topics]
    new.append(NewTopic(PRODUCE_TOPIC, 1))
    for future in admin.create_topics(new, operation_timeout=CLIENT_TIMEOUT_S).values():
        future.result(CLIENT_TIMEOUT_S)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for name in topics:
        for partition in range(PARTITIONS_PER_TOPIC):
            producer.produce(name, b"x" * RECORD_BYTES, partition=partition)
            producer.produce(name, b"x" * RECORD_BYTES, partition=partition)
    if producer.flush(CLIENT_TIMEOUT_S):
        raise RuntimeError("could not write the records of the bench topics")
    for g in range(groups):
        topic = topics[g % len(topics)]
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"metrics-bench-g{g}"})
        try:
            offsets = [TopicPartition(topic, p, 1) for p in range(PARTITIONS_PER_TOPIC)]
            consumer.commit(offsets=offsets, asynchronous=False)
        finally:
            consumer.close()


def time_scrapes(http: str, count: int, results: Results) -> None:
    with httpx.Client(timeout=CLIENT_TIMEOUT_S) as client:
        client.get(f"{http}/metrics").raise_for_status()  # warm: first-scrape state is built
        for _ in range(count):
            started = time.perf_counter()
            response = client.get(f"{http}/metrics")
            results.scrape_ms.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
        results.exposition_bytes = len(response.content)
        results.exposition_lines = response.text.count("\n")


def produce_for(bootstrap: str, seconds: float) -> float:
    """Records/s of one acks=all producer of 100-byte records, sending as fast as it can."""
    delivered = 0

    def on_delivery(error: object, _message: object) -> None:
        nonlocal delivered
        if error is None:
            delivered += 1

    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "batch.size": 65536}
    )
    value = b"v" * RECORD_BYTES
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        try:
            producer.produce(PRODUCE_TOPIC, value, on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.001)
        producer.poll(0)
    producer.flush(CLIENT_TIMEOUT_S)
    return delivered / (time.perf_counter() - started)


def scrape_every_second(http: str, stop: threading.Event, counter: list[int]) -> None:
    with httpx.Client(timeout=CLIENT_TIMEOUT_S) as client:
        while not stop.wait(SCRAPE_INTERVAL_S):
            client.get(f"{http}/metrics").raise_for_status()
            counter[0] += 1


def measure_load(bootstrap: str, http: str, seconds: float, rounds: int, results: Results) -> None:
    produce_for(bootstrap, min(seconds, 3.0))  # warm the log and the client
    for _ in range(rounds):
        results.plain_records_per_s.append(produce_for(bootstrap, seconds))
        stop = threading.Event()
        counter = [0]
        scraper = threading.Thread(target=scrape_every_second, args=(http, stop, counter))
        scraper.start()
        try:
            results.scraped_records_per_s.append(produce_for(bootstrap, seconds))
        finally:
            stop.set()
            scraper.join()
        results.scrapes_during_load += counter[0]


def report(results: Results) -> str:
    ms = results.scrape_ms
    plain = statistics.median(results.plain_records_per_s)
    scraped = statistics.median(results.scraped_records_per_s)
    return "\n".join(
        [
            f"/metrics with {results.partitions} partitions and {results.groups} groups: "
            f"{results.exposition_lines} lines, {results.exposition_bytes / 1024:.0f} KiB",
            f"scrape time: median {statistics.median(ms):.1f} ms, min {min(ms):.1f} ms, "
            f"max {max(ms):.1f} ms over {len(ms)} scrapes (goal < 100 ms)",
            f"produce, no scrapes:      median {plain:,.0f} records/s "
            f"{[round(r) for r in results.plain_records_per_s]}",
            f"produce, a scrape each s: median {scraped:,.0f} records/s "
            f"{[round(r) for r in results.scraped_records_per_s]} "
            f"({results.scrapes_during_load} scrapes)",
            f"ratio scraped / plain: {scraped / plain:.3f} (goal >= 0.97)",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--scrapes", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=15.0, help="per produce run")
    parser.add_argument("--rounds", type=int, default=3, help="plain/scraped pairs")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS / "metrics_scrape.json")
    args = parser.parse_args()
    if args.quick:
        args.partitions, args.groups, args.scrapes, args.seconds, args.rounds = 20, 3, 3, 2.0, 1
    results = Results(args.partitions, args.groups)
    with tempfile.TemporaryDirectory(prefix="shoal-metrics-bench-") as work:
        with broker(Path(work)) as (bootstrap, http):
            populate(bootstrap, args.partitions, args.groups)
            time_scrapes(http, args.scrapes, results)
            measure_load(bootstrap, http, args.seconds, args.rounds, results)
    print(report(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(asdict(results), indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
