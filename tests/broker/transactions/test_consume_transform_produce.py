"""A consume-transform-produce loop with confluent-kafka (send_offsets_to_transaction): the
consumed offsets commit with the outputs, stay pending while the transaction is open, and are
dropped with an aborted transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey, ErrorCode
from tests.broker.transactions.clients import TIMEOUT_S, read_all
from tests.server.wire import WireClient

pytestmark = pytest.mark.integration

INPUTS: Final = 6


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    path = Path(tmp_path_factory.mktemp("ctp")) / "data"
    with EmbeddedBroker(str(path), num_partitions=1) as started:
        yield started


def _offset_fetch_stable(broker: EmbeddedBroker, group: str, topic: str) -> tuple[int, int]:
    """(error code, offset) of partition 0 in an OffsetFetch v7 with require_stable."""
    with WireClient(broker.bootstrap_servers) as client:
        answer = client.request(
            ApiKey.OFFSET_FETCH,
            7,
            {
                "group_id": group,
                "topics": [{"name": topic, "partition_indexes": [0]}],
                "require_stable": True,
            },
        )
    partition = answer.topics[0].partitions[0]
    return int(partition.error_code), int(partition.committed_offset)


def _committed(broker: EmbeddedBroker, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": group})
    try:
        (tp,) = consumer.committed([TopicPartition(topic, 0)], TIMEOUT_S)
    finally:
        consumer.close()
    return int(tp.offset)


def test_offsets_commit_with_the_outputs_and_abort_with_them(broker: EmbeddedBroker) -> None:
    source, sink = f"in-{uuid.uuid4().hex[:8]}", f"out-{uuid.uuid4().hex[:8]}"
    group = f"etl-{uuid.uuid4().hex[:8]}"
    plain = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for i in range(INPUTS * 2):
        plain.produce(source, value=f"{i}".encode(), partition=0)
    plain.flush(TIMEOUT_S)

    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap_servers, "transactional.id": f"etl-{group}"}
    )
    producer.init_transactions(TIMEOUT_S)
    consumer.assign([TopicPartition(source, 0, 0)])
    try:
        for round_ in ("commit", "abort"):
            producer.begin_transaction()
            taken = 0
            while taken < INPUTS:
                message = consumer.poll(TIMEOUT_S)
                assert message is not None and message.error() is None
                value = message.value()
                assert value is not None
                producer.produce(sink, value=b"x" + value, partition=0)
                taken += 1
            producer.send_offsets_to_transaction(
                consumer.position(consumer.assignment()),
                consumer.consumer_group_metadata(),
                TIMEOUT_S,
            )
            producer.flush(TIMEOUT_S)
            # Pending: a require_stable fetch is told to wait, a plain one sees the last commit.
            assert _offset_fetch_stable(broker, group, source) == (
                ErrorCode.UNSTABLE_OFFSET_COMMIT,
                -1,
            )
            if round_ == "commit":
                producer.commit_transaction(TIMEOUT_S)
                assert _offset_fetch_stable(broker, group, source) == (ErrorCode.NONE, INPUTS)
            else:
                producer.abort_transaction(TIMEOUT_S)
                assert _offset_fetch_stable(broker, group, source) == (ErrorCode.NONE, INPUTS)
    finally:
        consumer.close()
    assert _committed(broker, group, source) == INPUTS
    outputs = read_all(broker, sink, "read_committed", INPUTS, partitions=1)
    assert outputs == [f"x{i}".encode() for i in range(INPUTS)]
