"""Kafka-protocol systems (shoal, Apache Kafka) driven by confluent-kafka (librdkafka).

librdkafka is the fastest Python-reachable Kafka client: ``produce()`` queues a record locally
(measured ~1.8M/s on this machine) and its own threads batch, send and receive, so the Python
loop is rarely what limits a run. ``client_alone`` measures that ceiling in the same run.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Final

from bench.peers.common import (
    Collector,
    Latency,
    PacerReport,
    Throughput,
    Timer,
    pace_sync,
    payload,
    percentiles,
    start_pacer,
)
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

STOP_TIMEOUT_S: Final = 60.0
PRODUCER: Final[dict[str, Any]] = {
    "acks": "all",
    "linger.ms": 5,
    # Just under the brokers' default message.max.bytes (1,048,588): no batch is refused.
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 64 * 1024,
    "compression.type": "none",
    "enable.idempotence": False,
    "log_level": 0,
}
CONSUMER: Final[dict[str, Any]] = {
    "group.id": "compare-bench",  # librdkafka requires one; assign() joins no group
    "enable.auto.commit": False,
    "enable.partition.eof": False,
    "fetch.max.bytes": 50 * 1024 * 1024,
    "max.partition.fetch.bytes": 4 * 1024 * 1024,
    "queued.min.messages": 1_000_000,
    "fetch.queue.backoff.ms": 10,
    "fetch.wait.max.ms": 100,
    "log_level": 0,
}
LATENCY_PRODUCER: Final[dict[str, Any]] = {
    "acks": "all",
    # 1 ms, as Kafka latency benchmarks commonly use; 0 would send a request per record.
    "linger.ms": 1,
    "enable.idempotence": False,
    "log_level": 0,
}


class KafkaProtocolSystem:
    kind = "kafka"
    client = "confluent-kafka (librdkafka), 1 process, acks=all, linger.ms=5, 1 partition"

    def __init__(
        self,
        name: str,
        bootstrap: str,
        durability: str,
        security: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.url = bootstrap
        self.durability = durability
        self.security = dict(security or {})
        """librdkafka's security settings (SASL_SSL rows), given to every client."""

    def prepare(self, dest: str) -> None:
        admin = AdminClient({"bootstrap.servers": self.url, "log_level": 0, **self.security})
        futures = admin.create_topics([NewTopic(dest, num_partitions=1, replication_factor=1)])
        futures[dest].result(timeout=30)

    def produce(self, dest: str, size: int, seconds: float) -> Throughput:
        return self._produce(dest, size, seconds=seconds)

    def produce_count(self, dest: str, size: int, records: int) -> Throughput:
        """Exactly ``records`` records (a fixed amount of work, for CPU per byte)."""
        return self._produce(dest, size, records=records)

    def _produce(
        self, dest: str, size: int, *, seconds: float = float("inf"), records: int = -1
    ) -> Throughput:
        producer = Producer({"bootstrap.servers": self.url, **PRODUCER, **self.security})
        producer.list_topics(dest, timeout=30)  # connected, leader known, before timing
        value = os.urandom(size)
        produce, poll = producer.produce, producer.poll
        sent = 0
        with Timer() as timer:
            deadline = time.perf_counter() + seconds
            while sent != records:
                try:
                    produce(dest, value)
                except BufferError:
                    poll(0.001)  # the local queue is full: the broker sets the pace
                    continue
                sent += 1
                if sent % 1024 == 0:
                    poll(0)
                    if time.perf_counter() >= deadline:
                        break
            if producer.flush(STOP_TIMEOUT_S) != 0:
                raise RuntimeError(f"{self.name}: records left undelivered")
        landed = self.end_offset(dest)
        if landed != sent:
            raise RuntimeError(f"{self.name}: {sent} records acknowledged, {landed} in the log")
        return Throughput(sent, size, timer.seconds, timer.cpu_s)

    def end_offset(self, dest: str) -> int:
        consumer = Consumer({"bootstrap.servers": self.url, **CONSUMER, **self.security})
        try:
            high: int = consumer.get_watermark_offsets(TopicPartition(dest, 0), timeout=30)[1]
            return high
        finally:
            consumer.close()

    def consume(self, dest: str, size: int, records: int) -> Throughput:
        consumer = Consumer({"bootstrap.servers": self.url, **CONSUMER, **self.security})
        consumer.list_topics(dest, timeout=30)
        got = 0
        with Timer() as timer:
            consumer.assign([TopicPartition(dest, 0, OFFSET_BEGINNING)])
            last = time.monotonic()
            while got < records:
                # consume(n, timeout) waits for n records or the timeout: take what is there,
                # and block (briefly) only when nothing is.
                batch = consumer.consume(10_000, 0) or [m for m in [consumer.poll(0.1)] if m]
                for message in batch:
                    if message.error() is not None:
                        raise RuntimeError(f"{self.name}: {message.error()}")
                got += len(batch)
                if batch:
                    last = time.monotonic()
                elif time.monotonic() - last > 30:
                    raise RuntimeError(f"{self.name}: consumer stalled at {got}/{records}")
        consumer.close()
        return Throughput(got, size, timer.seconds, timer.cpu_s)

    def latency(self, dest: str, rate: int, seconds: float, size: int, warmup_s: float) -> Latency:
        consumer = Consumer(
            {"bootstrap.servers": self.url, **CONSUMER, "fetch.wait.max.ms": 5, **self.security}
        )
        consumer.list_topics(dest, timeout=30)
        self.warm_up(consumer, dest)
        collector = Collector(start_pacer(self.kind, self.url, dest, rate, seconds, size), warmup_s)
        while not collector.finished:
            batch = consumer.consume(1000, 0) or [m for m in [consumer.poll(0.01)] if m]
            collector.add([m.value() or b"" for m in batch if m.error() is None])
        consumer.close()
        return collector.result(rate, size)

    def warm_up(self, consumer: Consumer, dest: str) -> None:
        """One record through before timing: a topic created a moment ago can keep its first
        produce waiting on leader metadata for hundreds of ms (seen with Apache Kafka), which
        is start-up, not latency at a rate. The consumer is assigned at that record's offset
        (not OFFSET_END, whose resolution could race the record) and reads it, so its fetch
        position is settled before the pacer starts."""
        producer = Producer({"bootstrap.servers": self.url, **LATENCY_PRODUCER, **self.security})
        offsets: list[int | None] = []
        producer.produce(dest, b"warm-up", on_delivery=lambda _e, m: offsets.append(m.offset()))
        if producer.flush(30) != 0 or not offsets or offsets[0] is None or offsets[0] < 0:
            raise RuntimeError(f"{self.name}: the warm-up record was not delivered")
        consumer.assign([TopicPartition(dest, 0, offsets[0])])
        deadline = time.monotonic() + 30
        while not any(
            m.error() is None and m.value() == b"warm-up" for m in consumer.consume(1, 0.2)
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: the warm-up record never arrived")

    def client_alone(self, size: int, records: int) -> dict[str, Any]:
        """produce() into librdkafka's local queue with no broker: the client's ceiling."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            nowhere = f"127.0.0.1:{sock.getsockname()[1]}"  # nothing listens there
        producer = Producer(
            {
                "bootstrap.servers": nowhere,
                **PRODUCER,
                "queue.buffering.max.messages": records + 1,
                "queue.buffering.max.kbytes": 2_000_000,
                "linger.ms": 60_000,
            }
        )
        value, produce = os.urandom(size), producer.produce
        with Timer() as timer:
            for _ in range(records):
                produce("t", value)
        producer.purge()
        return {
            "records_per_s": records / timer.seconds,
            "what": "produce() into librdkafka's local queue, no broker",
        }

    def stop(self) -> None:
        pass


def pace(url: str, dest: str, rate: int, seconds: float, size: int) -> PacerReport:
    producer = Producer({"bootstrap.servers": url, **LATENCY_PRODUCER})
    producer.list_topics(dest, timeout=30)
    failures: list[str] = []
    acked_ms: list[float] = []

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            failures.append(str(error))
        else:
            acked_ms.append(message.latency() * 1000)

    def send(dues: list[int]) -> None:
        for due in dues:
            while True:
                try:
                    producer.produce(dest, payload(size, due), on_delivery=delivered)
                    break
                except BufferError:
                    # The local queue is full: the broker is behind. Waiting here makes the
                    # sender fall behind its schedule, which the report then says.
                    producer.poll(0.001)
        producer.poll(0)

    report = pace_sync(send, rate, seconds)
    producer.flush(STOP_TIMEOUT_S)
    if failures:
        raise RuntimeError(f"{len(failures)} records failed: {failures[:3]}")
    report.ack_latency_ms = percentiles(acked_ms[len(acked_ms) // 5 :])  # first fifth: warm-up
    return report
