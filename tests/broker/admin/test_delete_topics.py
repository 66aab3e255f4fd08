"""DeleteTopics through confluent-kafka (v4, by name) and the raw protocol (v6, by topic id)."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, NewTopic

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey, ErrorCode
from tests.broker.admin.support import (
    TIMEOUT_S,
    admin_for,
    consume,
    described_topic,
    kafka_error,
    partition_count,
    produce,
    unique,
)
from tests.server.wire import WireClient

pytestmark = pytest.mark.integration


def create(admin: AdminClient, name: str, partitions: int = 1) -> None:
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(TIMEOUT_S)


def partition_dirs(broker: EmbeddedBroker, name: str) -> list[str]:
    data_dir = broker.app.settings.data_dir
    return sorted(d for d in os.listdir(data_dir) if d.rpartition("-")[0] == name)


def test_deleted_topic_and_its_files_are_gone(broker: EmbeddedBroker, admin: AdminClient) -> None:
    name = unique()
    create(admin, name, 2)
    assert produce(broker, name, [b"a", b"b"]) == [None, None]
    assert partition_dirs(broker, name) == [f"{name}-0", f"{name}-1"]

    assert admin.delete_topics([name])[name].result(TIMEOUT_S) is None
    assert partition_count(broker, name) is None
    assert partition_dirs(broker, name) == []


def test_produce_after_delete_is_unknown_topic_without_auto_create(
    shoal_broker_factory: Any,
) -> None:
    broker: EmbeddedBroker = shoal_broker_factory(auto_create_topics=False)
    admin = admin_for(broker)
    name = unique()
    create(admin, name)
    assert produce(broker, name, [b"before"]) == [None]
    admin.delete_topics([name])[name].result(TIMEOUT_S)

    (error,) = produce(broker, name, [b"after"])
    assert error is not None
    assert error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC)
    assert partition_count(broker, name) is None


def test_produce_after_delete_auto_creates_a_new_empty_topic(
    broker: EmbeddedBroker, admin: AdminClient
) -> None:
    name = unique()
    create(admin, name)
    old_id = described_topic(broker, name).topic_id
    assert produce(broker, name, [b"old-1", b"old-2"]) == [None, None]
    admin.delete_topics([name])[name].result(TIMEOUT_S)

    assert produce(broker, name, [b"new"]) == [None]
    topic = described_topic(broker, name)
    assert topic.error_code == ErrorCode.NONE and topic.topic_id != old_id
    (message,) = consume(broker, name, 0, 0, 1)
    assert (message.offset(), message.value()) == (0, b"new")


def test_deleting_an_unknown_topic_fails_alone(broker: EmbeddedBroker, admin: AdminClient) -> None:
    kept, missing = unique(), unique()
    create(admin, kept)
    futures = admin.delete_topics([missing, kept])
    assert kafka_error(futures[missing]).code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert futures[kept].result(TIMEOUT_S) is None


def delete_v6(broker: EmbeddedBroker, topics: list[dict[str, Any]]) -> list[Any]:
    with WireClient(broker.bootstrap_servers) as client:
        response = client.request(ApiKey.DELETE_TOPICS, 6, {"topics": topics, "timeout": 5000})
    return list(response.responses)


def test_v6_deletes_by_topic_id(broker: EmbeddedBroker, admin: AdminClient) -> None:
    name = unique()
    create(admin, name)
    topic_id = described_topic(broker, name).topic_id

    (result,) = delete_v6(broker, [{"name": None, "topic_id": topic_id}])
    assert (result.error_code, result.name, result.topic_id) == (ErrorCode.NONE, name, topic_id)
    assert partition_count(broker, name) is None


def test_v6_refuses_unknown_ids_and_ambiguous_entries(
    broker: EmbeddedBroker, admin: AdminClient
) -> None:
    name = unique()
    create(admin, name)
    topic_id = described_topic(broker, name).topic_id
    unknown, both, repeated_a, repeated_b = delete_v6(
        broker,
        [
            {"name": None, "topic_id": uuid.uuid4()},
            {"name": name, "topic_id": topic_id},
            {"name": "again", "topic_id": None},
            {"name": "again", "topic_id": None},
        ],
    )
    assert unknown.error_code == ErrorCode.UNKNOWN_TOPIC_ID
    assert both.error_code == ErrorCode.INVALID_REQUEST
    assert repeated_a.error_code == repeated_b.error_code == ErrorCode.INVALID_REQUEST
    assert partition_count(broker, name) == 1
