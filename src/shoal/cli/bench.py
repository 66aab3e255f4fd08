"""``shoal bench producer|consumer|e2e``: performance tests against any Kafka-protocol broker,
with the options and the output lines of Kafka's ``kafka-producer-perf-test`` and
``kafka-consumer-perf-test``; ``e2e`` measures produce-to-consume latency at a fixed rate.
``--json FILE`` also writes the figures as JSON.

    shoal bench producer --topic t --num-records 100000 --record-size 100 --throughput -1
    shoal bench consumer --topic t --messages 100000
    shoal bench e2e --topic t --num-records 5000 --throughput 1000
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import time
import uuid
from pathlib import Path
from typing import Any, Final

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from shoal.cli.common import ClientContext, CliError, UsageError, add_client_options
from shoal.cli.perf_stats import (
    CONSUMER_HEADER,
    PERCENTILES,
    ProducerTotals,
    ProgressWindow,
    Throttle,
    consumer_line,
    kafka_percentiles,
    total_line,
    window_line,
)
from shoal.cli.produce import ACKS_CHOICES, COMPRESSION_CHOICES

REPORT_EVERY_S: Final = 5.0
"""kafka-producer-perf-test's progress interval."""
RECORD_SIZE_MAX: Final = 16 * 1024 * 1024
"""Far above any broker's default message.max.bytes: a larger size is a typo."""
POLL_S: Final = 0.5
E2E_STAMP = struct.Struct(">d")
"""The first 8 bytes of an e2e record: its send time (seconds, the producer's clock)."""


def add_bench_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser("bench", help="producer, consumer and end-to-end performance tests")
    modes = bench.add_subparsers(dest="bench_command", required=True, metavar="MODE")
    producer = modes.add_parser("producer", help="like kafka-producer-perf-test")
    _common(producer)
    producer.add_argument("--num-records", type=_positive_int, required=True)
    producer.add_argument("--record-size", type=_record_size, default=100, help="bytes")
    producer.add_argument(
        "--throughput", type=float, required=True, help="records/s to hold to; -1: no limit"
    )
    producer.add_argument("--acks", choices=ACKS_CHOICES, default="all")
    producer.add_argument("--compression", choices=COMPRESSION_CHOICES, default="none")
    producer.add_argument("--partitions", type=_positive_int, help="create the topic with these")
    producer.set_defaults(run=run_producer, command_parser=producer)

    consumer = modes.add_parser("consumer", help="like kafka-consumer-perf-test")
    _common(consumer)
    consumer.add_argument("--messages", type=_positive_int, required=True)
    consumer.add_argument("--group", help="consumer group (default: a new one)")
    consumer.set_defaults(run=run_consumer, command_parser=consumer)

    e2e = modes.add_parser("e2e", help="end-to-end latency at a fixed rate")
    _common(e2e)
    e2e.add_argument("--num-records", type=_positive_int, required=True)
    e2e.add_argument("--record-size", type=_record_size, default=100, help="bytes")
    e2e.add_argument("--throughput", type=float, default=1000.0, help="records/s (default 1000)")
    e2e.add_argument("--acks", choices=ACKS_CHOICES, default="all")
    e2e.add_argument("--partitions", type=_positive_int, help="create the topic with these")
    e2e.set_defaults(run=run_e2e, command_parser=e2e)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", required=True)
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")
    add_client_options(parser)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _record_size(text: str) -> int:
    value = _positive_int(text)
    if value > RECORD_SIZE_MAX:
        raise argparse.ArgumentTypeError(f"record size over {RECORD_SIZE_MAX} bytes")
    return value


def _write_json(path: Path | None, figures: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(figures, indent=2) + "\n")


def _ensure_topic(ctx: ClientContext, topic: str, partitions: int | None) -> None:
    if partitions is None:
        return
    admin = AdminClient(ctx.config())
    future = admin.create_topics([NewTopic(topic, partitions, -1)])[topic]
    try:
        future.result(ctx.timeout_s)
    except KafkaException as exc:
        if "already exists" not in str(exc).lower():
            raise ctx.error(exc, f"create topic {topic!r}") from None


def _payload(size: int) -> bytes:
    # Random bytes, as the perf test's default payload: compression gets no free lunch.
    return os.urandom(size)


