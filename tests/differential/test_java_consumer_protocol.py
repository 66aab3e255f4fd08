"""The Java consumer with ``group.protocol=consumer`` (KIP-848), through Kafka's console
consumer, against shoal and, for reference, Apache Kafka 4.4: it joins a consumer group, is
assigned every partition by the broker's assignor, consumes everything and commits; then
kafka-consumer-groups lists and describes the group."""

from __future__ import annotations

import pytest

from tests.differential.scenarios import unique
from tests.differential.test_java_tools import (
    CONSOLE_CONSUMER,
    CONSOLE_PRODUCER,
    CONSUMER_GROUPS,
    TOPICS,
)
from tests.differential.tools import ok
from tests.peers.kafka_peer import kafka_tool

pytestmark = pytest.mark.integration

PARTITIONS = 3
RECORDS = 30


def test_java_consumer_protocol_consumes_and_commits(target: str) -> None:
    topic, group = unique("java-848"), unique("java-848-group")
    ok(
        kafka_tool(
            TOPICS, "--bootstrap-server", target, "--create", "--topic", topic,
            "--partitions", str(PARTITIONS), "--replication-factor", "1",
        )
    )  # fmt: skip
    lines = [f"r-{i}" for i in range(RECORDS)]
    ok(
        kafka_tool(
            CONSOLE_PRODUCER, "--bootstrap-server", target, "--topic", topic,
            stdin="".join(f"{line}\n" for line in lines),
        )
    )  # fmt: skip
    consumed = ok(
        kafka_tool(
            CONSOLE_CONSUMER, "--bootstrap-server", target, "--topic", topic, "--group", group,
            "--command-property", "group.protocol=consumer",
            "--from-beginning", "--max-messages", str(RECORDS), "--timeout-ms", "60000",
        )
    )  # fmt: skip
    assert sorted(consumed.split()) == sorted(lines)
    listed = ok(
        kafka_tool(CONSUMER_GROUPS, "--bootstrap-server", target, "--list", "--type", "consumer")
    )
    assert group in listed.split()
    described = ok(
        kafka_tool(CONSUMER_GROUPS, "--bootstrap-server", target, "--describe", "--group", group)
    )
    rows = [line.split() for line in described.splitlines() if topic in line]
    assert len(rows) == PARTITIONS, described
    header = next(line.split() for line in described.splitlines() if "CURRENT-OFFSET" in line)
    by_partition = {row[2]: dict(zip(header, row, strict=False)) for row in rows}
    assert sum(int(r["CURRENT-OFFSET"]) for r in by_partition.values()) == RECORDS
    assert all(r["LAG"] == "0" for r in by_partition.values())
