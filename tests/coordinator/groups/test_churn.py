"""Must-show 6: 20 consumers joining and leaving at random keep every partition owned once.

Each of 20 threads runs a confluent-kafka consumer for a random while, closes it (a clean
leave), waits a random while and joins again, committing synchronously after every record it
processes. A checker watches the group through the AdminClient: whenever the group is Stable,
the members' assignments must cover every partition exactly once; and across the whole run no
committed offset may go backwards (a commit from a member of a past generation must be refused).

``SHOAL_CHURN_SECONDS`` sets how long it churns: 20 s in ``make test`` (the quick mode), the
issue's minute in ``make churn-full``. The random seed is printed, and ``SHOAL_CHURN_SEED``
replays one.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    KafkaException,
    Producer,
)
from confluent_kafka.admin import AdminClient

from shoal.embedded import EmbeddedBroker
from tests.coordinator.groups.clients import check_commits_never_go_back
from tests.support.broker import create_topic

pytestmark = pytest.mark.integration

CONSUMERS = 20
PARTITIONS = 12
CHURN_S = float(os.environ.get("SHOAL_CHURN_SECONDS", "20"))
SESSION_TIMEOUT_MS = 3000
STAY_S = (3.0, 10.0)
"""How long a consumer stays in the group before it leaves."""
AWAY_S = (0.5, 4.0)
"""How long it stays away before it joins again."""
CHECK_INTERVAL_S = 0.2
MIN_STABLE_MEMBER_SETS = 3
"""The run must have seen this many distinct Stable memberships, or it checked too little."""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    directory = tmp_path_factory.mktemp("churn")
    with EmbeddedBroker(
        str(directory), group_initial_rebalance_delay_ms=100, group_min_session_timeout_ms=1000
    ) as embedded:
        yield embedded


class Churn:
    def __init__(self, bootstrap: str, topic: str, group: str, seed: int) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self.seed = seed
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.processed = 0
        self._lock = threading.Lock()

    def _consumer(self, index: int) -> Consumer:
        return Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "client.id": f"churn-{index}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": SESSION_TIMEOUT_MS,
                "heartbeat.interval.ms": 300,
                "max.poll.interval.ms": 10_000,
                "log_level": 0,
            }
        )

    def member(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        while not self.stop.is_set():
            consumer = self._consumer(index)
            consumer.subscribe([self.topic])
            leave_at = time.monotonic() + rng.uniform(*STAY_S)
            try:
                while time.monotonic() < leave_at and not self.stop.is_set():
                    message = consumer.poll(0.1)
                    if message is None or message.error():
                        continue
                    try:
                        consumer.commit(message=message, asynchronous=False)
                    except KafkaException:
                        continue  # a rebalance moved on: the broker refused a stale commit
                    with self._lock:
                        self.processed += 1
            except Exception as exc:  # reported by the test, not lost in a thread
                self.errors.append(f"consumer {index}: {exc!r}")
            finally:
                consumer.close()
            self.stop.wait(rng.uniform(*AWAY_S))

    def produce(self) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})
        i = 0
        while not self.stop.is_set():
            producer.produce(self.topic, str(i).encode(), partition=i % PARTITIONS)
            producer.poll(0)
            i += 1
            time.sleep(0.01)
        producer.flush(30)


@pytest.mark.slow  # even the quick mode churns for CHURN_S (20 s)
def test_every_partition_has_exactly_one_owner_through_random_churn(
    broker: EmbeddedBroker,
) -> None:
    topic = group = f"churn-{CHURN_S:g}"
    create_topic(broker, topic, PARTITIONS)
    seed = int(os.environ.get("SHOAL_CHURN_SEED") or random.randrange(1 << 30))
    print(f"SHOAL_CHURN_SEED={seed}")
    churn = Churn(broker.bootstrap_servers, topic, group, seed)
    threads = [threading.Thread(target=churn.produce, daemon=True)]
    threads += [
        threading.Thread(target=churn.member, args=(i,), daemon=True) for i in range(CONSUMERS)
    ]
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    stable_member_sets: set[frozenset[str]] = set()
    high: dict[int, int] = {}
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + CHURN_S
        while time.monotonic() < deadline:
            described = admin.describe_consumer_groups([group])[group].result(30)
            if described.state == ConsumerGroupState.STABLE and described.members:
                owners = Counter(
                    tp.partition
                    for member in described.members
                    for tp in member.assignment.topic_partitions
                    if tp.topic == topic
                )
                assert owners == Counter(range(PARTITIONS)), (
                    f"seed {seed}: a Stable generation with {len(described.members)} members "
                    f"does not own each partition once: {dict(owners)}"
                )
                stable_member_sets.add(frozenset(m.member_id for m in described.members))
            check_commits_never_go_back(admin, group, high, seed)
            time.sleep(CHECK_INTERVAL_S)
    finally:
        churn.stop.set()
        for thread in threads:
            thread.join(timeout=60)
    print(f"{len(stable_member_sets)} Stable memberships checked, {churn.processed} records")
    assert not churn.errors, churn.errors
    assert len(stable_member_sets) >= MIN_STABLE_MEMBER_SETS, (
        f"seed {seed}: only {len(stable_member_sets)} Stable memberships seen; the run "
        "checked too little"
    )
    assert churn.processed > 0
    assert sorted(high) == list(range(PARTITIONS))
