"""CreatePartitions through confluent-kafka's AdminClient."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from shoal.embedded import EmbeddedBroker
from tests.broker.admin.support import (
    TIMEOUT_S,
    consume,
    kafka_error,
    partition_count,
    partition_log,
    produce,
    unique,
)

pytestmark = pytest.mark.integration


def create(admin: AdminClient, name: str, partitions: int, **config: str) -> None:
    topic = NewTopic(name, partitions, 1, config=config)
    admin.create_topics([topic])[name].result(TIMEOUT_S)


def test_new_partitions_take_records_and_serve_them(
    broker: EmbeddedBroker, admin: AdminClient
) -> None:
    name = unique()
    create(admin, name, 1, **{"retention.ms": "123456"})
    assert admin.create_partitions([NewPartitions(name, 3)])[name].result(TIMEOUT_S) is None
    assert partition_count(broker, name) == 3
    # A new partition gets the topic's configs.
    plog = partition_log(broker, name, 2)
    assert plog is not None and plog.config.retention_ms == 123456

    assert produce(broker, name, [b"x", b"y"], partition=2) == [None, None]
    messages = consume(broker, name, 2, 0, 2)
    assert [(m.partition(), m.offset(), m.value()) for m in messages] == [
        (2, 0, b"x"),
        (2, 1, b"y"),
    ]


@pytest.mark.parametrize("count", [2, 1])
def test_the_same_or_a_smaller_count_is_refused(
    broker: EmbeddedBroker, admin: AdminClient, count: int
) -> None:
    name = unique()
    create(admin, name, 2)
    error = kafka_error(admin.create_partitions([NewPartitions(name, count)])[name])
    assert error.code() == KafkaError.INVALID_PARTITIONS
    assert partition_count(broker, name) == 2


def test_validate_only_changes_nothing(broker: EmbeddedBroker, admin: AdminClient) -> None:
    name = unique()
    create(admin, name, 1)
    future = admin.create_partitions([NewPartitions(name, 4)], validate_only=True)[name]
    assert future.result(TIMEOUT_S) is None
    assert partition_count(broker, name) == 1
    assert partition_log(broker, name, 1) is None


def test_unknown_topic_and_foreign_assignment_are_refused(
    broker: EmbeddedBroker, admin: AdminClient
) -> None:
    name, missing = unique(), unique()
    create(admin, name, 1)
    futures = admin.create_partitions(
        [NewPartitions(missing, 2), NewPartitions(name, 3, replica_assignment=[[1], [7]])]
    )
    assert kafka_error(futures[missing]).code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert kafka_error(futures[name]).code() == KafkaError.INVALID_REPLICA_ASSIGNMENT
    assert partition_count(broker, name) == 1
