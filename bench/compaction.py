"""Compaction benchmark: shoal's log cleaner against Apache Kafka's, on the same data, same run.

For each system (``shoal broker`` as a child process, the Kafka 4.4 peer of tests/peers), with
the cleaner's defaults but a 100 ms back-off (Kafka's 15 s would dominate a short run):

1. **fill**: one compacted partition (``segment.bytes`` 1 MiB) gets ``--records`` records of
   ``--size`` bytes over ``--keys`` keys, acks=all. ``min.compaction.lag.ms`` is a day while it
   fills, so neither cleaner starts early.
2. **idle latency**: the fill's dirty pages are written back (``sync``), then a producer paced
   at ``--rate`` records/s (acks=all, 100-byte records) to another topic runs for
   ``--warmup`` seconds untimed and ``--seconds`` timed: delivery latency p50/p99 with no
   cleaning.
3. **clean**: once the same paced producer has warmed up, ``min.compaction.lag.ms`` is set
   to 0 (IncrementalAlterConfigs), which makes the
   whole sealed log cleanable; the paced producer runs on while the partition's ``*.log``
   files shrink. Cleaning time runs from the config change to the last change of their size
   (stable for ``SETTLED_S``); throughput = dirty bytes (the sealed segments before) / that.
   Kafka renames replaced segments to ``.deleted`` at once (deleting them a minute later), so
   counting only ``*.log`` files sees both cleaners' swaps at the same moment.

Prints one line per system and writes ``bench/results/compaction.json``. A benchmark, not a
test: nothing here asserts a time.

    python bench/compaction.py                   # ~300k records (~40 MB), shoal and Kafka
    python bench/compaction.py --quick           # a smoke run: seconds, small sizes
    python bench/compaction.py --systems shoal   # one system only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.peers.common import MIB, percentiles
from bench.peers.systems import shoal_process
from tests.peers.kafka_peer import KafkaPeer, free_port

DIRTY: Final = "dirty"
LATENCY: Final = "latency"
SEGMENT_BYTES: Final = 1024 * 1024
"""Kafka 4's smallest segment.bytes: many segments, so cleaning groups and swaps are real."""
CLEANER_BACKOFF_MS: Final = 100
HOLD_MS: Final = 24 * 3600 * 1000
"""min.compaction.lag.ms while filling: a day, so nothing is cleanable yet."""
POLL_S: Final = 0.05
SETTLED_S: Final = 3.0
"""The log's size unchanged this long after it shrank: the clean is over."""
CLEAN_TIMEOUT_S: Final = 600.0


@dataclass
class Result:
    system: str
    records: int
    keys: int
    dirty_bytes: int = 0
    bytes_after: int = 0
    clean_s: float = 0.0
    idle_latency_ms: dict[str, float] = field(default_factory=dict)
    cleaning_latency_ms: dict[str, float] = field(default_factory=dict)
    cleaning_samples: int = 0

    @property
    def mb_per_s(self) -> float:
        return self.dirty_bytes / MIB / self.clean_s if self.clean_s > 0 else float("nan")


# -- the systems -----------------------------------------------------------------------------


@contextmanager
def shoal_broker(work: Path) -> Iterator[tuple[str, Path]]:
    bootstrap = f"127.0.0.1:{free_port()}"
    settings = {"SHOAL_LOG_CLEANER_BACKOFF_MS": str(CLEANER_BACKOFF_MS)}
    with shoal_process(work, ["--kafka-listen", bootstrap], settings):
        yield bootstrap, work / "shoal-data"


@contextmanager
def kafka_broker(work: Path) -> Iterator[tuple[str, Path]]:
    with KafkaPeer(work, **{"log.cleaner.backoff.ms": str(CLEANER_BACKOFF_MS)}) as peer:
        yield peer.bootstrap_servers, work / "data"


SYSTEMS: Final = {"shoal": shoal_broker, "kafka": kafka_broker}


# -- the phases ------------------------------------------------------------------------------


def log_bytes(data: Path) -> tuple[int, int]:
    """(bytes of the partition's ``*.log`` files, bytes of its last one: the active segment)."""
    sizes = []
    for path in sorted(data.rglob(f"{DIRTY}-0/*.log")):
        try:
            sizes.append(path.stat().st_size)
        except FileNotFoundError:
            continue  # a swap removed it since the listing
    return sum(sizes), (sizes[-1] if sizes else 0)


