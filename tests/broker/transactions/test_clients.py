"""Real transactional producers (confluent-kafka) against one embedded broker: commit, abort,
read_committed and read_uncommitted consumers, the last stable offset, and zombie fencing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from shoal.embedded import EmbeddedBroker

pytestmark = pytest.mark.integration

TIMEOUT_S: Final = 30.0
"""Upper bound of each client call; they return as soon as done."""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    path = Path(tmp_path_factory.mktemp("txn")) / "data"
    with EmbeddedBroker(str(path), num_partitions=2) as started:
        yield started


def _producer(broker: EmbeddedBroker, txn_id: str, **extra: Any) -> Producer:
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap_servers, "transactional.id": txn_id, **extra}
    )
    producer.init_transactions(TIMEOUT_S)
    return producer


def _read(broker: EmbeddedBroker, topic: str, isolation: str, expected_end: int) -> list[bytes]:
    """Every value a consumer with ``isolation`` gets from ``topic`` (2 partitions) before it
    reaches the end it would stop at (``expected_end`` records polled or the partition ends)."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": f"g-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    values: list[bytes] = []
    eofs: set[int] = set()
    try:
        for _ in range(200):
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                eofs.add(message.partition())
                if len(eofs) == 2 and len(values) >= expected_end:
                    break
                continue
            value = message.value()
            assert value is not None
            values.append(value)
    finally:
        consumer.close()
    return values


def _latest(broker: EmbeddedBroker, topic: str, isolation: str) -> int:
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": f"g-{uuid.uuid4()}",
            "isolation.level": isolation,
        }
    )
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), TIMEOUT_S)
    finally:
        consumer.close()
    return int(high)


def _topic(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def test_committed_records_are_read_and_aborted_ones_are_not(broker: EmbeddedBroker) -> None:
    topic = _topic("commit-abort")
    producer = _producer(broker, _topic("tx"))
    producer.begin_transaction()
    for i in range(4):
        producer.produce(topic, value=f"committed-{i}".encode(), partition=i % 2)
    producer.commit_transaction(TIMEOUT_S)
    producer.begin_transaction()
    for i in range(4):
        producer.produce(topic, value=f"aborted-{i}".encode(), partition=i % 2)
    producer.flush(TIMEOUT_S)
    producer.abort_transaction(TIMEOUT_S)
    producer.begin_transaction()
    producer.produce(topic, value=b"committed-4", partition=0)
    producer.commit_transaction(TIMEOUT_S)

    committed = _read(broker, topic, "read_committed", 5)
    assert sorted(committed) == [f"committed-{i}".encode() for i in range(5)]
    everything = _read(broker, topic, "read_uncommitted", 9)
    assert sorted(everything) == sorted(
        [f"committed-{i}".encode() for i in range(5)] + [f"aborted-{i}".encode() for i in range(4)]
    )


def test_read_committed_stops_at_an_open_transaction(broker: EmbeddedBroker) -> None:
    topic = _topic("open")
    producer = _producer(broker, _topic("tx"))
    producer.begin_transaction()
    producer.produce(topic, value=b"first", partition=0)
    producer.commit_transaction(TIMEOUT_S)
    producer.begin_transaction()
    producer.produce(topic, value=b"pending", partition=0)
    producer.flush(TIMEOUT_S)

    # Offsets: 0 first, 1 its COMMIT marker, 2 pending (open). ListOffsets "latest" is the
    # last stable offset 2 for read_committed, the high watermark 3 otherwise.
    assert _latest(broker, topic, "read_committed") == 2
    assert _latest(broker, topic, "read_uncommitted") == 3
    assert _read(broker, topic, "read_committed", 1) == [b"first"]
    assert _read(broker, topic, "read_uncommitted", 2) == [b"first", b"pending"]

    producer.commit_transaction(TIMEOUT_S)
    assert _read(broker, topic, "read_committed", 2) == [b"first", b"pending"]
    assert _latest(broker, topic, "read_committed") == 4


def test_a_zombie_is_fenced_and_writes_nothing_visible(broker: EmbeddedBroker) -> None:
    topic = _topic("zombie")
    txn_id = _topic("tx")
    zombie = _producer(broker, txn_id)
    zombie.begin_transaction()
    zombie.produce(topic, value=b"zombie-1", partition=0)
    zombie.flush(TIMEOUT_S)

    # A new instance with the same transactional id aborts the zombie's open transaction.
    successor = _producer(broker, txn_id)
    successor.begin_transaction()
    successor.produce(topic, value=b"successor", partition=0)
    successor.commit_transaction(TIMEOUT_S)

    zombie.produce(topic, value=b"zombie-2", partition=1)
    with pytest.raises(KafkaException) as info:
        zombie.commit_transaction(TIMEOUT_S)
    error = info.value.args[0]
    assert error.fatal() or error.txn_requires_abort(), error
    assert _read(broker, topic, "read_committed", 1) == [b"successor"]