def run_producer(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    _ensure_topic(ctx, args.topic, args.partitions)
    producer = Producer(
        ctx.config(
            {
                "acks": args.acks,
                "compression.type": args.compression,
                "linger.ms": 5,
                "message.timeout.ms": int(ctx.timeout_s * 1000),
            }
        )
    )
    payload = _payload(args.record_size)
    totals, window = ProducerTotals(), ProgressWindow()
    failed: list[str] = []
    throttle = Throttle(args.throughput)
    started = window_started = time.monotonic()

    def delivered(sent_at: float) -> Any:
        def on_delivery(error: Any, _msg: Any) -> None:
            if error is not None:
                failed.append(error.str())
                return
            latency_ms = int((time.monotonic() - sent_at) * 1000)
            totals.add(latency_ms, len(payload))
            window.add(latency_ms, len(payload))

        return on_delivery

    for i in range(args.num_records):
        now = time.monotonic()
        wait = throttle.delay_s(i, now)
        if wait:
            producer.poll(wait)
            now = time.monotonic()
        while True:
            try:
                producer.produce(args.topic, payload, on_delivery=delivered(now))
                break
            except BufferError:
                producer.poll(0.01)  # librdkafka's queue is full: let deliveries drain it
        producer.poll(0)
        if now - window_started >= REPORT_EVERY_S:
            print(window_line(window, now - window_started), flush=True)
            window, window_started = ProgressWindow(), now
    if producer.flush(ctx.timeout_s + 1):
        failed.append("no answer from the broker")
    elapsed = time.monotonic() - started
    if failed:
        raise CliError(f"{len(failed)} records were not delivered to {args.topic!r}: {failed[0]}")
    summary = totals.summary(elapsed)
    print(total_line(summary))
    _write_json(args.json, {"mode": "producer", "topic": args.topic, **summary})
    return 0


def run_consumer(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    consumer = Consumer(
        ctx.config(
            {
                "group.id": args.group or f"shoal-bench-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    records = size = 0
    started = time.time()
    first_record_at: float | None = None
    deadline = time.monotonic() + ctx.timeout_s
    try:
        consumer.subscribe([args.topic])
        while records < args.messages:
            batch = consumer.consume(min(10_000, args.messages - records), POLL_S)
            got = [m for m in batch if m.error() is None]
            if not got:
                if time.monotonic() > deadline:
                    raise CliError(
                        f"only {records} of {args.messages} records arrived from {args.topic!r} "
                        f"within {ctx.timeout_s:g} s without a record"
                    )
                continue
            if first_record_at is None:
                first_record_at = time.time()
            deadline = time.monotonic() + ctx.timeout_s
            records += len(got)
            size += sum(len(m.value() or b"") for m in got)
    finally:
        consumer.close()
    ended = time.time()
    # Kafka counts the time to join the group as rebalance time; here: until the first record.
    rebalance_ms = ((first_record_at or ended) - started) * 1000
    line, figures = consumer_line(
        start_s=started, end_s=ended, records=records, size_bytes=size, rebalance_ms=rebalance_ms
    )
    print(CONSUMER_HEADER)
    print(line)
    _write_json(args.json, {"mode": "consumer", "topic": args.topic, **figures})
    return 0


def run_e2e(args: argparse.Namespace) -> int:
    """Send at a fixed rate, each record stamped with its send time; a consumer assigned to
    every partition from the end measures how long each took to arrive."""
    ctx = ClientContext(args)
    if args.record_size < E2E_STAMP.size:
        raise UsageError(f"--record-size must be at least {E2E_STAMP.size} for e2e")
    _ensure_topic(ctx, args.topic, args.partitions)
    producer = Producer(ctx.config({"acks": args.acks, "linger.ms": 0}))
    consumer = Consumer(
        ctx.config(
            {
                "group.id": f"shoal-bench-e2e-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "latest",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 5,
            }
        )
    )
    padding = _payload(args.record_size - E2E_STAMP.size)
    latencies: list[int] = []
    latencies_us: list[int] = []
    try:
        _assign_at_end(ctx, consumer, producer, args.topic)
        throttle = Throttle(args.throughput)
        sent = 0
        deadline = time.monotonic() + ctx.timeout_s
        while len(latencies_us) < args.num_records:
            now = time.monotonic()
            if sent < args.num_records and throttle.delay_s(sent, now) == 0:
                producer.produce(args.topic, E2E_STAMP.pack(now) + padding)
                producer.poll(0)
                sent += 1
            for msg in consumer.consume(100, 0.001):
                value = msg.value()
                if msg.error() is None and value is not None and len(value) >= E2E_STAMP.size:
                    (sent_at,) = E2E_STAMP.unpack_from(value)
                    latencies_us.append(int((time.monotonic() - sent_at) * 1_000_000))
                    deadline = time.monotonic() + ctx.timeout_s
            if time.monotonic() > deadline:
                raise CliError(
                    f"only {len(latencies_us)} of {args.num_records} records came back from "
                    f"{args.topic!r} within {ctx.timeout_s:g} s"
                )
        producer.flush(ctx.timeout_s)
    finally:
        consumer.close()
    latencies = [us // 1000 for us in latencies_us]
    p50, p95, p99, p999 = (v / 1000 for v in kafka_percentiles(latencies_us, PERCENTILES))
    figures = {
        "records": len(latencies),
        "avg_latency_ms": sum(latencies_us) / len(latencies_us) / 1000,
        "max_latency_ms": max(latencies_us) / 1000,
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "p999_ms": p999,
    }
    print(
        f"{len(latencies)} records end to end at {args.throughput:g} records/sec, "
        f"{figures['avg_latency_ms']:.2f} ms avg latency, {figures['max_latency_ms']:.2f} ms max "
        f"latency, {p50:.2f} ms 50th, {p95:.2f} ms 95th, {p99:.2f} ms 99th, {p999:.2f} ms 99.9th."
    )
    _write_json(args.json, {"mode": "e2e", "topic": args.topic, **figures})
    return 0


def _assign_at_end(ctx: ClientContext, consumer: Consumer, producer: Producer, topic: str) -> None:
    """Assign every partition of ``topic`` at its end (as Kafka's EndToEndLatency seeks to the
    end), read from the broker before anything is sent: a group's 'latest' reset is an
    asynchronous lookup, and records sent before it answers would be skipped."""
    try:
        meta = producer.list_topics(topic, timeout=ctx.timeout_s)  # creates it if auto-created
    except KafkaException as exc:
        raise ctx.error(exc, f"read topic {topic!r}", producer) from None
    found = meta.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise CliError(
            f"topic {topic!r} does not exist and the broker did not create it: create it, or "
            "pass --partitions N"
        )
    ends = []
    for partition in sorted(found.partitions):
        try:
            _, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=ctx.timeout_s
            )
        except KafkaException as exc:
            raise ctx.error(exc, f"read the end of {topic!r}", producer) from None
        ends.append(TopicPartition(topic, partition, high))
    consumer.assign(ends)
