"""Produce/consume benchmark: a ``shoal broker`` process driven over the Kafka protocol.

A fresh broker subprocess (temporary data directory, default settings: ``sync`` durability, so
acks=all is answered after fsync) is driven by confluent-kafka (librdkafka), as applications
drive it. Prints kafka-producer-perf-test style lines and writes
``bench/results/produce_consume.json``. Nothing here asserts a time: PASS/MISS beside a target
is information for a person.

    python bench/produce_consume.py            # full run, about two and a half minutes
    python bench/produce_consume.py --quick    # CI smoke run, a few seconds
    python bench/produce_consume.py --profile  # the broker under cProfile; top functions

What is measured:

1. produce throughput, acks=all: 100 B and 1 KiB records into 1 and 8 partitions, as fast as
   one client process can send for ``--seconds``; records/s, MB/s (MB = 2^20 bytes, as
   kafka-producer-perf-test) and the send-to-acknowledgement latency of 1 record in 64
2. consume throughput of exactly that data, from the beginning, with ``assign()``
3. end-to-end latency at a fixed rate (5,000 msg/s; in full mode also 50,000 msg/s, and
   5,000 msg/s with linger.ms=0): a paced producer process stamps each value with its
   *intended* send time (so a stalled sender cannot hide latency), the consumer subtracts it
   on receipt (one machine: CLOCK_MONOTONIC is shared)
4. the broker's memory (VmRSS sampled every 100 ms, and VmHWM) and CPU time per phase
5. the load generator alone, to show whether the client or the broker is the limit:
   produce() into librdkafka's local queue (no broker), and the consume loop draining records
   already fetched into the client's queue; plus the client's CPU use in every phase

The script runs itself as a child for the paced producer: ``produce_consume.py pace ...``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import pstats
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import confluent_kafka
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, Producer
from confluent_kafka import TopicPartition as TP
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

RESULTS: Final = Path(__file__).resolve().parent / "results" / "produce_consume.json"
MIB: Final = 1024 * 1024
START_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 60.0
STALL_TIMEOUT_S: Final = 30.0
"""A consumer that gets nothing for this long is stuck: the run fails instead of hanging."""
LATENCY_SAMPLE_EVERY: Final = 64
"""Send-to-ack latency is taken on 1 record in 64: a Python callback on every record costs the
client more than the broker spends on it (measured: ~480k rec/s with, ~780k without), and the
client would become what is measured."""
SAMPLE_INTERVAL_S: Final = 0.1
QUEUED_MIN_MESSAGES_MAX: Final = 10_000_000
"""librdkafka's upper bound for queued.min.messages."""
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")

TARGETS: Final = {
    "produce_100B_8p_records_per_s": 500_000,
    "consume_100B_8p_records_per_s": 1_000_000,
    "e2e_p99_ms_at_5000": 5.0,
    "broker_rss_mb": 250,
}

PRODUCER_SETTINGS: Final[dict[str, Any]] = {
    "acks": "all",
    # Enough lingering to fill batches at full speed, short against a fsync (~0.2 ms here).
    "linger.ms": 5,
    # One batch per partition per request up to ~1 MB: just under the broker's default
    # message.max.bytes (1,048,588), so no batch is refused.
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    # The local queue keeps every partition's next batches ready while requests are in flight;
    # 64 MiB bounds the drain at the end of a run (and the client's memory).
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 64 * 1024,
    "compression.type": "none",
    # Plain acks=all: idempotence would add InitProducerId and sequence checks to what is
    # measured; the durability comes from the broker's fsync either way.
    "enable.idempotence": False,
}
CONSUMER_SETTINGS: Final[dict[str, Any]] = {
    "group.id": "shoal-bench",  # required by librdkafka; assign() joins nothing
    "enable.auto.commit": False,
    "enable.partition.eof": False,
    "fetch.max.bytes": 50 * MIB,
    "max.partition.fetch.bytes": 4 * MIB,
    "queued.max.messages.kbytes": 256 * 1024,
    # librdkafka stops fetching a partition that has queued.min.messages (default 100,000)
    # waiting locally, and then waits fetch.queue.backoff.ms (default 1,000 ms) before asking
    # again: a consumer that drains 100,000 records in 0.1 s then idles for most of a second.
    "queued.min.messages": 1_000_000,
    "fetch.queue.backoff.ms": 10,
    "fetch.wait.max.ms": 100,
}
LATENCY_PRODUCER_SETTINGS: Final[dict[str, Any]] = {
    "acks": "all",
    # 1 ms, as latency benchmarks of Kafka commonly use: with 0, librdkafka sends every record
    # in a request of its own, which measures the broker's cost per request at 5,000 req/s
    # rather than the latency of a record (the full run measures that case too).
    "linger.ms": 1,
    "enable.idempotence": False,
}
LATENCY_RUNS_FULL: Final = [(5_000, 1), (50_000, 1), (5_000, 0)]
"""(records/s, linger.ms) of the end-to-end runs; the target applies to the first."""
LATENCY_RUNS_QUICK: Final = [(5_000, 1)]


