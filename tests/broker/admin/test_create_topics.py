"""CreateTopics through confluent-kafka's AdminClient (v4) and the raw protocol (v7)."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic, ResourceType

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey, ErrorCode
from tests.broker.admin.support import (
    TIMEOUT_S,
    described_topic,
    kafka_error,
    partition_count,
    partition_log,
    unique,
)
from tests.server.wire import WireClient

pytestmark = pytest.mark.integration


def topic_configs(admin: AdminClient, name: str) -> dict[str, Any]:
    resource = ConfigResource(ResourceType.TOPIC, name)
    result: dict[str, Any] = admin.describe_configs([resource])[resource].result(TIMEOUT_S)
    return result


def test_created_topic_has_its_partitions_and_configs(
    broker: EmbeddedBroker, admin: AdminClient
) -> None:
    name = unique()
    config = {"retention.ms": " 60000 ", "cleanup.policy": "compact, delete"}
    assert (
        admin.create_topics([NewTopic(name, 3, 1, config=config)])[name].result(TIMEOUT_S) is None
    )

    assert partition_count(broker, name) == 3
    configs = topic_configs(admin, name)
    # Stored and described in Kafka's canonical form.
    assert configs["retention.ms"].value == "60000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["cleanup.policy"].value == "compact,delete"
    assert configs["segment.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    plog = partition_log(broker, name, 2)
    assert plog is not None and plog.config.retention_ms == 60000


def test_validate_only_checks_without_creating(broker: EmbeddedBroker, admin: AdminClient) -> None:
    good, bad = unique(), unique()
    futures = admin.create_topics(
        [NewTopic(good, 2, 1), NewTopic(bad, 2, 1, config={"segment.bytes": "100"})],
        validate_only=True,
    )
    assert futures[good].result(TIMEOUT_S) is None
    assert kafka_error(futures[bad]).code() == KafkaError.INVALID_CONFIG
    assert partition_count(broker, good) is None
    assert not any(entry.startswith(good) for entry in os.listdir(broker.app.settings.data_dir))


@pytest.mark.parametrize("name", ["", ".", "..", "has space", "a" * 250, "ümlaut", "a/b"])
def test_invalid_names_are_refused(admin: AdminClient, name: str) -> None:
    error = kafka_error(admin.create_topics([NewTopic(name, 1, 1)])[name])
    assert error.code() == KafkaError.TOPIC_EXCEPTION


def test_a_name_differing_only_in_dot_and_underscore_collides(admin: AdminClient) -> None:
    base = unique("col")
    admin.create_topics([NewTopic(f"{base}.x", 1, 1)])[f"{base}.x"].result(TIMEOUT_S)
    error = kafka_error(admin.create_topics([NewTopic(f"{base}_x", 1, 1)])[f"{base}_x"])
    assert error.code() == KafkaError.TOPIC_EXCEPTION
    assert "collides" in error.str()


@pytest.mark.parametrize("partitions", [0, 10_001])
def test_bad_partition_counts_are_refused(
    broker: EmbeddedBroker, admin: AdminClient, partitions: int
) -> None:
    name = unique()
    error = kafka_error(admin.create_topics([NewTopic(name, partitions, 1)])[name])
    assert error.code() == KafkaError.INVALID_PARTITIONS
    assert partition_count(broker, name) is None


def test_minus_one_partitions_takes_the_broker_default(
    shoal_broker_factory: Any,
) -> None:
    broker: EmbeddedBroker = shoal_broker_factory(num_partitions=4)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    name = unique()
    admin.create_topics([NewTopic(name, -1, -1)])[name].result(TIMEOUT_S)
    assert partition_count(broker, name) == 4


def test_replication_factor_above_one_is_refused_as_single_node(
    broker: EmbeddedBroker, admin: AdminClient
) -> None:
    name = unique()
    error = kafka_error(admin.create_topics([NewTopic(name, 1, 3)])[name])
    assert error.code() == KafkaError.INVALID_REPLICATION_FACTOR
    assert "single-node" in error.str()
    assert partition_count(broker, name) is None


def test_replication_factor_one_and_default_are_accepted(admin: AdminClient) -> None:
    one, default = unique(), unique()
    futures = admin.create_topics([NewTopic(one, 1, 1), NewTopic(default, 1, -1)])
    assert futures[one].result(TIMEOUT_S) is None
    assert futures[default].result(TIMEOUT_S) is None


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"retention.ms": "forever"}, "retention.ms"),
        ({"retention.ms": "-2"}, "retention.ms"),
        ({"segment.bytes": "1024"}, "segment.bytes"),
        ({"cleanup.policy": "shred"}, "cleanup.policy"),
        ({"message.timestamp.type": "createtime"}, "CreateTime, LogAppendTime"),
        ({"retention.mss": "1000"}, "unknown topic config"),
        ({"remote.storage.enable": "true"}, "tiered storage"),
    ],
)
def test_invalid_configs_are_refused_with_a_message(
    broker: EmbeddedBroker, admin: AdminClient, config: dict[str, str], named: str
) -> None:
    name = unique()
    error = kafka_error(admin.create_topics([NewTopic(name, 1, 1, config=config)])[name])
    assert error.code() == KafkaError.INVALID_CONFIG
    assert named in error.str()
    assert partition_count(broker, name) is None


def test_an_existing_topic_is_not_created_again(broker: EmbeddedBroker, admin: AdminClient) -> None:
    name = unique()
    admin.create_topics([NewTopic(name, 2, 1)])[name].result(TIMEOUT_S)
    error = kafka_error(admin.create_topics([NewTopic(name, 5, 1)])[name])
    assert error.code() == KafkaError.TOPIC_ALREADY_EXISTS
    assert partition_count(broker, name) == 2


def test_a_manual_assignment_may_name_only_this_broker(
    broker: EmbeddedBroker, admin: AdminClient
) -> None:
    good, bad = unique(), unique()
    futures = admin.create_topics(
        [
            NewTopic(good, num_partitions=2, replica_assignment=[[1], [1]]),
            NewTopic(bad, num_partitions=2, replica_assignment=[[1], [2]]),
        ]
    )
    assert futures[good].result(TIMEOUT_S) is None
    assert partition_count(broker, good) == 2
    assert kafka_error(futures[bad]).code() == KafkaError.INVALID_REPLICA_ASSIGNMENT


def create_v7(broker: EmbeddedBroker, topics: list[dict[str, Any]], **options: Any) -> Any:
    request = {"topics": topics, "timeout": 5000, "validate_only": False, **options}
    with WireClient(broker.bootstrap_servers) as client:
        return client.request(ApiKey.CREATE_TOPICS, 7, request)


def new_topic(name: str, partitions: int = 1, **configs: str) -> dict[str, Any]:
    return {
        "name": name,
        "num_partitions": partitions,
        "replication_factor": -1,
        "assignments": [],
        "configs": [{"name": k.replace("_", "."), "value": v} for k, v in configs.items()],
    }


def test_v7_answers_the_created_topic_settings_and_id(broker: EmbeddedBroker) -> None:
    name = unique()
    response = create_v7(broker, [new_topic(name, 2, retention_ms="5000")])
    (result,) = response.topics
    assert result.error_code == ErrorCode.NONE
    assert (result.num_partitions, result.replication_factor) == (2, 1)
    configs = {c.name: c for c in result.configs}
    assert configs["retention.ms"].value == "5000"
    assert configs["retention.ms"].config_source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["segment.bytes"].value == "1073741824"
    assert configs["segment.bytes"].config_source == ConfigSource.DEFAULT_CONFIG.value
    # The id is the one Metadata reports from now on.
    assert result.topic_id == described_topic(broker, name).topic_id != uuid.UUID(int=0)


def test_a_name_repeated_in_one_request_creates_nothing(broker: EmbeddedBroker) -> None:
    name = unique()
    response = create_v7(broker, [new_topic(name), new_topic(name, 3)])
    assert [(t.name, t.error_code) for t in response.topics] == [(name, ErrorCode.INVALID_REQUEST)]
    assert partition_count(broker, name) is None


@pytest.mark.parametrize(
    ("partitions", "replication", "code"),
    [
        (-5, -1, ErrorCode.INVALID_PARTITIONS),
        (1, 0, ErrorCode.INVALID_REPLICATION_FACTOR),
        (1, -2, ErrorCode.INVALID_REPLICATION_FACTOR),
    ],
)
def test_negative_counts_the_client_library_refuses_are_refused_too(
    broker: EmbeddedBroker, partitions: int, replication: int, code: int
) -> None:
    name = unique()
    topic = {**new_topic(name, partitions), "replication_factor": replication}
    (result,) = create_v7(broker, [topic]).topics
    assert result.error_code == code
    assert (result.num_partitions, result.replication_factor) == (-1, -1)
    assert partition_count(broker, name) is None
