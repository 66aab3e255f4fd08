"""Client helpers of the transaction tests: transactional producers and consumers that read
a topic to its end under an isolation level."""

from __future__ import annotations

import time
import uuid
from typing import Any, Final, Protocol

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey
from tests.server.wire import WireClient

TIMEOUT_S: Final = 30.0
"""Upper bound of each client call; they return as soon as done."""


def transactional_producer(broker: EmbeddedBroker, txn_id: str, **extra: Any) -> Producer:
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap_servers, "transactional.id": txn_id, **extra}
    )
    producer.init_transactions(TIMEOUT_S)
    return producer


class HasBootstrap(Protocol):
    @property
    def bootstrap_servers(self) -> str: ...


def read_all(
    broker: HasBootstrap, topic: str, isolation: str, expected_end: int, *, partitions: int = 2
) -> list[bytes]:
    """Every value a consumer with ``isolation`` gets from ``topic`` before it reaches the end
    it would stop at (``expected_end`` records polled and every partition at its end)."""
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
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    values: list[bytes] = []
    eofs: set[int] = set()
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                eofs.add(message.partition())
                if len(eofs) == partitions and len(values) >= expected_end:
                    break
                continue
            value = message.value()
            assert value is not None
            values.append(value)
    finally:
        consumer.close()
    return values


def latest_offset(broker: EmbeddedBroker, topic: str, isolation: str) -> int:
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


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def abort_marker(
    client: WireClient, producer_id: int, epoch: int, coordinator_epoch: int = 0
) -> int:
    """An operator's ABORT marker for partition 0 of topic ``r`` (WriteTxnMarkers v1, as
    ``kafka-transactions abort`` sends it); returns the partition's error code."""
    answer = client.request(
        ApiKey.WRITE_TXN_MARKERS,
        1,
        {
            "markers": [
                {
                    "producer_id": producer_id,
                    "producer_epoch": epoch,
                    "transaction_result": False,
                    "topics": [{"name": "r", "partition_indexes": [0]}],
                    "coordinator_epoch": coordinator_epoch,
                }
            ]
        },
    )
    return int(answer.markers[0].topics[0].partitions[0].error_code)
