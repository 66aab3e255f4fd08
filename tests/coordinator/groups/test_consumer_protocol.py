"""KIP-848 consumer groups (``group.protocol=consumer``) with confluent-kafka against shoal.

One member, then three with churn (a member leaves, another joins, one is fenced by its
session timeout). Throughout, a checker samples the broker's view of the group: a partition
is owned (assigned or awaiting revocation) by at most one member at any moment. At the end no
record is lost and the committed offsets are the end offsets.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from shoal.embedded import EmbeddedBroker
from tests.coordinator.groups.clients import ChildConsumer
from tests.support.broker import create_topic, run_on_loop

pytestmark = pytest.mark.integration

HEARTBEAT_INTERVAL_MS = 200
SESSION_TIMEOUT_MS = 2000
PATIENCE_S = 60.0
"""A bound for what has no stated deadline (consuming everything)."""
_names = itertools.count()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    directory = tmp_path_factory.mktemp("kip848")
    with EmbeddedBroker(
        str(directory),
        group_consumer_heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        group_consumer_session_timeout_ms=SESSION_TIMEOUT_MS,
        group_initial_rebalance_delay_ms=0,
    ) as embedded:
        yield embedded


def _consumer(broker: EmbeddedBroker, group: str, **extra: Any) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": group,
            "group.protocol": "consumer",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **extra,
        }
    )


def _produce(
    broker: EmbeddedBroker, topic: str, count: int, partitions: int, start: int = 0
) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "acks": "all"})
    for i in range(start, start + count):
        producer.produce(topic, str(i).encode(), partition=i % partitions)
    assert producer.flush(30) == 0


class OwnershipChecker:
    """Samples the group on the broker's loop; records any partition owned twice."""

    def __init__(self, broker: EmbeddedBroker, group: str) -> None:
        self.broker = broker
        self.group = group
        self.problems: list[str] = []
        self.samples = 0
        self.epochs_seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        inner = self.broker.app.broker
        assert inner is not None
        group = inner.groups.consumer_group(self.group)
        if group is None:
            return
        owner: dict[tuple[str, int], str] = {}
        for member in group.members.values():
            self.epochs_seen.add(member.member_epoch)
            for parts in (member.assigned, member.pending_revocation):
                for topic, ps in parts.items():
                    for p in ps:
                        if (topic, p) in owner:
                            self.problems.append(
                                f"{topic}-{p} owned by {owner[(topic, p)]} and {member.member_id}"
                            )
                        owner[(topic, p)] = member.member_id
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            run_on_loop(self.broker, self._sample)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _end_offsets(broker: EmbeddedBroker, topic: str, partitions: int) -> dict[int, int]:
    inner = broker.app.broker
    assert inner is not None
    return {
        p: log.log_end_offset
        for p in range(partitions)
        if (log := inner.logs.get(topic, p)) is not None
    }


def _committed(consumer: Consumer, topic: str, partitions: int) -> dict[int, int]:
    return {
        tp.partition: tp.offset
        for tp in consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 30)
    }


def test_one_member_consumes_and_commits(broker: EmbeddedBroker) -> None:
    topic, group, partitions = f"kip848-one-{next(_names)}", f"g-one-{next(_names)}", 4
    create_topic(broker, topic, partitions)
    _produce(broker, topic, 200, partitions)
    consumer = _consumer(broker, group)
    consumer.subscribe([topic])
    seen: set[int] = set()
    deadline = time.monotonic() + PATIENCE_S
    while len(seen) < 200 and time.monotonic() < deadline:
        message = consumer.poll(0.1)
        if message is None or message.error():
            continue
        seen.add(int(message.value()))
        consumer.commit(message=message, asynchronous=False)
    assert seen == set(range(200))
    assert sorted(tp.partition for tp in consumer.assignment()) == list(range(partitions))
    assert _committed(consumer, topic, partitions) == _end_offsets(broker, topic, partitions)
    inner = broker.app.broker
    assert inner is not None
    described = run_on_loop(broker, lambda: inner.groups.consumer_group(group))
    assert described is not None
    assert described.state.value == "Stable"
    consumer.close()
    # A clean close leaves the group (epoch -1): no member remains.
    assert run_on_loop(broker, lambda: len(described.members)) == 0


