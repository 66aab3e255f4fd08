"""The CLI against the 3-broker Kafka cluster: ``shoal topic``, ``group describe``, ``dlq
redrive`` and ``consume`` do on a replicated cluster what they do on one shoal broker, and show
its replicas (issue 21)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from confluent_kafka import Consumer, KafkaException, ShareConsumer, TopicPartition

from shoal.app import App, Retry
from shoal.cli import main
from shoal.protocol import ApiKey
from tests.cli.support import Result
from tests.peers.kafka_cluster import NODES, REPLICATION_FACTOR, KafkaCluster
from tests.server.wire import WireClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TOPIC = "payments"
PARTITIONS = 3
PAYMENTS = [("p0", 10), ("p1", -1), ("p2", 25), ("p3", 7)]
"""(key, amount): the negative amount is refused by the handler and dead-lettered."""
WAIT_ROUNDS_MAX = 300
"""Rounds of 0.2 s waiting for the app: a generous bound on a hang, not a timing."""


def shoal(capsys: pytest.CaptureFixture[str], cluster: KafkaCluster, *argv: str) -> Result:
    capsys.readouterr()
    try:
        code = main([*argv, "--bootstrap-server", cluster.bootstrap_servers])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return Result(code, out, err)


async def run_billing(bootstrap: str) -> None:
    """An app that refuses negative amounts for good: one delivery, then the DLQ."""
    app = App(f"kafka://{bootstrap}", name="billing")

    @app.subscriber(TOPIC, group="billing", retry=Retry(max_attempts=1))
    async def bill(payment: dict[str, int]) -> None:
        if payment["amount"] < 0:
            raise ValueError(f"negative amount {payment['amount']}")

    async with app:
        for key, amount in PAYMENTS:
            await app.publish(TOPIC, {"amount": amount}, key=key)
        for _ in range(WAIT_ROUNDS_MAX):
            dead = await app.transport.read_topic(f"{TOPIC}.dlq")
            if dead and await asyncio.to_thread(committed, bootstrap, "billing") == len(PAYMENTS):
                return
            await asyncio.sleep(0.2)
    raise AssertionError("the app did not process and dead-letter the payments")


def committed(bootstrap: str, group: str) -> int:
    """The sum of the group's committed offsets on the topic (an OffsetFetch, without joining;
    not AdminClient.list_consumer_group_offsets, which has crashed the process on a cluster)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 0})
    try:
        partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=10))
    except KafkaException:
        return 0  # no group yet
    finally:
        consumer.close()


def test_topic_group_dlq_and_consume_on_the_cluster(
    healthy_cluster: KafkaCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = healthy_cluster
    created = shoal(capsys, cluster, "topic", "create", TOPIC, "-p", str(PARTITIONS))
    assert created.code == 0, created.err
    described = shoal(capsys, cluster, "topic", "describe", TOPIC, "--format", "json")
    assert described.code == 0, described.err
    doc = json.loads(described.out)
    assert doc["replication_factor"] == REPLICATION_FACTOR  # the cluster's default
    for partition in doc["partitions"]:
        assert sorted(partition["replicas"]) == list(range(1, NODES + 1))
        assert sorted(partition["isr"]) == list(range(1, NODES + 1))
    # Kafka spreads the leaders over the brokers; shoal's one broker leads everything.
    assert len({p["leader"] for p in doc["partitions"]}) == PARTITIONS
    assert TOPIC in shoal(capsys, cluster, "topic", "list").lines

    asyncio.run(run_billing(cluster.bootstrap_servers))

    group = shoal(capsys, cluster, "group", "describe", "billing", "--format", "json")
    assert group.code == 0, group.err
    rows = json.loads(group.out)
    # A partition no payment's key hashed to has no committed offset to show.
    assert {r["partition"] for r in rows if r["topic"] == TOPIC} <= set(range(PARTITIONS))
    assert sum(r["current_offset"] for r in rows if r["topic"] == TOPIC) == len(PAYMENTS)
    assert all(r["lag"] == 0 for r in rows)

    redriven = shoal(capsys, cluster, "dlq", "redrive", f"{TOPIC}.dlq", "--all")
    assert redriven.code == 0, redriven.err

    consumed = shoal(
        capsys, cluster, "consume", TOPIC, "-g", "auditors", "-c", str(len(PAYMENTS) + 1),
        "--format", "json", "-q",
    )  # fmt: skip
    assert consumed.code == 0, consumed.err
    records = [json.loads(line) for line in consumed.lines]
    keys = sorted(r["key"] for r in records)
    assert keys == sorted(["p0", "p1", "p1", "p2", "p3"])  # the refused payment, back again
    auditors = shoal(capsys, cluster, "group", "describe", "auditors", "--format", "json")
    assert auditors.code == 0, auditors.err
    assert sum(r["current_offset"] for r in json.loads(auditors.out)) == len(PAYMENTS) + 1


SHARE_TOPIC = "cli-share-jobs"
SHARE_GROUPS = [f"cli-share-{i}" for i in range(6)]
"""Enough share groups that their coordinators (a hash of the id over the offsets topic's
partitions, led by different brokers) are not all the bootstrap broker."""


def coordinators(cluster: KafkaCluster, groups: list[str]) -> set[int]:
    """The groups' coordinators, once the cluster has them (the first FindCoordinator creates
    the offsets topic: COORDINATOR_NOT_AVAILABLE until its partitions have leaders)."""
    asked = {"key_type": 0, "coordinator_keys": groups}
    with WireClient(cluster.bootstrap_servers.split(",")[0]) as client:
        for _ in range(WAIT_ROUNDS_MAX):
            found = client.request(ApiKey.FIND_COORDINATOR, 4, asked).coordinators
            if all(c.error_code == 0 for c in found):
                return {int(c.node_id) for c in found}
            time.sleep(0.2)
    raise AssertionError(f"no coordinator for some of {groups}: {found}")


def test_group_list_shows_share_groups_of_every_coordinator(
    healthy_cluster: KafkaCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each Kafka broker lists only the groups it coordinates: ``shoal group list`` asks them
    all, not just the first bootstrap broker."""
    cluster = healthy_cluster
    created = shoal(capsys, cluster, "topic", "create", SHARE_TOPIC, "-p", "1")
    assert created.code == 0, created.err
    assert len(coordinators(cluster, SHARE_GROUPS)) > 1, "every group on one broker: rename them"
    consumers = []
    try:
        for group in SHARE_GROUPS:
            config = {"bootstrap.servers": cluster.bootstrap_servers, "group.id": group}
            consumer = ShareConsumer(config)
            consumer.subscribe([SHARE_TOPIC])
            consumers.append(consumer)
        listed: set[str] = set()
        for _ in range(WAIT_ROUNDS_MAX):
            for consumer in consumers:
                consumer.poll(0.05)
            doc = json.loads(shoal(capsys, cluster, "group", "list", "--format", "json").out)
            listed = {g["group"] for g in doc if g["type"] == "share"}
            if listed >= set(SHARE_GROUPS):
                break
        assert listed >= set(SHARE_GROUPS)
    finally:
        for consumer in consumers:
            consumer.close()
