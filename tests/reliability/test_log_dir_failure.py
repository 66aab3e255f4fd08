"""When every log directory has failed: what shoal does instead of halting like Kafka.

Kafka's LogManager halts the broker (exit 1, "Shutdown broker because all log dirs in ... have
failed") when its last live log directory fails. shoal has one log directory, so any failure is
that case; shoal stays up read-only instead (docs/architecture.md, "When the log directory
fails", says why). This test pins that contract: after the failure, writes are refused
(Produce, CreateTopics, DeleteTopics and AlterConfigs with KAFKA_STORAGE_ERROR, an offset
commit with a retriable coordinator error) and change nothing, records already stored are
still served, /readyz answers 503 naming the failure (so a probe or an alert sees it) while
/livez stays 200, and the metric ``shoal_log_directory_failed`` is 1.

The failure is set on the directory's health object, as the storage layer does when an fsync
or write fails; the path from a real EIO to it is covered by test_fsync_errors.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Final

import httpx
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from shoal.embedded import EmbeddedBroker

pytestmark = pytest.mark.integration

TIMEOUT_S: Final = 30.0
TOPIC: Final = "failing-dir"
STORED: Final = [b"one", b"two", b"three"]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(str(tmp_path / "data"), num_partitions=1) as started:
        yield started


def _produce(broker: EmbeddedBroker, value: bytes) -> KafkaError | None:
    outcome: list[KafkaError | None] = []
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap_servers, "acks": "all", "retries": 0}
    )
    producer.produce(TOPIC, value=value, on_delivery=lambda error, _m: outcome.append(error))
    assert producer.flush(TIMEOUT_S) == 0
    return outcome[0]


def _read(broker: EmbeddedBroker) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": f"reader-{uuid.uuid4()}",
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    values: list[bytes] = []
    try:
        while True:
            message = consumer.poll(TIMEOUT_S)
            assert message is not None, f"no end of partition after {values}"
            if message.error() is not None:
                assert message.error().code() == KafkaError._PARTITION_EOF, message.error()
                return values
            values.append(message.value())
    finally:
        consumer.close()


def _topic_changes_are_refused(admin: AdminClient) -> None:
    """Changes that write only topics.json are refused too (they once went through)."""
    retention = ConfigEntry("retention.ms", "5000", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, TOPIC, incremental_configs=[retention])
    (altering,) = admin.incremental_alter_configs([resource]).values()
    with pytest.raises(KafkaException) as altered:
        altering.result(TIMEOUT_S)
    assert altered.value.args[0].code() == KafkaError.KAFKA_STORAGE_ERROR
    (deleting,) = admin.delete_topics([TOPIC]).values()
    with pytest.raises(KafkaException) as deleted:
        deleting.result(TIMEOUT_S)
    assert deleted.value.args[0].code() == KafkaError.KAFKA_STORAGE_ERROR
    assert TOPIC in admin.list_topics(timeout=TIMEOUT_S).topics
    (described,) = admin.describe_configs([ConfigResource(ResourceType.TOPIC, TOPIC)]).values()
    assert described.result(TIMEOUT_S)["retention.ms"].value != "5000"


def _group_consumer(broker: EmbeddedBroker) -> Consumer:
    return Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "failing"})


def _commit_before_the_failure(broker: EmbeddedBroker) -> None:
    consumer = _group_consumer(broker)
    try:
        consumer.commit(offsets=[TopicPartition(TOPIC, 0, 1)], asynchronous=False)
    finally:
        consumer.close()


def _commit_is_refused(broker: EmbeddedBroker) -> None:
    consumer = _group_consumer(broker)
    try:
        with pytest.raises(KafkaException) as refused:
            consumer.commit(offsets=[TopicPartition(TOPIC, 0, 2)], asynchronous=False)
        # COORDINATOR_NOT_AVAILABLE from the broker; librdkafka may report its own
        # _WAIT_COORD when its retries of that answer outlast the commit.
        assert refused.value.args[0].code() in (
            KafkaError.COORDINATOR_NOT_AVAILABLE,
            KafkaError._WAIT_COORD,
        ), refused.value
        (kept,) = consumer.committed([TopicPartition(TOPIC, 0)], timeout=TIMEOUT_S)
        assert kept.offset == 1, "a refused commit was stored"
    finally:
        consumer.close()


def _fail_the_directory(broker: EmbeddedBroker) -> None:
    """On the broker's event loop, which owns storage, as an fsync failure would."""
    done: Future[None] = Future()
    logs = broker.app.broker
    assert logs is not None
    loop = broker._loop
    assert loop is not None

    def fail() -> None:
        logs.logs.health.fail("EIO on fsync (injected by the test)")
        done.set_result(None)

    loop.call_soon_threadsafe(fail)
    done.result(TIMEOUT_S)


def test_a_failed_log_directory_leaves_the_broker_up_read_only_and_not_ready(
    broker: EmbeddedBroker,
) -> None:
    for value in STORED:
        assert _produce(broker, value) is None
    _commit_before_the_failure(broker)
    assert httpx.get(f"{broker.http_url}/readyz", timeout=TIMEOUT_S).status_code == 200

    _fail_the_directory(broker)

    refused = _produce(broker, b"after the failure")
    assert refused is not None and refused.code() == KafkaError.KAFKA_STORAGE_ERROR, refused
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    (creation,) = admin.create_topics([NewTopic("after-failure", 1, 1)]).values()
    with pytest.raises(KafkaException) as created:
        creation.result(TIMEOUT_S)
    assert created.value.args[0].code() == KafkaError.KAFKA_STORAGE_ERROR
    assert "after-failure" not in admin.list_topics(timeout=TIMEOUT_S).topics
    _topic_changes_are_refused(admin)
    _commit_is_refused(broker)
    assert _read(broker) == STORED
    ready = httpx.get(f"{broker.http_url}/readyz", timeout=TIMEOUT_S)
    assert ready.status_code == 503
    assert "log directory failed" in ready.json()["detail"]
    assert "EIO on fsync" in ready.json()["detail"]
    assert httpx.get(f"{broker.http_url}/livez", timeout=TIMEOUT_S).status_code == 200
    metrics = httpx.get(f"{broker.http_url}/metrics", timeout=TIMEOUT_S).text
    assert "shoal_log_directory_failed 1" in metrics