def test_three_members_with_churn_own_each_partition_once(broker: EmbeddedBroker) -> None:
    topic, group = f"kip848-churn-{next(_names)}", f"g-churn-{next(_names)}"
    partitions, count = 6, 600
    create_topic(broker, topic, partitions)
    _produce(broker, topic, count // 2, partitions)
    checker = OwnershipChecker(broker, group)
    inner = broker.app.broker
    assert inner is not None
    consumers = [_consumer(broker, group) for _ in range(3)]
    for c in consumers:
        c.subscribe([topic])
    seen: set[int] = set()

    def poll_all(active: list[Consumer], until: int) -> None:
        deadline = time.monotonic() + PATIENCE_S
        while len(seen) < until and time.monotonic() < deadline:
            for c in active:
                message = c.poll(0.05)
                if message is None or message.error():
                    continue
                seen.add(int(message.value()))
                c.commit(message=message, asynchronous=False)

    def members() -> int:
        g = inner.groups.consumer_group(group)
        return 0 if g is None else len(g.members)

    def stable_with(n: int) -> bool:
        g = inner.groups.consumer_group(group)
        return g is not None and g.state.value == "Stable" and len(g.members) == n

    def poll_until(condition: Any) -> None:
        deadline = time.monotonic() + PATIENCE_S
        while not run_on_loop(broker, condition) and time.monotonic() < deadline:
            for c in consumers:
                message = c.poll(0.05)
                if message is not None and not message.error():
                    seen.add(int(message.value()))
                    c.commit(message=message, asynchronous=False)
        assert run_on_loop(broker, condition)

    child = ChildConsumer(broker.bootstrap_servers, group, topic, {"group.protocol": "consumer"})
    try:
        poll_all(consumers, count // 4)
        consumers[0].close()  # a clean leave mid-stream
        consumers = [*consumers[1:], _consumer(broker, group)]
        consumers[-1].subscribe([topic])
        poll_until(lambda: stable_with(4))
        # A member that dies without leaving is fenced when its session times out, and its
        # partitions go to the others (records it took but did not commit come again).
        child.kill()
        poll_until(lambda: members() == 3)
        _produce(broker, topic, count // 2, partitions, start=count // 2)
        child_records = {int(r) for r in child.snapshot()[1]}
        deadline = time.monotonic() + PATIENCE_S
        while len(seen | child_records) < count and time.monotonic() < deadline:
            poll_all(consumers, len(seen) + 1)
        poll_until(lambda: stable_with(3))
        owned = sorted(tp.partition for c in consumers for tp in c.assignment())
        assert owned == list(range(partitions))
        assert seen | child_records == set(range(count))
        assert _committed(consumers[0], topic, partitions) == _end_offsets(
            broker, topic, partitions
        )
    finally:
        child.kill()
        checker.stop()
        for c in consumers:
            c.close()
    assert checker.problems == []
    assert checker.samples > 10
    assert len(checker.epochs_seen) >= 3  # the group went through several epochs


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_classic_group_upgrades_and_downgrades_online(
    broker: EmbeddedBroker, strategy: str
) -> None:
    """Online upgrade and downgrade (mixed_group): two classic members consume; a
    consumer-protocol member joins; the group becomes a consumer group with the classic members
    still in it, the partitions are shared among all three, one owner each; the
    consumer-protocol member leaves and the group is classic again. Nothing is lost."""
    topic, group = f"kip848-upgrade-{next(_names)}", f"g-upgrade-{next(_names)}"
    partitions, count = 6, 300
    create_topic(broker, topic, partitions)
    _produce(broker, topic, count // 2, partitions)
    inner = broker.app.broker
    assert inner is not None
    classic = [
        Consumer(
            {
                "bootstrap.servers": broker.bootstrap_servers,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 200,
                "partition.assignment.strategy": strategy,
            }
        )
        for _ in range(2)
    ]
    for c in classic:
        c.subscribe([topic])
    consumers = list(classic)
    seen: set[int] = set()
    checker = OwnershipChecker(broker, group)

    def poll_until(condition: Any) -> None:
        deadline = time.monotonic() + PATIENCE_S
        while not run_on_loop(broker, condition) and time.monotonic() < deadline:
            for c in consumers:
                message = c.poll(0.05)
                if message is not None and not message.error():
                    seen.add(int(message.value()))
                    c.commit(message=message, asynchronous=False)
        assert run_on_loop(broker, condition)

    try:
        poll_until(lambda: len(seen) >= count // 4)
        assert run_on_loop(broker, lambda: inner.groups.consumer_group(group)) is None
        modern = _consumer(broker, group)
        modern.subscribe([topic])
        consumers.append(modern)

        def mixed_and_stable() -> bool:
            g = inner.groups.consumer_group(group)
            return (
                g is not None
                and g.state.value == "Stable"
                and len(g.members) == 3
                and all(m.assigned for m in g.members.values())
            )

        poll_until(mixed_and_stable)
        described = run_on_loop(broker, lambda: inner.groups.consumer_group(group))
        assert described is not None
        assert sorted(m.classic is not None for m in described.members.values()) == [
            False,
            True,
            True,
        ]
        _produce(broker, topic, count // 3, partitions, start=count // 3)
        poll_until(lambda: len(seen) >= 2 * count // 3)
        assert seen == set(range(2 * count // 3))
        owned = sorted(tp.partition for c in consumers for tp in c.assignment())
        assert owned == list(range(partitions))
        # Online downgrade: the consumer-protocol member leaves, the classic ones remain, and
        # the group is a classic group again; they rebalance and own everything.
        modern.close()
        consumers.remove(modern)

        def classic_again() -> bool:
            g = inner.groups.describe(group)
            return (
                inner.groups.consumer_group(group) is None
                and g is not None
                and g.state.value == "Stable"
                and len(g.members) == 2
            )

        poll_until(classic_again)
        _produce(broker, topic, count - 2 * count // 3, partitions, start=2 * count // 3)
        poll_until(lambda: len(seen) >= count)
        assert seen == set(range(count))
        owned = sorted(tp.partition for c in consumers for tp in c.assignment())
        assert owned == list(range(partitions))
    finally:
        checker.stop()
        for c in consumers:
            c.close()
    assert checker.problems == []
