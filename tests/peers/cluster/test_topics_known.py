"""The Kafka transport's start waits until every broker of the cluster knows the App's topics
(shoal.app.transports.kafka_topics_known, issue 21): a consumer joining its group while the
group coordinator does not know its topic yet is assigned none of its partitions. The wait asks
each broker only about its topics, with a growing pause, and does not wait for leaders: a topic
whose only replica is on a dead broker is known, and waiting would not bring it a leader.

The test that kills a node is the last of this file (and the file the last of its package):
the package's ``healthy_cluster`` fixture restarts the node for whichever test comes next."""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections import Counter
from typing import Any

import confluent_kafka.admin
import pytest
from confluent_kafka.cimpl import NewTopic

from shoal.app.transports import kafka_topics_known
from shoal.app.transports.kafka_topics_known import backoff_s, missing_on, wait_known_everywhere
from tests.peers.kafka_cluster import NODES, KafkaCluster

pytestmark = pytest.mark.integration

SHORT_WAIT_S = 2.0
"""The wait's bound in tests that expect it to run out, instead of its 10 s."""
FENCE_WAIT_S = 60.0
"""Bound on the cluster's noticing a killed node (its broker session is 3 s in this cluster)."""


def create_topics(cluster: KafkaCluster, topics: list[str], replication_factor: int = -1) -> None:
    admin = confluent_kafka.admin.AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    for future in admin.create_topics(
        [NewTopic(t, 3, replication_factor) for t in topics]
    ).values():
        future.result(30)


def test_every_broker_knows_the_topics_once_the_wait_returns(
    healthy_cluster: KafkaCluster,
) -> None:
    config: dict[str, Any] = {"bootstrap.servers": healthy_cluster.bootstrap_servers}
    topics = [f"known-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    create_topics(healthy_cluster, topics)
    wait_known_everywhere(config, topics)
    for node in healthy_cluster.nodes:
        # A client bootstrapped on one broker asks that broker.
        one = confluent_kafka.admin.AdminClient({"bootstrap.servers": node.address})
        assert missing_on(one, topics) == [], f"node {node.node_id}"
        assert missing_on(one, [*topics, "never-created"]) == ["never-created"]
    assert len(healthy_cluster.nodes) == NODES


class SpyAdminClient(confluent_kafka.admin.AdminClient):  # type: ignore[misc]
    """confluent-kafka's AdminClient, counting the wait's Metadata requests per client."""

    asked: Counter[tuple[str, str | None]] = Counter()
    """(the client's bootstrap address, the topic asked for; None: every topic) → requests."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.bootstrap = config["bootstrap.servers"]

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        SpyAdminClient.asked[(self.bootstrap, topic)] += 1
        return super().list_topics(topic=topic, timeout=timeout)


def test_the_wait_asks_each_broker_only_for_the_topics_it_lacks_with_a_backoff(
    healthy_cluster: KafkaCluster,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config: dict[str, Any] = {"bootstrap.servers": healthy_cluster.bootstrap_servers}
    known = f"known-{uuid.uuid4().hex[:8]}"
    create_topics(healthy_cluster, [known])
    wait_known_everywhere(config, [known])
    SpyAdminClient.asked.clear()
    monkeypatch.setattr(kafka_topics_known, "AdminClient", SpyAdminClient)
    monkeypatch.setattr(kafka_topics_known, "KNOWN_WAIT_S", SHORT_WAIT_S)
    with caplog.at_level(logging.WARNING, logger="shoal.app.transports.kafka"):
        wait_known_everywhere(config, [known, "never-created"])

    asked = SpyAdminClient.asked
    assert (healthy_cluster.bootstrap_servers, None) not in asked
    assert all(topic is not None for _, topic in asked), asked
    # Rounds that fit in the bound: the first, then one after each pause that ends within it.
    elapsed = itertools.accumulate(backoff_s())
    rounds_max = 1 + sum(1 for _ in itertools.takewhile(lambda s: s <= SHORT_WAIT_S, elapsed))
    for node in healthy_cluster.nodes:
        # A broker is asked again only about what it has not reported (librdkafka may send a
        # client's request to another broker: that broker's answer is credited to it).
        assert asked[(node.address, known)] <= rounds_max, asked
        assert asked[(node.address, "never-created")] <= rounds_max, asked
    assert sum(n for (_, topic), n in asked.items() if topic == known) < sum(
        n for (_, topic), n in asked.items() if topic == "never-created"
    ), asked
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert 1 <= len(warnings) <= NODES, warnings
    assert all("still does not know ['never-created']" in w for w in warnings), warnings


def leaderless_everywhere(cluster: KafkaCluster, topic: str, dead: int) -> bool:
    """Every live broker has fenced ``dead`` and reports ``topic`` with a leaderless partition."""
    for node in cluster.nodes:
        if node.node_id == dead:
            continue
        one = confluent_kafka.admin.AdminClient({"bootstrap.servers": node.address, "log_level": 0})
        metadata = one.list_topics(topic=topic, timeout=5)
        leaders = [p.leader for p in metadata.topics[topic].partitions.values()]
        if dead in metadata.brokers or -1 not in leaders:
            return False
    return True


def test_a_topic_whose_only_replica_is_on_a_dead_broker_is_known(
    healthy_cluster: KafkaCluster,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Replication factor 1, its leader's node killed: the partition has no leader until the
    node returns, which waiting at App start cannot hasten. The wait returns without running
    out (no warning) instead of costing every start its whole bound."""
    config: dict[str, Any] = {"bootstrap.servers": healthy_cluster.bootstrap_servers}
    topic = f"rf1-{uuid.uuid4().hex[:8]}"
    create_topics(healthy_cluster, [topic], replication_factor=1)
    wait_known_everywhere(config, [topic])
    admin = confluent_kafka.admin.AdminClient(config)
    dead = admin.list_topics(topic=topic, timeout=10).topics[topic].partitions[0].leader
    healthy_cluster.kill(dead)
    deadline = time.monotonic() + FENCE_WAIT_S
    while not leaderless_everywhere(healthy_cluster, topic, dead):
        assert time.monotonic() < deadline, f"node {dead} was never fenced"
        time.sleep(0.25)
    monkeypatch.setattr(kafka_topics_known, "KNOWN_WAIT_S", SHORT_WAIT_S)
    with caplog.at_level(logging.WARNING, logger="shoal.app.transports.kafka"):
        wait_known_everywhere(config, [topic])
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == []
