"""The Kafka transport's start waits until every broker of the cluster knows the App's topics
(shoal.app.transports.kafka_topics_known, issue 21): a consumer joining its group while the
group coordinator does not know its topic yet is assigned none of its partitions."""

from __future__ import annotations

import uuid
from typing import Any

import confluent_kafka.admin
from confluent_kafka.cimpl import NewTopic

from shoal.app.transports.kafka_topics_known import missing_on, wait_known_everywhere
from tests.peers.kafka_cluster import NODES, KafkaCluster


def test_every_broker_knows_the_topics_once_the_wait_returns(
    healthy_cluster: KafkaCluster,
) -> None:
    config: dict[str, Any] = {"bootstrap.servers": healthy_cluster.bootstrap_servers}
    admin = confluent_kafka.admin.AdminClient(config)
    topics = [f"known-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    for future in admin.create_topics([NewTopic(t, -1, -1) for t in topics]).values():
        future.result(10)
    wait_known_everywhere(config, topics)
    for node in healthy_cluster.nodes:
        # A client bootstrapped on one broker asks that broker.
        one = confluent_kafka.admin.AdminClient({"bootstrap.servers": node.address})
        assert missing_on(one, topics) == [], f"node {node.node_id}"
        assert missing_on(one, [*topics, "never-created"]) == ["never-created"]
    assert len(healthy_cluster.nodes) == NODES
