"""One 3-broker Kafka cluster (tests/peers/kafka_cluster.py) for this package's tests: its
three JVMs cost about a gigabyte, so it starts for these tests and stops after them, instead of
living for the whole session as the single-node ``kafka_peer`` does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.peers.kafka_cluster import KafkaCluster


@pytest.fixture(scope="package")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    with KafkaCluster(tmp_path_factory.mktemp("kafka-cluster")) as cluster:
        yield cluster


@pytest.fixture
def healthy_cluster(kafka_cluster: KafkaCluster) -> KafkaCluster:
    """The package's cluster with every node up and every partition fully replicated: a test
    that killed a node and failed before restarting it does not leave the next one a node
    short."""
    for node in kafka_cluster.nodes:
        if not node.alive():
            kafka_cluster.restart(node.node_id)
    kafka_cluster.wait_healthy()
    return kafka_cluster
