"""The same admin operations through kafka-python's KafkaAdminClient: an independent client,
with its own encoders and its own choice of versions (CreateTopics v7, DescribeCluster)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from shoal.embedded import EmbeddedBroker
from tests.broker.admin.support import partition_count, partition_log, unique

with warnings.catch_warnings():
    # kafka-python's schema loader uses an importlib.resources call deprecated since 3.11; the
    # warning is theirs, and this suite turns warnings into errors.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
    from kafka.errors import (
        InvalidConfigurationError,
        InvalidReplicationFactorError,
        UnknownTopicOrPartitionError,
    )

pytestmark = pytest.mark.integration


@pytest.fixture
def kp_admin(broker: EmbeddedBroker) -> Iterator[Any]:
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers, request_timeout_ms=10_000)
    yield client
    client.close()


def topic_configs(kp_admin: Any, name: str) -> dict[str, Any]:
    resource = ConfigResource(ConfigResourceType.TOPIC, name)
    described = kp_admin.describe_configs([resource], config_filter="all")
    configs: dict[str, Any] = described["topic"][name]
    return configs


def test_create_describe_alter_delete(broker: EmbeddedBroker, kp_admin: Any) -> None:
    name = unique()
    created = kp_admin.create_topics([NewTopic(name, 2, 1, topic_configs={"retention.ms": "5000"})])
    (result,) = created["topics"]
    assert (result["error_code"], result["num_partitions"], result["replication_factor"]) == (
        0,
        2,
        1,
    )
    assert partition_count(broker, name) == 2

    configs = topic_configs(kp_admin, name)
    assert configs["retention.ms"]["value"] == "5000"
    assert configs["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert configs["segment.bytes"]["config_source"] == "DEFAULT_CONFIG"

    change = ConfigResource(ConfigResourceType.TOPIC, name, configs={"retention.ms": "9000"})
    assert kp_admin.alter_configs([change]) == {"topic": {name: "OK"}}
    assert topic_configs(kp_admin, name)["retention.ms"]["value"] == "9000"
    plog = partition_log(broker, name, 1)
    assert plog is not None and plog.config.retention_ms == 9000

    deleted = kp_admin.delete_topics([name])
    assert [t["error_code"] for t in deleted["topics"]] == [0]
    assert partition_count(broker, name) is None


def test_errors_come_back_typed(kp_admin: Any) -> None:
    with pytest.raises(InvalidReplicationFactorError, match="single-node"):
        kp_admin.create_topics([NewTopic(unique(), 1, 3)])
    with pytest.raises(InvalidConfigurationError, match=r"cleanup\.policy"):
        kp_admin.create_topics([NewTopic(unique(), 1, 1, topic_configs={"cleanup.policy": "x"})])
    with pytest.raises(UnknownTopicOrPartitionError):
        kp_admin.delete_topics([unique()])


def test_broker_configs_and_cluster(broker: EmbeddedBroker, kp_admin: Any) -> None:
    resource = ConfigResource(ConfigResourceType.BROKER, "1")
    configs = kp_admin.describe_configs([resource], config_filter="all")["broker"]["1"]
    assert configs["node.id"]["value"] == "1"
    assert configs["node.id"]["config_source"] == "STATIC_BROKER_CONFIG"
    assert configs["num.partitions"]["read_only"] is True

    cluster = kp_admin.describe_cluster()
    assert (cluster["cluster_id"], cluster["controller_id"]) == ("shoal-cluster", 1)
    assert [b["broker_id"] for b in cluster["brokers"]] == [1]
    # kafka-python asks DescribeCluster (60) for these: everything, without an authorizer.
    assert set(cluster["authorized_operations"]) == {
        "CREATE", "ALTER", "DESCRIBE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS",
        "IDEMPOTENT_WRITE",
    }  # fmt: skip
