"""Consumer groups with confluent-kafka (librdkafka) against a real shoal broker."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, ConsumerGroupState, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from shoal.embedded import EmbeddedBroker
from tests.coordinator.groups.clients import ChildConsumer, wait_until
from tests.support.broker import BrokerProcess, create_topic, run_on_loop

pytestmark = pytest.mark.integration

SESSION_TIMEOUT_MS = 6000
TAKEOVER_BOUND_S = SESSION_TIMEOUT_MS / 1000 + 5
"""The issue's bound: survivors own every partition within session.timeout.ms + 5 s."""
PATIENCE_S = 60.0
"""Generous bound for things with no stated deadline (first joins, consuming everything)."""
_names = itertools.count()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    directory = tmp_path_factory.mktemp("groups")
    with EmbeddedBroker(str(directory), group_initial_rebalance_delay_ms=300) as embedded:
        yield embedded


def _consumer(broker: EmbeddedBroker, group: str, **extra: Any) -> Consumer:
    config = {
        "bootstrap.servers": broker.bootstrap_servers,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": 500,
        **extra,
    }
    return Consumer(config)


def _produce(bootstrap: str, topic: str, values: list[str], partitions: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i, value in enumerate(values):
        producer.produce(topic, value.encode(), partition=i % partitions)
    assert producer.flush(30) == 0


class Pollers:
    """In-process consumers polled round-robin; each commits after processing a record."""

    def __init__(self, consumers: list[Consumer]) -> None:
        self.consumers = consumers
        self.records: list[str] = []

    def step(self) -> None:
        for consumer in self.consumers:
            message = consumer.poll(0.05)
            if message is None or message.error():
                continue
            self.records.append(message.value().decode())
            consumer.commit(message=message, asynchronous=False)

    def assignments(self) -> list[list[int]]:
        return [sorted(tp.partition for tp in c.assignment()) for c in self.consumers]

    def close(self) -> None:
        for consumer in self.consumers:
            consumer.close()


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_three_consumers_split_partitions_and_survive_a_sigkill(
    broker: EmbeddedBroker, strategy: str
) -> None:
    topic, group = f"split-{strategy}", f"split-{strategy}"
    create_topic(broker, topic, 6)
    first = [f"{topic}-{i}" for i in range(300)]
    _produce(broker.bootstrap_servers, topic, first, 6)
    options = {
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": 500,
        "partition.assignment.strategy": strategy,
    }
    child = ChildConsumer(broker.bootstrap_servers, group, topic, options)
    pollers = Pollers(
        [_consumer(broker, group, **{"partition.assignment.strategy": strategy}) for _ in range(2)]
    )
    try:
        for consumer in pollers.consumers:
            consumer.subscribe([topic])

        def split_evenly() -> bool:
            owned = [*pollers.assignments(), child.snapshot()[0]]
            return sorted(map(len, owned)) == [2, 2, 2] and sorted(itertools.chain(*owned)) == list(
                range(6)
            )

        assert wait_until(split_evenly, PATIENCE_S, pollers.step), (
            f"never split 2/2/2: {pollers.assignments()} and child {child.snapshot()[0]}"
        )

        child.kill()  # SIGKILL: no LeaveGroup, the broker must notice the silence itself
        killed_at = time.monotonic()

        def survivors_own_all() -> bool:
            return sorted(itertools.chain(*pollers.assignments())) == list(range(6))

        assert wait_until(survivors_own_all, TAKEOVER_BOUND_S, pollers.step), (
            f"survivors own {pollers.assignments()} {time.monotonic() - killed_at:.1f}s after kill"
        )
        assert time.monotonic() - killed_at <= TAKEOVER_BOUND_S

        second = [f"{topic}-{i}" for i in range(300, 600)]
        _produce(broker.bootstrap_servers, topic, second, 6)
        expected = set(first + second)

        def everything_consumed() -> bool:
            return expected <= set(pollers.records) | set(child.snapshot()[1])

        assert wait_until(everything_consumed, PATIENCE_S, pollers.step), (
            f"lost {len(expected - set(pollers.records) - set(child.snapshot()[1]))} records"
        )
    finally:
        child.kill()
        pollers.close()


def _generation(broker: EmbeddedBroker, group: str) -> int:
    def read() -> int:
        inner = broker.app.broker
        assert inner is not None
        described = inner.groups.describe(group)
        assert described is not None
        return described.generation_id

    return run_on_loop(broker, read)


def test_static_member_restart_causes_no_rebalance(broker: EmbeddedBroker) -> None:
    topic = group = "static-restart"
    create_topic(broker, topic, 6)
    a = _consumer(broker, group, **{"group.instance.id": "a", "session.timeout.ms": 30_000})
    b = _consumer(broker, group, **{"group.instance.id": "b", "session.timeout.ms": 30_000})
    pollers = Pollers([a, b])
    try:
        for consumer in (a, b):
            consumer.subscribe([topic])
        assert wait_until(
            lambda: sorted(map(len, pollers.assignments())) == [3, 3], PATIENCE_S, pollers.step
        )
        generation = _generation(broker, group)
        b_owned = pollers.assignments()[1]
        a.close()  # a static member's close sends no LeaveGroup (KIP-345)
        a2 = _consumer(broker, group, **{"group.instance.id": "a", "session.timeout.ms": 30_000})
        pollers.consumers[0] = a2
        a2.subscribe([topic])
        b_seen: list[list[int]] = []

        def a2_back() -> bool:
            b_seen.append(pollers.assignments()[1])
            return len(pollers.assignments()[0]) == 3

        assert wait_until(a2_back, PATIENCE_S, pollers.step)
        assert _generation(broker, group) == generation
        assert all(seen == b_owned for seen in b_seen)  # b never lost a partition
    finally:
        pollers.close()


def test_admin_client_sees_groups_members_and_offsets(broker: EmbeddedBroker) -> None:
    topic = group = "admin-view"
    create_topic(broker, topic, 4)
    _produce(broker.bootstrap_servers, topic, [str(i) for i in range(40)], 4)
    pollers = Pollers([_consumer(broker, group, **{"client.id": f"client-{i}"}) for i in range(2)])
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    try:
        for consumer in pollers.consumers:
            consumer.subscribe([topic])
        assert wait_until(lambda: len(pollers.records) >= 40, PATIENCE_S, pollers.step)
        assert wait_until(
            lambda: sorted(map(len, pollers.assignments())) == [2, 2], PATIENCE_S, pollers.step
        )

        listed = admin.list_consumer_groups(states={ConsumerGroupState.STABLE}).result(30)
        assert group in {g.group_id for g in listed.valid}
        empty_only = admin.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result(30)
        assert group not in {g.group_id for g in empty_only.valid}

        described = admin.describe_consumer_groups([group])[group].result(30)
        assert described.state == ConsumerGroupState.STABLE
        assert described.partition_assignor == "range"
        assert sorted(m.client_id for m in described.members) == ["client-0", "client-1"]
        owned = sorted(
            tp.partition for m in described.members for tp in m.assignment.topic_partitions
        )
        assert owned == [0, 1, 2, 3]

        request = [TopicPartition(topic, p) for p in range(4)]
        from confluent_kafka import ConsumerGroupTopicPartitions

        offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, request)])[
            group
        ].result(30)
        assert sorted((tp.partition, tp.offset) for tp in offsets.topic_partitions) == [
            (p, 10) for p in range(4)
        ]

        with pytest.raises(Exception, match="NON_EMPTY_GROUP"):
            admin.delete_consumer_groups([group])[group].result(30)
        pollers.close()
        pollers.consumers = []
        empty = admin.describe_consumer_groups([group])[group].result(30)
        assert empty.state == ConsumerGroupState.EMPTY and not empty.members
        admin.delete_consumer_groups([group])[group].result(30)
        gone = admin.list_consumer_groups().result(30)
        assert group not in {g.group_id for g in gone.valid}
    finally:
        pollers.close()


def test_committed_offsets_survive_a_broker_sigkill(
    broker_process: Callable[..., BrokerProcess], tmp_path: Path
) -> None:
    process = broker_process(group_initial_rebalance_delay_ms=0)
    topic = group = "restart"
    admin = AdminClient({"bootstrap.servers": process.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    _produce(process.bootstrap_servers, topic, [str(i) for i in range(20)], 1)

    def consume(count: int) -> list[int]:
        consumer = Consumer(
            {
                "bootstrap.servers": process.bootstrap_servers,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([topic])
        seen: list[int] = []
        deadline = time.monotonic() + PATIENCE_S
        while len(seen) < count and time.monotonic() < deadline:
            message = consumer.poll(0.1)
            if message is not None and not message.error():
                seen.append(message.offset())
                consumer.commit(message=message, asynchronous=False)
        consumer.close()
        return seen

    assert consume(7) == list(range(7))
    port = process.kafka_port
    process.kill()
    process.start(kafka_port=port)
    assert consume(3) == [7, 8, 9]  # resumed where it had committed, not at the start
