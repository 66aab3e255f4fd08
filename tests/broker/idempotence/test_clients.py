"""Real idempotent clients against an embedded broker that loses produce responses.

Every Nth Produce request is appended and then its connection is cut before the answer goes
out (the handler raises, the server aborts the connection), as a crash or network failure after
the write would. The client cannot tell whether the batch was written and retries it with the
same sequence numbers: only the broker's duplicate detection keeps the topic free of copies.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from confluent_kafka import Producer

from shoal.broker.handlers import HANDLERS
from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey
from tests.broker.idempotence.checks import (
    assert_exactly_once_in_order,
    delivery_recorder,
    log_ends,
    read_partitions,
)

pytestmark = pytest.mark.integration

PARTITIONS: Final = 4
LOSE_EVERY: Final = 23
"""Every 23rd Produce request loses its response: dozens of retries in a run, and a prime so
that the losses do not line up with the partitions' rotation."""
FLUSH_TIMEOUT_S: Final = 120.0


class LostResponses:
    """Wraps the Produce handler: every ``every``-th request is handled, then its answer lost."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.lost = 0
        self._count = itertools.count(1)
        self._real = HANDLERS[ApiKey.PRODUCE]

    async def __call__(self, broker: Any, ctx: Any, request: Any) -> Any:
        response = await self._real(broker, ctx, request)
        if next(self._count) % self.every == 0:
            self.lost += 1
            raise ConnectionAbortedError("test: the produce response is lost after the append")
        return response


@pytest.fixture
def lossy_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    lossy = LostResponses(LOSE_EVERY)
    monkeypatch.setitem(HANDLERS, ApiKey.PRODUCE, lossy)
    with EmbeddedBroker(str(tmp_path / "data"), num_partitions=PARTITIONS) as broker:
        yield broker, lossy


def test_confluent_100k_records_exactly_once_in_order(lossy_broker: tuple[Any, Any]) -> None:
    broker, lossy = lossy_broker
    topic, records = "idempotent-confluent", 100_000
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "batch.num.messages": 2000,
            "retry.backoff.ms": 20,
            "message.timeout.ms": int(FLUSH_TIMEOUT_S * 1000),
        }
    )
    sent: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    acked: dict[int, dict[bytes, int]] = {p: {} for p in range(PARTITIONS)}
    failed: list[Any] = []
    on_delivery = delivery_recorder(acked, failed)
    for i in range(records):
        partition = i % PARTITIONS
        value = b"%d:%07d" % (partition, i)
        sent[partition].append(value)
        while True:
            try:
                producer.produce(topic, value, partition=partition, on_delivery=on_delivery)
                break
            except BufferError:  # the client's queue is full: let it drain
                producer.poll(0.05)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(FLUSH_TIMEOUT_S) == 0
    assert failed == []
    assert lossy.lost > 0  # the run did exercise retries of appended batches
    ends = log_ends(broker.bootstrap_servers, topic, range(PARTITIONS))
    assert ends == {p: records // PARTITIONS for p in range(PARTITIONS)}
    stored = read_partitions(broker.bootstrap_servers, topic, ends)
    assert_exactly_once_in_order(stored, sent, acked, all_acked=True)


# kafka-python loads its schemas with importlib.resources.read_text, deprecated since 3.11; the
# warning is theirs, and this suite turns warnings into errors.
@pytest.mark.filterwarnings(r"ignore:.* is deprecated. Use files\(\) instead:DeprecationWarning")
def test_kafka_python_idempotent_producer(lossy_broker: tuple[Any, Any]) -> None:
    from kafka import KafkaProducer  # type: ignore[import-untyped]

    broker, lossy = lossy_broker
    lossy.every = 7  # kafka-python sends fewer, larger requests here
    topic, records = "idempotent-kafka-python", 3000
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        batch_size=1024,
        retries=1_000,
        retry_backoff_ms=20,
    )
    sent: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    futures = []
    for i in range(records):
        partition = i % PARTITIONS
        value = b"%d:%07d" % (partition, i)
        sent[partition].append(value)
        futures.append((value, producer.send(topic, value, partition=partition)))
    producer.flush(FLUSH_TIMEOUT_S)
    acked: dict[int, dict[bytes, int]] = {p: {} for p in range(PARTITIONS)}
    for value, future in futures:
        metadata = future.get(timeout=FLUSH_TIMEOUT_S)
        acked[metadata.partition][value] = metadata.offset
    producer.close()
    assert lossy.lost > 0
    ends = log_ends(broker.bootstrap_servers, topic, range(PARTITIONS))
    assert ends == {p: records // PARTITIONS for p in range(PARTITIONS)}
    stored = read_partitions(broker.bootstrap_servers, topic, ends)
    assert_exactly_once_in_order(stored, sent, acked, all_acked=True)