# -- the broker under test -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BrokerUnderTest:
    """``shoal broker`` as a child process on a fresh data directory, optionally profiled."""

    def __init__(self, work: Path, *, profile_path: Path | None) -> None:
        self.work = work
        self.port = free_port()
        self.log_path = work / "broker.log"
        self.profile_path = profile_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        profile = ["-m", "cProfile", "-o", str(self.profile_path)] if self.profile_path else []
        command = [
            sys.executable, *profile, "-m", "shoal.cli", "broker",
            "--data-dir", str(self.work / "data"),
            "--kafka-listen", self.bootstrap,
            "--http-listen", f"127.0.0.1:{free_port()}",
        ]  # fmt: skip
        # Default settings only: a SHOAL_* variable in the caller's environment must not
        # change what is measured.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + START_TIMEOUT_S
        while b"shoal broker ready" not in self.log_path.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the broker did not start:\n{self.log_path.read_text()}")
            time.sleep(0.05)

    def stop(self) -> int:
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError("the broker did not stop on SIGTERM") from None


@dataclass
class PhaseUsage:
    """What the broker process used while one phase ran."""

    rss_max_mb: float = 0.0
    broker_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    wall_s: float = 0.0


class ProcessSampler:
    """Samples the broker's VmRSS and CPU time every 100 ms on a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.rss_max_mb = 0.0
        self._phase_rss_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> ProcessSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _status_kb(self, field_name: str) -> int:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
        return 0

    def cpu_s(self) -> float:
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime

    def hwm_mb(self) -> float:
        return self._status_kb("VmHWM") / 1024

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            try:
                rss = self._status_kb("VmRSS") / 1024
            except OSError:
                return  # the broker exited
            self.rss_max_mb = max(self.rss_max_mb, rss)
            self._phase_rss_mb = max(self._phase_rss_mb, rss)

    @contextmanager
    def phase(self) -> Iterator[PhaseUsage]:
        usage = PhaseUsage()
        self._phase_rss_mb = 0.0
        cpu0, client0, wall0 = self.cpu_s(), time.process_time(), time.perf_counter()
        try:
            yield usage
        finally:
            usage.broker_cpu_s = self.cpu_s() - cpu0
            usage.client_cpu_s = time.process_time() - client0
            usage.wall_s = time.perf_counter() - wall0
            usage.rss_max_mb = self._phase_rss_mb

    def wait_idle(self, *, cpu_fraction: float = 0.05, quiet_s: float = 0.5) -> None:
        """Until the broker has used less than ``cpu_fraction`` of a core for ``quiet_s``."""
        deadline = time.monotonic() + STALL_TIMEOUT_S
        while time.monotonic() < deadline:
            before = self.cpu_s()
            time.sleep(quiet_s)
            if self.cpu_s() - before < cpu_fraction * quiet_s:
                return


# -- measurements --------------------------------------------------------------------------


@dataclass
class ProduceRun:
    records: int
    record_bytes: int
    elapsed_s: float
    latencies_ms: list[float]
    usage: PhaseUsage

    @property
    def records_per_s(self) -> float:
        return self.records / self.elapsed_s

    @property
    def mb_per_s(self) -> float:
        return self.records * self.record_bytes / MIB / self.elapsed_s


@dataclass
class ConsumeRun:
    records: int
    record_bytes: int
    elapsed_s: float
    waiting_s: float
    """Time the consumer had nothing queued locally and waited on the broker."""
    usage: PhaseUsage

    @property
    def records_per_s(self) -> float:
        return self.records / self.elapsed_s

    @property
    def mb_per_s(self) -> float:
        return self.records * self.record_bytes / MIB / self.elapsed_s


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[
        name
    ].result(timeout=30)


def end_offsets(bootstrap: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, **CONSUMER_SETTINGS, "log_level": 0})
    try:
        return [
            consumer.get_watermark_offsets(TP(topic, p), timeout=30)[1] for p in range(partitions)
        ]
    finally:
        consumer.close()


def run_producer(
    producer: Producer, topic: str, value: bytes, seconds: float
) -> tuple[int, array[float], float]:
    """Send as fast as the client can for ``seconds``; return the records sent, the sampled
    send-to-ack latencies (s) and the time until the last acknowledgement. Unsampled records
    get no Python callback: the caller checks the log's end offsets instead."""
    latencies: array[float] = array("d")

    def sampled(error: KafkaError | None, message: Any) -> None:
        if error is None:
            latencies.append(message.latency())

    produce, poll = producer.produce, producer.poll
    sent = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        try:
            if sent % LATENCY_SAMPLE_EVERY == 0:
                produce(topic, value, on_delivery=sampled)
            else:
                produce(topic, value)
        except BufferError:
            poll(0.001)  # the local queue is full: the broker sets the pace
            continue
        sent += 1
        if sent % 1024 == 0:
            poll(0)
            if time.perf_counter() >= deadline:
                break
    producer.flush(STOP_TIMEOUT_S)
    return sent, latencies, time.perf_counter() - started


