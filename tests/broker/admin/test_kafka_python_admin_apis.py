"""The new admin APIs through kafka-python's KafkaAdminClient (3.x), an independent client with
its own encoders: log dirs, leader elections, reassignments, the metadata quorum, producers,
features and config resources."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer

from shoal.embedded import EmbeddedBroker
from tests.broker.admin.support import TIMEOUT_S, on_broker, unique
from tests.server.wire import host_port
from tests.support.broker import create_topic

with warnings.catch_warnings():
    # kafka-python's schema loader uses an importlib.resources call deprecated since 3.11; the
    # warning is theirs, and this suite turns warnings into errors.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.errors import (
        InvalidReplicationAssignmentError,
        InvalidUpdateVersionError,
        LogDirNotFoundError,
        NoError,
        NoReassignmentInProgressError,
    )

pytestmark = pytest.mark.integration

ELECTION_NOT_NEEDED = 84
UNKNOWN_TOPIC_OR_PARTITION = 3


@pytest.fixture
def kp_admin(broker: EmbeddedBroker) -> Iterator[Any]:
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers, request_timeout_ms=10_000)
    yield client
    client.close()


def data_dir(broker: EmbeddedBroker) -> str:
    path: str = on_broker(broker, lambda b: os.path.abspath(b.logs.path))
    return path


def test_describe_and_alter_log_dirs(broker: EmbeddedBroker, kp_admin: Any) -> None:
    topic = unique()
    create_topic(broker, topic, 2)
    ((only_broker, log_dirs),) = [
        (b["broker"], b["log_dirs"]) for b in kp_admin.describe_log_dirs()
    ]
    (log_dir,) = log_dirs
    assert (only_broker, log_dir["error_code"], log_dir["log_dir"]) == (1, 0, data_dir(broker))
    (described,) = [t for t in log_dir["topics"] if t["name"] == topic]
    assert [(p["partition_index"], p["offset_lag"]) for p in described["partitions"]] == [
        (0, 0),
        (1, 0),
    ]
    assert 0 < log_dir["usable_bytes"] <= log_dir["total_bytes"]

    moved = kp_admin.alter_replica_log_dirs(
        {(topic, 0, 1): data_dir(broker), (topic, 1, 1): "/not/a/log/dir"}
    )
    assert {(r.topic, r.partition): error for r, error in moved.items()} == {
        (topic, 0): NoError,
        (topic, 1): LogDirNotFoundError,
    }


def test_elect_leaders(broker: EmbeddedBroker, kp_admin: Any) -> None:
    topic = unique()
    create_topic(broker, topic, 2)
    response = kp_admin.elect_leaders(0, {topic: [0, 1, 9]}, raise_errors=False)
    assert response.error_code == 0
    assert [
        (p.partition_id, p.error_code)
        for r in response.replica_election_results
        for p in r.partition_result
    ] == [(0, ELECTION_NOT_NEEDED), (1, ELECTION_NOT_NEEDED), (9, UNKNOWN_TOPIC_OR_PARTITION)]


def test_partition_reassignments(broker: EmbeddedBroker, kp_admin: Any) -> None:
    topic = unique()
    create_topic(broker, topic, 3)
    assert kp_admin.list_partition_reassignments() == {}
    assert kp_admin.list_partition_reassignments({topic: [0, 1]}) == {}
    result = kp_admin.alter_partition_reassignments(
        {
            TopicPartition(topic, 0): [1],
            TopicPartition(topic, 1): [1, 2],
            TopicPartition(topic, 2): None,
        }
    )
    assert result == {
        TopicPartition(topic, 0): None,
        TopicPartition(topic, 1): InvalidReplicationAssignmentError,
        TopicPartition(topic, 2): NoReassignmentInProgressError,
    }


def test_describe_metadata_quorum(broker: EmbeddedBroker, kp_admin: Any) -> None:
    quorum = kp_admin.describe_metadata_quorum()
    ((topic, partition),) = [
        (t["topic_name"], p) for t in quorum["topics"] for p in t["partitions"]
    ]
    assert (topic, partition["leader_id"], partition["error"]) == ("__cluster_metadata", 1, None)
    assert [v["replica_id"] for v in partition["current_voters"]] == [1]
    assert partition["observers"] == []
    host, port = host_port(broker.bootstrap_servers)
    assert quorum["nodes"] == [
        {"node_id": 1, "listeners": [{"name": "PLAINTEXT", "host": host, "port": port}]}
    ]


def test_describe_producers(broker: EmbeddedBroker, kp_admin: Any) -> None:
    topic = unique()
    create_topic(broker, topic, 2)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "enable.idempotence": True})
    for _ in range(3):
        producer.produce(topic, b"v", partition=1, timestamp=1_700_000_000_000)
    assert producer.flush(TIMEOUT_S) == 0
    described = kp_admin.describe_producers([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    assert described[TopicPartition(topic, 0)].active_producers == []
    (state,) = described[TopicPartition(topic, 1)].active_producers
    assert (state.producer_epoch, state.last_sequence, state.last_timestamp) == (
        0,
        2,
        1_700_000_000_000,
    )
    assert (state.coordinator_epoch, state.current_transaction_start_offset) == (-1, -1)


def test_features(kp_admin: Any) -> None:
    described = kp_admin.describe_features()
    assert described["metadata.version"]["finalized"] == (33, 33)
    assert kp_admin.update_features({"metadata.version": 33}) == {"metadata.version": "OK"}
    with pytest.raises(InvalidUpdateVersionError):
        kp_admin.update_features({"metadata.version": 30})
    with pytest.raises(InvalidUpdateVersionError):
        kp_admin.update_features({"transaction.version": 1})
    assert kp_admin.describe_features() == described


def test_list_config_resources(broker: EmbeddedBroker, kp_admin: Any) -> None:
    topic = unique()
    create_topic(broker, topic, 1)
    everything = kp_admin.list_config_resources()
    assert topic in everything["topic"] and everything["broker"] == ["1"]
    assert kp_admin.list_config_resources(["BROKER"]) == {"broker": ["1"]}
