"""Apache Kafka's own CLI tools (Java client), run with ``java -cp`` from the peer's jars, against
shoal and, for reference, against Apache Kafka: kafka-topics --create/--describe, a console
producer/consumer round trip, and kafka-consumer-groups --describe."""

from __future__ import annotations

import pytest

from tests.differential.scenarios import unique
from tests.differential.tools import ok
from tests.peers.kafka_peer import kafka_tool

pytestmark = pytest.mark.integration

TOPICS = "org.apache.kafka.tools.TopicCommand"
CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
CONSUMER_GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


def test_topics_create_and_describe(target: str) -> None:
    topic = unique("java-topics")
    ok(
        kafka_tool(
            TOPICS,
            "--bootstrap-server",
            target,
            "--create",
            "--topic",
            topic,
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=3600000",
        )
    )
    described = ok(kafka_tool(TOPICS, "--bootstrap-server", target, "--describe", "--topic", topic))
    assert f"Topic: {topic}" in described
    assert "PartitionCount: 3" in described
    assert "ReplicationFactor: 1" in described
    assert "retention.ms=3600000" in described
    partitions = [line for line in described.splitlines() if "Partition: " in line]
    assert [line.split("Partition: ")[1].split()[0] for line in partitions] == ["0", "1", "2"]
    assert all("Leader: 1" in line and "Isr: 1" in line for line in partitions)
    listed = ok(kafka_tool(TOPICS, "--bootstrap-server", target, "--list"))
    assert topic in listed.split()


def test_console_round_trip_and_group_describe(target: str) -> None:
    topic = unique("java-console")
    group = unique("java-group")
    ok(
        kafka_tool(
            TOPICS,
            "--bootstrap-server",
            target,
            "--create",
            "--topic",
            topic,
            "--partitions",
            "1",
            "--replication-factor",
            "1",
        )
    )
    lines = [f"line-{i}" for i in range(5)]
    ok(
        kafka_tool(
            CONSOLE_PRODUCER,
            "--bootstrap-server",
            target,
            "--topic",
            topic,
            stdin="".join(f"{line}\n" for line in lines),
        )
    )
    consumed = ok(
        kafka_tool(
            CONSOLE_CONSUMER,
            "--bootstrap-server",
            target,
            "--topic",
            topic,
            "--group",
            group,
            "--from-beginning",
            "--max-messages",
            "5",
            "--timeout-ms",
            "60000",
        )
    )
    assert consumed.split() == lines

    described = ok(
        kafka_tool(CONSUMER_GROUPS, "--bootstrap-server", target, "--describe", "--group", group)
    )
    rows = [line.split() for line in described.splitlines() if topic in line]
    assert len(rows) == 1, described
    header = next(line.split() for line in described.splitlines() if "CURRENT-OFFSET" in line)
    row = dict(zip(header, rows[0], strict=False))
    assert row["GROUP"] == group
    assert (row["PARTITION"], row["CURRENT-OFFSET"], row["LOG-END-OFFSET"], row["LAG"]) == (
        "0",
        "5",
        "5",
        "0",
    )
    listed = ok(kafka_tool(CONSUMER_GROUPS, "--bootstrap-server", target, "--list"))
    assert group in listed.split()
