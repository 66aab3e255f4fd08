"""Apache Kafka's perf tools (kafka-producer-perf-test, kafka-consumer-perf-test) against shoal.

Operators reach for these first when they size a Kafka-compatible broker, so they must run to
completion against shoal and count what they did correctly. Each test then checks, with an
independent client (librdkafka), that the records the tool reports are really in the log.
Nothing here asserts a speed: the tools' figures are only parsed to check the counts.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.peers.kafka_peer import kafka_tool
from tests.support.broker import BrokerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PRODUCER_PERF = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_PERF = "org.apache.kafka.tools.ConsumerPerformance"
TOPICS = "org.apache.kafka.tools.TopicCommand"
PARTITIONS = 3
RECORDS = 20_000
RECORD_SIZE_BYTES = 100
TOOL_TIMEOUT_S = 180.0

# The summary line kafka-producer-perf-test prints last, e.g.
# "20000 records sent, 9000.1 records/sec (0.86 MB/sec), 120.50 ms avg latency, 300.00 ms max
#  latency, 110 ms 50th, 250 ms 95th, 290 ms 99th, 299 ms 99.9th."
PRODUCER_SUMMARY = re.compile(
    r"(?P<sent>\d+) records sent, (?P<rate>[\d.]+) records/sec \((?P<mb>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, "
    r"(?P<p50>\d+) ms 50th, (?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th, (?P<p999>\d+) ms 99\.9th"
)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def create_topic(bootstrap: str, topic: str) -> None:
    ok(
        kafka_tool(
            TOPICS,
            "--bootstrap-server", bootstrap,
            "--create", "--topic", topic,
            "--partitions", str(PARTITIONS),
            "--replication-factor", "1",
        )
    )  # fmt: skip


def produce_with_perf_tool(bootstrap: str, topic: str) -> re.Match[str]:
    out = ok(
        kafka_tool(
            PRODUCER_PERF,
            "--bootstrap-server", bootstrap,
            "--topic", topic,
            "--num-records", str(RECORDS),
            "--record-size", str(RECORD_SIZE_BYTES),
            "--throughput", "-1",
            # The durable setting the tool is usually run with; idempotence is the Java default.
            "--command-property", "acks=all", "linger.ms=5",
            timeout=TOOL_TIMEOUT_S,
        )
    )  # fmt: skip
    summaries = [m for line in out.splitlines() if (m := PRODUCER_SUMMARY.search(line))]
    assert summaries, f"no summary line in the producer perf tool's output:\n{out}"
    return summaries[-1]


def end_offsets(bootstrap: str, topic: str) -> list[tuple[int, int]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4()}"})
    try:
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            for p in range(PARTITIONS)
        ]
    finally:
        consumer.close()


def consume_all(bootstrap: str, topic: str) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    values: list[bytes] = []
    try:
        consumer.subscribe([topic])
        idle_polls = 0
        # Bounded: stop after all records, or after 20 empty one-second polls in a row.
        while len(values) < RECORDS and idle_polls < 20:
            batch = consumer.consume(num_messages=5000, timeout=1.0)
            idle_polls = 0 if batch else idle_polls + 1
            for message in batch:
                assert message.error() is None, message.error()
                values.append(message.value())
    finally:
        consumer.close()
    return values


def test_producer_perf_test_records_are_in_the_log(
    broker_process: Callable[..., BrokerProcess],
) -> None:
    broker = broker_process()
    topic = f"perf-produce-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap_servers, topic)

    summary = produce_with_perf_tool(broker.bootstrap_servers, topic)

    assert int(summary["sent"]) == RECORDS
    assert float(summary["rate"]) > 0
    assert int(summary["p50"]) <= int(summary["p99"]) <= int(summary["p999"])
    watermarks = end_offsets(broker.bootstrap_servers, topic)
    assert all(low == 0 for low, _ in watermarks)
    assert sum(high for _, high in watermarks) == RECORDS
    values = consume_all(broker.bootstrap_servers, topic)
    assert len(values) == RECORDS
    assert {len(value) for value in values} == {RECORD_SIZE_BYTES}


def parse_consumer_stats(out: str) -> dict[str, str]:
    """kafka-consumer-perf-test prints a CSV header line and one line of figures."""
    lines = [line for line in out.splitlines() if line.strip()]
    header_at = next(i for i, line in enumerate(lines) if line.startswith("start.time"))
    names = [name.strip() for name in lines[header_at].split(",")]
    values = [value.strip() for value in lines[header_at + 1].split(",")]
    return dict(zip(names, values, strict=True))


def test_consumer_perf_test_reads_every_record(
    broker_process: Callable[..., BrokerProcess],
) -> None:
    broker = broker_process()
    topic = f"perf-consume-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap_servers, topic)
    produce_with_perf_tool(broker.bootstrap_servers, topic)
    group = f"perf-group-{uuid.uuid4().hex[:8]}"

    out = ok(
        kafka_tool(
            CONSUMER_PERF,
            "--bootstrap-server", broker.bootstrap_servers,
            "--topic", topic,
            "--group", group,
            "--num-records", str(RECORDS),
            "--timeout", "30000",
            timeout=TOOL_TIMEOUT_S,
        )
    )  # fmt: skip

    stats = parse_consumer_stats(out)
    assert int(stats["data.consumed.in.nMsg"]) == RECORDS
    expected_mb = RECORDS * RECORD_SIZE_BYTES / (1024 * 1024)
    assert float(stats["data.consumed.in.MB"]) == pytest.approx(expected_mb, abs=0.01)
    assert float(stats["nMsg.sec"]) > 0
    # The group's position is the log end: the tool consumed each partition to its end.
    described = ok(
        kafka_tool(
            "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
            "--bootstrap-server", broker.bootstrap_servers,
            "--describe", "--group", group,
        )
    )  # fmt: skip
    rows = [line.split() for line in described.splitlines() if line.startswith(group)]
    assert len(rows) == PARTITIONS, described
    assert sum(int(row[3]) for row in rows) == RECORDS  # CURRENT-OFFSET
    assert all(row[3] == row[4] for row in rows), described  # CURRENT-OFFSET == LOG-END-OFFSET
