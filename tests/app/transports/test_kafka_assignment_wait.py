"""The Kafka transport's consumer waits for its rebalance listener on an assignment (a stream
processor restoring its state before any record of the new partitions), but not without end:
a stop during the restore still closes the consumer (it leaves its group), and a listener that
never finishes makes the fetch fail after ``ASSIGN_WAIT_S`` so that the App replaces the
consumer, with none of that poll's records handed out."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import confluent_kafka
import confluent_kafka.admin
import pytest
from confluent_kafka.cimpl import NewTopic

from shoal.app.transport import TopicPartition, TransportError
from shoal.app.transports import kafka_consumer
from shoal.app.transports.kafka_consumer import KafkaConsumer
from shoal.embedded import EmbeddedBroker

pytestmark = pytest.mark.integration

WAIT_S = 30.0
"""Bound on a join, a close, a listener's cancellation: a hang fails the test."""


class StuckRestore:
    """A listener whose restore never ends (until it is cancelled)."""

    def __init__(self) -> None:
        self.restoring = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def partitions_assigned(self, partitions: list[TopicPartition]) -> None:
        self.restoring.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def partitions_revoked(
        self, partitions: list[TopicPartition], *, lost: bool
    ) -> dict[TopicPartition, int]:
        return {}


def topic_with_a_record(broker: EmbeddedBroker) -> str:
    topic = f"assign-wait-{uuid.uuid4().hex[:8]}"
    config = {"bootstrap.servers": broker.bootstrap_servers}
    admin = confluent_kafka.admin.AdminClient(config)
    admin.create_topics([NewTopic(topic, 1)])[topic].result(10)
    producer = confluent_kafka.Producer(config)
    producer.produce(topic, b"state-dependent")
    assert producer.flush(10) == 0
    return topic


def group_members(broker: EmbeddedBroker, group: str) -> int:
    admin = confluent_kafka.admin.AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    return len(admin.describe_consumer_groups([group])[group].result(10).members)


async def fetch_until_failure(consumer: KafkaConsumer) -> list[object]:
    handed_out: list[object] = []
    while True:
        handed_out.extend(await consumer.fetch(10, 0.2))


def test_a_stop_during_a_restore_closes_the_consumer(shoal_broker: EmbeddedBroker) -> None:
    topic, group = topic_with_a_record(shoal_broker), "restoring"
    listener = StuckRestore()
    consumer = KafkaConsumer(
        {"bootstrap.servers": shoal_broker.bootstrap_servers}, [topic], group, rebalance=listener
    )

    async def scenario() -> None:
        await consumer.start()
        fetching = asyncio.create_task(fetch_until_failure(consumer))
        async with asyncio.timeout(WAIT_S):
            await listener.restoring.wait()
        # The App's stop: its loops are cancelled, then each consumer is closed.
        fetching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fetching
        async with asyncio.timeout(WAIT_S):
            await consumer.close()
            await listener.cancelled.wait()

    asyncio.run(scenario())
    assert group_members(shoal_broker, group) == 0  # the consumer left its group


def test_a_listener_that_never_finishes_fails_the_fetch(
    shoal_broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kafka_consumer, "ASSIGN_WAIT_S", 0.5)
    topic = topic_with_a_record(shoal_broker)
    listener = StuckRestore()
    consumer = KafkaConsumer(
        {"bootstrap.servers": shoal_broker.bootstrap_servers},
        [topic],
        "never-restored",
        rebalance=listener,
    )
    handed_out: list[object] = []

    async def scenario() -> None:
        await consumer.start()
        try:
            async with asyncio.timeout(WAIT_S):
                with pytest.raises(TransportError, match=r"did not finish the assignment"):
                    while True:
                        handed_out.extend(await consumer.fetch(10, 0.2))
                await listener.cancelled.wait()
        finally:
            async with asyncio.timeout(WAIT_S):
                await consumer.close()

    asyncio.run(scenario())
    assert handed_out == []  # the record of the unrestored partition was never handed out
