"""KIP-932 share groups with confluent-kafka's ShareConsumer (librdkafka 2.16) against shoal:
the scenario of test_share_java.py. Two share consumers of one group on a one-partition topic
both receive records; a RELEASE comes back with delivery count 2, ACCEPT and REJECT are final,
and a record left unacknowledged by a consumer that stops polling comes back to the other
once its lock times out."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
from confluent_kafka.admin import AdminClient, NewTopic

from shoal.embedded import EmbeddedBroker

pytestmark = pytest.mark.integration

LOCK_MS = 2_000
WARM_UP_ROUNDS = 150
SCENARIO_S = 60.0  # an upper bound only: the test ends as soon as every record is settled


def _consumer(bootstrap: str, group: str, topic: str, name: str) -> ShareConsumer:
    consumer = ShareConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": name,
            "share.acknowledgement.mode": "explicit",
        }
    )
    consumer.subscribe([topic])
    return consumer


def test_confluent_share_consumers_release_reject_and_lock_timeout(
    shoal_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    broker = shoal_broker_factory(share_version=1, group_share_record_lock_duration_ms=LOCK_MS)
    bootstrap = broker.bootstrap_servers
    topic, group = "share-confluent", "share-confluent-group"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    consumers = [_consumer(bootstrap, group, topic, f"c{i}") for i in range(2)]
    # The group starts at the log end (share.auto.offset.reset=latest): the scenario's records
    # are produced once both consumers have fetched warm-up records.
    warmed: set[int] = set()
    for round_ in range(WARM_UP_ROUNDS):
        if len(warmed) == 2:
            break
        producer.produce(topic, key=b"warm", value=str(round_).encode())
        producer.flush(10)
        for i, consumer in enumerate(consumers):
            for message in consumer.poll(0.2):
                assert message.error() is None, message.error()
                consumer.acknowledge(message, AcknowledgeType.ACCEPT)
                warmed.add(i)
            consumer.commit_sync()
    assert warmed == {0, 1}, "both consumers of the one partition get records"
    for key in ("release", "accept", "reject", "stuck"):
        producer.produce(topic, key=key.encode(), value=key.encode())
    producer.flush(10)

    delivered: list[tuple[int, str, int]] = []
    accepted: dict[str, int] = {}
    active = [True, True]
    stuck_at = None
    deadline = time.monotonic() + SCENARIO_S
    while time.monotonic() < deadline:
        for i, consumer in enumerate(consumers):
            if not active[i]:
                continue
            stuck = False
            for message in consumer.poll(0.2):
                assert message.error() is None, message.error()
                key, count = (message.key() or b"").decode(), message.delivery_count()
                delivered.append((i, key, count))
                kind = AcknowledgeType.ACCEPT
                if key == "release" and count == 1:
                    kind = AcknowledgeType.RELEASE
                elif key == "reject":
                    kind = AcknowledgeType.REJECT
                elif key == "stuck" and count == 1:
                    stuck = True
                    continue
                consumer.acknowledge(message, kind)
                if kind == AcknowledgeType.ACCEPT:
                    accepted[key] = accepted.get(key, 0) + 1
            consumer.commit_sync()
            if stuck:
                active[i], stuck_at = False, time.monotonic()
        settled = {"release", "accept", "stuck"} <= accepted.keys()
        if settled and stuck_at is not None and time.monotonic() > stuck_at + 2 * LOCK_MS / 1000:
            break
    for i, consumer in enumerate(consumers):
        if active[i]:
            consumer.close()

    by_key: dict[str, list[tuple[int, int]]] = {}
    for i, key, count in delivered:
        if key != "warm":
            by_key.setdefault(key, []).append((i, count))
    assert [c for _, c in by_key["accept"]] == [1]
    assert [c for _, c in by_key["reject"]] == [1]
    assert [c for _, c in by_key["release"]] == [1, 2]
    (first, one), (second, two) = by_key["stuck"]
    assert (one, two) == (1, 2) and first != second
    accepted.pop("warm", None)
    assert accepted == {"accept": 1, "release": 1, "stuck": 1}