def produce_run(
    bootstrap: str, sampler: ProcessSampler, topic: str, size: int, partitions: int, seconds: float
) -> ProduceRun:
    create_topic(bootstrap, topic, partitions)
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_SETTINGS, "log_level": 0})
    producer.list_topics(topic, timeout=30)  # connect and learn the leaders before timing
    value = os.urandom(size)
    with sampler.phase() as usage:
        sent, latencies, elapsed = run_producer(producer, topic, value, seconds)
    # Every record acknowledged is in the log exactly once, or the figures mean nothing.
    landed = sum(end_offsets(bootstrap, topic, partitions))
    if landed != sent:
        raise RuntimeError(f"{topic}: {sent} records sent but {landed} in the log")
    return ProduceRun(sent, size, elapsed, [x * 1000 for x in latencies], usage)


def consume_run(
    bootstrap: str, sampler: ProcessSampler, topic: str, size: int, partitions: int, records: int
) -> ConsumeRun:
    consumer = Consumer({"bootstrap.servers": bootstrap, **CONSUMER_SETTINGS, "log_level": 0})
    consumer.list_topics(topic, timeout=30)
    got = 0
    waiting = 0.0
    with sampler.phase() as usage:
        started = time.perf_counter()
        consumer.assign([TP(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        last_progress = started
        while got < records:
            batch = consumer.consume(10_000, 0)
            if not batch:
                # Nothing fetched yet: wait for one record, and count the wait as the broker's.
                wait_start = time.perf_counter()
                one = consumer.poll(0.1)
                now = time.perf_counter()
                waiting += now - wait_start
                batch = [one] if one is not None else []
                if not batch and now - last_progress > STALL_TIMEOUT_S:
                    raise RuntimeError(f"{topic}: consumer stalled at {got}/{records}")
            for message in batch:
                if message.error() is not None:
                    raise RuntimeError(f"{topic}: {message.error()}")
            if batch:
                got += len(batch)
                last_progress = time.perf_counter()
        elapsed = time.perf_counter() - started
    consumer.close()
    return ConsumeRun(got, size, elapsed, waiting, usage)


# -- end-to-end latency at a fixed rate ----------------------------------------------------

STAMP: Final = struct.Struct(">q")


def pace(bootstrap: str, topic: str, rate: int, seconds: float, size: int, linger_ms: int) -> int:
    """Child process: send ``rate`` records/s for ``seconds``, each stamped with the
    CLOCK_MONOTONIC time it was due (not when it went), then report on stdout."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            **LATENCY_PRODUCER_SETTINGS,
            "linger.ms": linger_ms,
            "log_level": 0,
        }
    )
    producer.list_topics(topic, timeout=30)
    padding = b"\0" * max(0, size - STAMP.size)
    interval_ns = 1_000_000_000 // rate
    total = int(rate * seconds)
    acked_ms: list[float] = []

    def on_delivery(error: KafkaError | None, message: Any) -> None:
        if error is None:
            acked_ms.append(message.latency() * 1000)

    start_ns = time.monotonic_ns() + 50_000_000  # a short head start for the consumer
    late = 0
    for i in range(total):
        due_ns = start_ns + i * interval_ns
        ahead_ns = due_ns - time.monotonic_ns()
        if ahead_ns > 0:
            time.sleep(ahead_ns / 1e9)
        elif ahead_ns < -1_000_000:
            late += 1  # more than 1 ms behind schedule: the sender itself could not keep up
        producer.produce(topic, STAMP.pack(due_ns) + padding, on_delivery=on_delivery)
        producer.poll(0)
    producer.flush(STOP_TIMEOUT_S)
    elapsed_s = (time.monotonic_ns() - start_ns) / 1e9
    # Send-to-ack latency, the producer's half of the path, to tell it from the fetch half.
    acked = percentiles(acked_ms[len(acked_ms) // 5 :])
    report = {"sent": total, "late": late, "elapsed_s": elapsed_s, "ack_latency_ms": acked}
    print(json.dumps(report), flush=True)
    return 0


@dataclass
class LatencyRun:
    rate: int
    linger_ms: int
    sent: int
    received: int
    late_sends: int
    latencies_ms: list[float]
    ack_latency_ms: dict[str, float]
    usage: PhaseUsage


def latency_run(
    bootstrap: str,
    sampler: ProcessSampler,
    rate: int,
    linger_ms: int,
    seconds: float,
    warmup_s: float,
) -> LatencyRun:
    topic = f"latency-{rate}-linger-{linger_ms}-{time.monotonic_ns()}"
    create_topic(bootstrap, topic, 1)
    consumer = Consumer({"bootstrap.servers": bootstrap, **CONSUMER_SETTINGS, "log_level": 0})
    consumer.list_topics(topic, timeout=30)
    consumer.assign([TP(topic, 0, OFFSET_END)])
    # An empty partition: the start position is resolved before the first record goes.
    consumer.consume(1, 0.5)
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "pace", bootstrap, topic,
         str(rate), str(seconds), "100", str(linger_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    latencies: list[float] = []
    first_due_ns: int | None = None
    received = 0
    with sampler.phase() as usage:
        last_progress = time.perf_counter()
        while True:
            batch = consumer.consume(1000, 0) or [m for m in [consumer.poll(0.05)] if m]
            now_ns = time.monotonic_ns()
            for message in batch:
                value = message.value()
                if message.error() is not None or value is None:
                    raise RuntimeError(f"latency consumer: {message.error()}")
                due_ns = STAMP.unpack_from(value)[0]
                if first_due_ns is None:
                    first_due_ns = due_ns
                if due_ns - first_due_ns >= warmup_s * 1e9:
                    latencies.append((now_ns - due_ns) / 1e6)
                received += 1
            if batch:
                last_progress = time.perf_counter()
            elif child.poll() is not None and time.perf_counter() - last_progress > 1.0:
                break
            elif time.perf_counter() - last_progress > STALL_TIMEOUT_S:
                raise RuntimeError(f"latency consumer stalled at {received} records")
    consumer.close()
    assert child.stdout is not None
    report = json.loads(child.stdout.read().strip().splitlines()[-1])
    child.wait()
    return LatencyRun(
        rate=rate,
        linger_ms=linger_ms,
        sent=report["sent"],
        received=received,
        late_sends=report["late"],
        latencies_ms=latencies,
        ack_latency_ms=report["ack_latency_ms"],
        usage=usage,
    )


# -- the load generator alone --------------------------------------------------------------


def client_local_queue(size: int, records: int) -> float:
    """produce() calls per second into librdkafka's queue, with no broker to send to."""
    producer = Producer(
        {
            "bootstrap.servers": f"127.0.0.1:{free_port()}",  # nothing listens there
            **PRODUCER_SETTINGS,
            "queue.buffering.max.messages": records + 1,
            "queue.buffering.max.kbytes": 2_000_000,
            "linger.ms": 60_000,
            "log_level": 0,
        }
    )
    value, produce = os.urandom(size), producer.produce
    started = time.perf_counter()
    for _ in range(records):
        produce("t", value)
    elapsed = time.perf_counter() - started
    producer.purge()
    return records / elapsed


def client_drain(
    bootstrap: str, sampler: ProcessSampler, topic: str, partitions: int, records: int
) -> tuple[float, int]:
    """Records/s of the consume loop over records already fetched into the client's queue:
    assign, wait until the broker goes idle (it has sent everything the queue takes), then
    time the drain. Also returns how many calls found the queue empty (0: a clean ceiling)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            **CONSUMER_SETTINGS,
            "queued.min.messages": QUEUED_MIN_MESSAGES_MAX,
            "queued.max.messages.kbytes": 2_000_000,
            "log_level": 0,
        }
    )
    consumer.list_topics(topic, timeout=30)
    consumer.assign([TP(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    consumer.consume(1, 1.0)  # the first fetch is under way
    sampler.wait_idle()
    got, starved = 1, 0
    started = time.perf_counter()
    while got < records:
        batch = consumer.consume(10_000, 0)
        if len(batch) < 10_000 and got + len(batch) < records:
            starved += 1
            batch += [m for m in [consumer.poll(0.1)] if m]
        got += len(batch)
    elapsed = time.perf_counter() - started
    consumer.close()
    return (got - 1) / elapsed, starved


# -- reporting -----------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {k: float("nan") for k in ("avg", "max", "p50", "p95", "p99", "p99.9")}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "avg": statistics.fmean(ordered),
        "max": ordered[-1],
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "p99.9": at(0.999),
    }


def perf_line(records: int, per_s: float, mb_s: float, lat: dict[str, float], verb: str) -> str:
    """kafka-producer-perf-test's summary line."""
    return (
        f"{records} records {verb}, {per_s:.1f} records/sec ({mb_s:.2f} MB/sec), "
        f"{lat['avg']:.2f} ms avg latency, {lat['max']:.2f} ms max latency, "
        f"{lat['p50']:.2f} ms 50th, {lat['p95']:.2f} ms 95th, {lat['p99']:.2f} ms 99th, "
        f"{lat['p99.9']:.2f} ms 99.9th."
    )


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def busy(seconds: float, wall_s: float) -> str:
    return f"{100 * seconds / wall_s:.0f}%" if wall_s > 0 else "-"


@dataclass
class Config:
    quick: bool
    seconds: float
    repeats: int
    latency_runs: list[tuple[int, int]]
    latency_seconds: float
    warmup_s: float
    profile: bool
    keep: bool
    base: Path
    sizes: list[int] = field(default_factory=lambda: [100, 1024])
    partitions: list[int] = field(default_factory=lambda: [1, 8])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser("pace", help="(internal) the paced producer of the latency test")
    child.add_argument("bootstrap")
    child.add_argument("topic")
    child.add_argument("rate", type=int)
    child.add_argument("seconds", type=float)
    child.add_argument("size", type=int)
    child.add_argument("linger_ms", type=int)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--seconds", type=float, help="length of a produce run (4; quick 0.5)")
    parser.add_argument("--repeats", type=int, help="runs per workload (3; quick 1)")
    parser.add_argument("--profile", action="store_true", help="run the broker under cProfile")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()), help="where the data goes"
    )
    parser.add_argument("--json", type=Path, help=f"results file (default {RESULTS})")
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> Config:
    quick = bool(args.quick)
    return Config(
        quick=quick,
        seconds=args.seconds or (0.5 if quick else 4.0),
        repeats=args.repeats or (1 if quick else 3),
        latency_runs=LATENCY_RUNS_QUICK if quick else LATENCY_RUNS_FULL,
        latency_seconds=2.0 if quick else 12.0,
        warmup_s=0.5 if quick else 2.0,
        profile=bool(args.profile),
        keep=bool(args.keep),
        base=args.dir,
    )


def run_throughput(
    cfg: Config, broker: BrokerUnderTest, sampler: ProcessSampler, out: dict[str, Any]
) -> dict[tuple[int, int], tuple[list[ProduceRun], list[ConsumeRun]]]:
    results: dict[tuple[int, int], tuple[list[ProduceRun], list[ConsumeRun]]] = {}
    for size in cfg.sizes:
        for partitions in cfg.partitions:
            produced: list[ProduceRun] = []
            consumed: list[ConsumeRun] = []
            for repeat in range(cfg.repeats):
                topic = f"bench-{size}b-{partitions}p-{repeat}"
                run = produce_run(broker.bootstrap, sampler, topic, size, partitions, cfg.seconds)
                produced.append(run)
                consumed.append(
                    consume_run(broker.bootstrap, sampler, topic, size, partitions, run.records)
                )
            results[(size, partitions)] = (produced, consumed)
            print_throughput(size, partitions, produced, consumed)
            out[f"{size}B_{partitions}p"] = {
                "produce": [
                    {
                        "records": r.records,
                        "records_per_s": r.records_per_s,
                        "mb_per_s": r.mb_per_s,
                        "latency_ms": percentiles(r.latencies_ms),
                        "latency_samples": len(r.latencies_ms),
                        **asdict(r.usage),
                    }
                    for r in produced
                ],
                "consume": [
                    {
                        "records": r.records,
                        "records_per_s": r.records_per_s,
                        "mb_per_s": r.mb_per_s,
                        "waiting_for_broker_s": r.waiting_s,
                        **asdict(r.usage),
                    }
                    for r in consumed
                ],
                "produce_records_per_s": spread([r.records_per_s for r in produced]),
                "consume_records_per_s": spread([r.records_per_s for r in consumed]),
            }
    return results


def median_run(runs: list[Any]) -> Any:
    return sorted(runs, key=lambda r: r.records_per_s)[len(runs) // 2]


def print_throughput(
    size: int, partitions: int, produced: list[ProduceRun], consumed: list[ConsumeRun]
) -> None:
    label = f"{size} B, {partitions} partition{'s' if partitions > 1 else ''}"
    p, c = median_run(produced), median_run(consumed)
    rates_p = spread([r.records_per_s for r in produced])
    rates_c = spread([r.records_per_s for r in consumed])
    print(f"\n[{label}] produce, acks=all (median of {len(produced)}; "
          f"min {rates_p['min']:.0f}, max {rates_p['max']:.0f} records/sec)")  # fmt: skip
    print(
        "  "
        + perf_line(p.records, p.records_per_s, p.mb_per_s, percentiles(p.latencies_ms), "sent")
    )
    print(
        f"  CPU: broker {busy(p.usage.broker_cpu_s, p.usage.wall_s)} of a core, "
        f"client {busy(p.usage.client_cpu_s, p.usage.wall_s)}; "
        f"broker RSS max {p.usage.rss_max_mb:.0f} MB"
    )
    print(f"[{label}] consume from the beginning (median of {len(consumed)}; "
          f"min {rates_c['min']:.0f}, max {rates_c['max']:.0f} records/sec)")  # fmt: skip
    print(
        f"  {c.records} records consumed, {c.records_per_s:.1f} records/sec "
        f"({c.mb_per_s:.2f} MB/sec), waited on the broker {busy(c.waiting_s, c.elapsed_s)} of "
        f"the time; CPU: broker {busy(c.usage.broker_cpu_s, c.usage.wall_s)}, "
        f"client {busy(c.usage.client_cpu_s, c.usage.wall_s)}"
    )


def run_bench(cfg: Config) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="shoal-bench-pc-", dir=cfg.base))
    # Outside the repository: a profile is a large binary, for a person to look at once.
    profile_path = cfg.base / "shoal-broker-produce_consume.prof" if cfg.profile else None
    broker = BrokerUnderTest(work, profile_path=profile_path)
    load_before = os.getloadavg()
    print(
        f"shoal produce/consume bench: {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, confluent-kafka {confluent_kafka.version()[0]} "
        f"(librdkafka {confluent_kafka.libversion()[0]}), load average {load_before[0]:.2f}"
        f"{', broker under cProfile' if cfg.profile else ''}"
    )
    print(
        f"broker: `shoal broker` subprocess, default settings (flush policy sync: acks=all "
        f"answered after fsync), data in {work}"
    )
    print(
        f"producer: {json.dumps(PRODUCER_SETTINGS)}; latency of 1 record in {LATENCY_SAMPLE_EVERY}"
    )
    print(f"consumer: {json.dumps(CONSUMER_SETTINGS)}")
    results: dict[str, Any] = {
        "config": {
            **asdict(cfg),
            "base": str(cfg.base),
            "producer": PRODUCER_SETTINGS,
            "consumer": CONSUMER_SETTINGS,
            "latency_producer": LATENCY_PRODUCER_SETTINGS,
        },
        "environment": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "confluent_kafka": confluent_kafka.version()[0],
            "librdkafka": confluent_kafka.libversion()[0],
            "load_average_before": load_before,
        },
        "targets": TARGETS,
    }
    # The client's ceiling first, while no broker competes for the cores.
    records = 200_000 if cfg.quick else 1_000_000
    local = statistics.median(client_local_queue(100, records) for _ in range(3))
    try:
        broker.start()
        with ProcessSampler(broker.pid) as sampler:
            throughput: dict[str, Any] = {}
            runs = run_throughput(cfg, broker, sampler, throughput)
            results["throughput"] = throughput
            latency = measure_latency(cfg, broker, sampler)
            results["latency"] = latency
            client = measure_client_alone(broker, sampler, runs, local)
            results["client_alone"] = client
            results["broker_rss_mb"] = {
                "sampled_max": sampler.rss_max_mb,
                "vm_hwm": sampler.hwm_mb(),
            }
    finally:
        code = broker.stop()
        if not cfg.keep:
            shutil.rmtree(work, ignore_errors=True)
    results["broker_exit_code"] = code
    results["environment"]["load_average_after"] = os.getloadavg()
    results["verdicts"] = print_summary(results, runs)
    if profile_path is not None:
        results["profile"] = print_profile(profile_path)
    return results


