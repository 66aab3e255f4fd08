"""Real transactional producers (confluent-kafka) against one embedded broker: commit, abort,
read_committed and read_uncommitted consumers, the last stable offset, and zombie fencing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from shoal.embedded import EmbeddedBroker
from tests.broker.transactions.clients import (
    TIMEOUT_S,
    latest_offset,
    read_all,
    transactional_producer,
    unique,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    path = Path(tmp_path_factory.mktemp("txn")) / "data"
    with EmbeddedBroker(str(path), num_partitions=2) as started:
        yield started


def test_committed_records_are_read_and_aborted_ones_are_not(broker: EmbeddedBroker) -> None:
    topic = unique("commit-abort")
    producer = transactional_producer(broker, unique("tx"))
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

    committed = read_all(broker, topic, "read_committed", 5)
    assert sorted(committed) == [f"committed-{i}".encode() for i in range(5)]
    everything = read_all(broker, topic, "read_uncommitted", 9)
    assert sorted(everything) == sorted(
        [f"committed-{i}".encode() for i in range(5)] + [f"aborted-{i}".encode() for i in range(4)]
    )


def test_read_committed_stops_at_an_open_transaction(broker: EmbeddedBroker) -> None:
    topic = unique("open")
    producer = transactional_producer(broker, unique("tx"))
    producer.begin_transaction()
    producer.produce(topic, value=b"first", partition=0)
    producer.commit_transaction(TIMEOUT_S)
    producer.begin_transaction()
    producer.produce(topic, value=b"pending", partition=0)
    producer.flush(TIMEOUT_S)

    # Offsets: 0 first, 1 its COMMIT marker, 2 pending (open). ListOffsets "latest" is the
    # last stable offset 2 for read_committed, the high watermark 3 otherwise.
    assert latest_offset(broker, topic, "read_committed") == 2
    assert latest_offset(broker, topic, "read_uncommitted") == 3
    assert read_all(broker, topic, "read_committed", 1) == [b"first"]
    assert read_all(broker, topic, "read_uncommitted", 2) == [b"first", b"pending"]

    producer.commit_transaction(TIMEOUT_S)
    assert read_all(broker, topic, "read_committed", 2) == [b"first", b"pending"]
    assert latest_offset(broker, topic, "read_committed") == 4


def test_a_zombie_is_fenced_and_writes_nothing_visible(broker: EmbeddedBroker) -> None:
    topic = unique("zombie")
    txn_id = unique("tx")
    zombie = transactional_producer(broker, txn_id)
    zombie.begin_transaction()
    zombie.produce(topic, value=b"zombie-1", partition=0)
    zombie.flush(TIMEOUT_S)

    # A new instance with the same transactional id aborts the zombie's open transaction.
    successor = transactional_producer(broker, txn_id)
    successor.begin_transaction()
    successor.produce(topic, value=b"successor", partition=0)
    successor.commit_transaction(TIMEOUT_S)

    zombie.produce(topic, value=b"zombie-2", partition=1)
    with pytest.raises(KafkaException) as info:
        zombie.commit_transaction(TIMEOUT_S)
    error = info.value.args[0]
    assert error.fatal() or error.txn_requires_abort(), error
    assert read_all(broker, topic, "read_committed", 1) == [b"successor"]
