"""Helpers for the admin API tests: real clients against an embedded broker, unique names."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Final

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from shoal.broker.broker import Broker
from shoal.embedded import EmbeddedBroker
from shoal.protocol import ErrorCode
from shoal.storage import PartitionLog
from tests.server.wire import WireClient
from tests.support.broker import run_on_loop

TIMEOUT_S: Final = 15.0
"""Bounds one client call; generous for a loaded CI machine, it measures nothing."""


def admin_for(broker: EmbeddedBroker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap_servers})


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def kafka_error(future: Future[Any]) -> KafkaError:
    """The KafkaError an admin future fails with; the test fails if it succeeds."""
    with pytest.raises(KafkaException) as info:
        future.result(TIMEOUT_S)
    error = info.value.args[0]
    assert isinstance(error, KafkaError)
    return error


def inner(broker: EmbeddedBroker) -> Broker:
    core = broker.app.broker
    assert core is not None
    return core


def on_broker(broker: EmbeddedBroker, fn: Callable[[Broker], Any]) -> Any:
    """Run ``fn`` with the broker object on its own event loop thread."""
    return run_on_loop(broker, lambda: fn(inner(broker)))


def partition_log(broker: EmbeddedBroker, topic: str, partition: int) -> PartitionLog | None:
    result: PartitionLog | None = on_broker(broker, lambda b: b.partition(topic, partition))
    return result


def produce(
    broker: EmbeddedBroker, topic: str, values: list[bytes], partition: int = 0
) -> list[KafkaError | None]:
    """Produce ``values`` to one partition and return each delivery's error (None on success)."""
    errors: list[KafkaError | None] = []
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "message.timeout.ms": 5000,
            # librdkafka otherwise holds messages for a missing topic 30 s, hoping it appears.
            "topic.metadata.propagation.max.ms": 100,
        }
    )
    for value in values:
        producer.produce(
            topic, value, partition=partition, on_delivery=lambda err, _msg: errors.append(err)
        )
    assert producer.flush(TIMEOUT_S) == 0, "the producer still had messages queued"
    return errors


def consume(
    broker: EmbeddedBroker,
    topic: str,
    partition: int,
    offset: int,
    count: int,
    *,
    reset: str = "earliest",
    timeout_s: float = TIMEOUT_S,
) -> list[Any]:
    """The first ``count`` messages (or error events) read from ``offset`` of one partition,
    by a consumer without a group (``assign``, no commits)."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": unique("g"),
            "enable.auto.commit": False,
            "auto.offset.reset": reset,
        }
    )
    received: list[Any] = []
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        for _ in range(int(timeout_s * 10)):
            message = consumer.poll(0.1)
            if message is not None:
                received.append(message)
                if len(received) == count:
                    return received
    finally:
        consumer.close()
    raise AssertionError(f"only {len(received)} of {count} messages arrived: {received}")


def described_topic(broker: EmbeddedBroker, name: str) -> Any:
    """The Metadata answer for one topic, never auto-creating it.

    Not ``AdminClient.list_topics``: with a topic name it may auto-create the topic, and the
    all-topics request of librdkafka 2.16 is refused by shoal's codec (3 trailing bytes).
    """
    with WireClient(broker.bootstrap_servers) as client:
        (topic,) = client.metadata([name], auto_create=False).topics
    return topic


def partition_count(broker: EmbeddedBroker, name: str) -> int | None:
    """The topic's partition count, or None if it does not exist."""
    topic = described_topic(broker, name)
    if topic.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
        return None
    assert topic.error_code == ErrorCode.NONE, topic
    return len(topic.partitions)