def fill(bootstrap: str, records: int, keys: int, size: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    value = b"v" * size
    for i in range(records):
        while True:
            try:
                producer.produce(DIRTY, key=f"key-{i % keys:08d}".encode(), value=value)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("the fill did not complete")


def paced_latencies(
    bootstrap: str, rate: int, stop: threading.Event, limit_s: float, warmup_s: float
) -> list[tuple[float, float]]:
    """(send time, delivery latency in ms) of 100-byte acks=all records sent at ``rate``/s
    until ``stop``, after ``warmup_s`` of the same, untimed."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    latencies: list[tuple[float, float]] = []

    def delivered(error: KafkaError | None, message: Message, sent: float) -> None:
        if error is None:
            latencies.append((sent, (time.monotonic() - sent) * 1000))

    # Untimed warm-up: the first record waits for the topic's metadata and the connection
    # (on Kafka, up to a second for a topic just created), which is not what is measured.
    producer.produce(LATENCY, value=b"x" * 100)
    producer.flush(30)
    # Then the paced load itself, untimed: Kafka's JVM needs it to warm up (one small acks=all
    # request per record, unlike the fill's large batches). On the loaded VM, with or without
    # a fill before, three 5 s runs in a row had p50 0.8-0.9 s, then 17-20 ms, then 1.3-10 ms:
    # the "idle" row (1,341 ms p50 for Kafka) measured the JVM's warm-up.
    warm_until = time.monotonic() + warmup_s
    began = time.monotonic()
    sent = 0
    while not stop.is_set() and time.monotonic() - began < limit_s:
        due = began + sent / rate
        now = time.monotonic()
        if now < due:
            producer.poll(min(due - now, 0.01))
            continue
        stamp = time.monotonic()
        producer.produce(
            LATENCY, value=b"x" * 100, on_delivery=lambda e, m, s=stamp: delivered(e, m, s)
        )
        sent += 1
        producer.poll(0)
    producer.flush(30)
    return [(sent, ms) for sent, ms in latencies if sent >= warm_until]


def set_compaction_lag(admin: AdminClient, lag_ms: int) -> None:
    resource = ConfigResource(
        ResourceType.TOPIC,
        DIRTY,
        incremental_configs=[
            ConfigEntry(
                "min.compaction.lag.ms",
                str(lag_ms),
                incremental_operation=AlterConfigOpType.SET,
            )
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(30)


def wait_cleaned(data: Path, before: int) -> float:
    """Seconds from now until the partition's size last changed, once it shrank and settled."""
    began = time.monotonic()
    size, last_change = before, began
    while time.monotonic() - began < CLEAN_TIMEOUT_S:
        time.sleep(POLL_S)
        current, _active = log_bytes(data)
        now = time.monotonic()
        if current != size:
            size, last_change = current, now
        elif size < before and now - last_change >= SETTLED_S:
            return last_change - began
    raise RuntimeError(f"no clean finished within {CLEAN_TIMEOUT_S} s")


def run_system(name: str, work: Path, args: argparse.Namespace) -> Result:
    result = Result(name, args.records, args.keys)
    with SYSTEMS[name](work) as (bootstrap, data):
        admin = AdminClient({"bootstrap.servers": bootstrap})
        topics = [
            NewTopic(
                DIRTY,
                1,
                config={
                    "cleanup.policy": "compact",
                    "segment.bytes": str(SEGMENT_BYTES),
                    "min.cleanable.dirty.ratio": "0.01",
                    "min.compaction.lag.ms": str(HOLD_MS),
                },
            ),
            NewTopic(LATENCY, 1),
        ]
        for future in admin.create_topics(topics).values():
            future.result(30)
        fill(bootstrap, args.records, args.keys, args.size)
        total, active = log_bytes(data)
        result.dirty_bytes = total - active
        # The fill's page cache goes to disk before anything is timed: Kafka leaves it to the
        # kernel's writeback, which would otherwise overlap Kafka's timed phases only.
        os.sync()

        idle = paced_latencies(
            bootstrap, args.rate, threading.Event(), args.warmup + args.seconds, args.warmup
        )
        result.idle_latency_ms = percentiles([latency for _sent, latency in idle])

        stop = threading.Event()
        samples: list[tuple[float, float]] = []
        pacer = threading.Thread(
            target=lambda: samples.extend(
                paced_latencies(bootstrap, args.rate, stop, CLEAN_TIMEOUT_S, args.warmup)
            )
        )
        pacer.start()
        try:
            time.sleep(args.warmup + 1)  # the cleaning phase's producer is warm too
            began = time.monotonic()
            set_compaction_lag(admin, 0)
            result.clean_s = wait_cleaned(data, total)
        finally:
            stop.set()
            pacer.join()
        # Only records sent while the cleaner worked, not during the wait that saw it settle.
        during = [ms for sent, ms in samples if began <= sent <= began + result.clean_s]
        result.cleaning_latency_ms = percentiles(during)
        result.cleaning_samples = len(during)
        result.bytes_after = log_bytes(data)[0]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run with small sizes")
    parser.add_argument("--systems", default="shoal,kafka")
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--keys", type=int, default=1_000)
    parser.add_argument("--size", type=int, default=100, help="value bytes")
    parser.add_argument("--rate", type=int, default=1_000, help="paced produce records/s")
    parser.add_argument("--seconds", type=float, default=5.0, help="idle latency run")
    parser.add_argument(
        "--warmup", type=float, default=10.0, help="untimed paced load before each timed phase"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: tmp)")
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.keys, args.seconds, args.warmup = 20_000, 200, 1.0, 2.0
    results = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for name in args.systems.split(","):
            results.append(run_system(name, Path(tmp) / name, args))
    print(
        f"{'system':8} {'dirty MB':>9} {'after MB':>9} {'clean s':>8} {'MB/s':>7}  "
        f"{'idle p50/p99 ms':>16}  {'cleaning p50/p99 ms':>20} (samples)"
    )
    for r in results:
        print(
            f"{r.system:8} {r.dirty_bytes / MIB:9.1f} {r.bytes_after / MIB:9.2f} "
            f"{r.clean_s:8.2f} {r.mb_per_s:7.1f}  "
            f"{r.idle_latency_ms['p50']:7.2f}/{r.idle_latency_ms['p99']:<8.2f}  "
            f"{r.cleaning_latency_ms['p50']:9.2f}/{r.cleaning_latency_ms['p99']:<10.2f} "
            f"({r.cleaning_samples})"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {k: str(v) for k, v in vars(args).items()},
        "results": [{**asdict(r), "mb_per_s": r.mb_per_s} for r in results],
    }
    (args.out / "compaction.json").write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