def measure_latency(
    cfg: Config, broker: BrokerUnderTest, sampler: ProcessSampler
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for rate, linger_ms in cfg.latency_runs:
        run = latency_run(
            broker.bootstrap, sampler, rate, linger_ms, cfg.latency_seconds, cfg.warmup_s
        )
        lat = percentiles(run.latencies_ms)
        print(
            f"\n[end-to-end, 100 B, 1 partition, acks=all, linger.ms={linger_ms}, {rate} msg/s "
            f"for {cfg.latency_seconds:g} s, first {cfg.warmup_s:g} s not counted]"
        )
        print("  " + perf_line(len(run.latencies_ms), float(rate), rate * 100 / MIB, lat, "timed"))
        print(
            f"  sent {run.sent}, received {run.received}, sender more than 1 ms late "
            f"{run.late_sends} times; CPU: broker {busy(run.usage.broker_cpu_s, run.usage.wall_s)}"
            f" of a core; broker RSS max {run.usage.rss_max_mb:.0f} MB"
        )
        ack = run.ack_latency_ms
        print(
            f"  of which send-to-ack (the producer's half): {ack['p50']:.2f} ms 50th, "
            f"{ack['p99']:.2f} ms 99th, {ack['p99.9']:.2f} ms 99.9th"
        )
        out[f"{rate}_linger_{linger_ms}"] = {
            "rate": rate,
            "linger_ms": linger_ms,
            "sent": run.sent,
            "received": run.received,
            "late_sends": run.late_sends,
            "latency_ms": lat,
            "ack_latency_ms": run.ack_latency_ms,
            **asdict(run.usage),
        }
    return out


def measure_client_alone(
    broker: BrokerUnderTest,
    sampler: ProcessSampler,
    runs: dict[tuple[int, int], tuple[list[ProduceRun], list[ConsumeRun]]],
    local: float,
) -> dict[str, Any]:
    produced, _ = runs[(100, 8)]
    topic = "bench-100b-8p-0"
    with sampler.phase() as usage:
        drain, starved = client_drain(broker.bootstrap, sampler, topic, 8, produced[0].records)
    print("\n[the load generator alone, 100 B records]")
    print(
        f"  produce() into librdkafka's local queue, no broker (median of 3): "
        f"{local:,.0f} records/sec"
    )
    print(
        f"  consume loop over records already in the client's queue: {drain:,.0f} records/sec"
        f"{'' if starved == 0 else f' (queue ran dry {starved} times: a lower bound)'}"
    )
    print(
        f"  (while the client prefetched {produced[0].records} records as fast as the broker "
        f"sent them, broker RSS max {usage.rss_max_mb:.0f} MB)"
    )
    return {
        "prefetch_broker_rss_max_mb": usage.rss_max_mb,
        "produce_local_queue_records_per_s": local,
        "consume_prefetched_records_per_s": drain,
        "consume_prefetched_starved_calls": starved,
    }


def print_summary(
    results: dict[str, Any], runs: dict[tuple[int, int], tuple[list[ProduceRun], list[ConsumeRun]]]
) -> dict[str, Any]:
    produce = results["throughput"]["100B_8p"]["produce_records_per_s"]["median"]
    consume = results["throughput"]["100B_8p"]["consume_records_per_s"]["median"]
    rate, linger_ms = LATENCY_RUNS_FULL[0]
    p99 = results["latency"][f"{rate}_linger_{linger_ms}"]["latency_ms"]["p99"]
    rss = max(results["broker_rss_mb"]["sampled_max"], results["broker_rss_mb"]["vm_hwm"])
    client = results["client_alone"]
    produce_min = TARGETS["produce_100B_8p_records_per_s"]
    consume_min = TARGETS["consume_100B_8p_records_per_s"]
    p99_max, rss_max = TARGETS["e2e_p99_ms_at_5000"], TARGETS["broker_rss_mb"]
    local = client["produce_local_queue_records_per_s"]
    rows = [
        ("produce 100 B, 8 partitions", f"{produce:,.0f} records/sec", f">= {produce_min:,}",
         produce >= produce_min, f"client alone: {local:,.0f}"),
        ("consume 100 B, 8 partitions", f"{consume:,.0f} records/sec", f">= {consume_min:,}",
         consume >= consume_min,
         f"client alone: {client['consume_prefetched_records_per_s']:,.0f}"),
        (f"end-to-end p99, 5,000 msg/s, linger {linger_ms}", f"{p99:.2f} ms",
         f"<= {p99_max:g} ms", p99 <= p99_max, ""),
        ("broker RSS (max of samples, VmHWM)", f"{rss:.0f} MB", f"<= {rss_max} MB",
         rss <= rss_max, ""),
    ]  # fmt: skip
    print("\ntargets")
    verdicts: dict[str, Any] = {}
    for name, figure, target, ok, note in rows:
        print(f"  {name:<38} {figure:>20}  {target:<18} {verdict(ok)}  {note}")
        verdicts[name] = {"figure": figure, "target": target, "pass": ok}
    load = results["environment"]["load_average_after"][0]
    print(
        f"load average {results['environment']['load_average_before'][0]:.2f} before, "
        f"{load:.2f} after (other processes on the {os.cpu_count()} cores add noise)"
    )
    return verdicts


def print_profile(path: Path) -> dict[str, list[str]]:
    """The broker's top functions by own time and by cumulative time."""
    out: dict[str, list[str]] = {}
    for key in ("tottime", "cumulative"):
        stream = io.StringIO()
        pstats.Stats(str(path), stream=stream).sort_stats(key).print_stats(25)
        table = [line for line in stream.getvalue().splitlines() if line.strip()][-27:]
        print(f"\nbroker profile, top 25 by {key} ({path}):")
        print("\n".join(table))
        out[key] = table
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "pace":
        return pace(args.bootstrap, args.topic, args.rate, args.seconds, args.size, args.linger_ms)
    cfg = config_from(args)
    results = run_bench(cfg)
    json_path: Path = args.json or (
        RESULTS.with_name("produce_consume.quick.json") if cfg.quick else RESULTS
    )
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nresults: {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
