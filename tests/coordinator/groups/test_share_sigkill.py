"""A share consumer SIGKILLed with records in flight (KIP-932): its records come back to the
group's other consumer once their acquisition locks time out, each with its delivery count
one higher; none is lost, and none comes back again once accepted."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from shoal.embedded import EmbeddedBroker
from tests.coordinator.groups.clients import ChildConsumer, wait_until

pytestmark = pytest.mark.integration

LOCK_MS = 2_000
"""The broker's share.record.lock.duration.ms: short, so redelivery comes soon."""
RECORDS = 10
QUIET_POLLS = 5
WAIT_S = 60.0  # an upper bound only
CHILD = Path(__file__).with_name("share_child.py")


def test_records_of_a_killed_share_consumer_are_redelivered_after_the_lock_timeout(
    shoal_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    broker = shoal_broker_factory(group_share_record_lock_duration_ms=LOCK_MS)
    bootstrap = broker.bootstrap_servers
    topic, group = "share-sigkill", "share-sigkill-group"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    earliest = ConfigResource(
        ResourceType.GROUP,
        group,
        incremental_configs=[
            ConfigEntry(
                "share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET
            )
        ],
    )
    admin.incremental_alter_configs([earliest])[earliest].result(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    keys = [f"r{i}" for i in range(RECORDS)]
    for key in keys:
        producer.produce(topic, key=key.encode(), value=key.encode())
    assert producer.flush(30) == 0

    child = ChildConsumer(bootstrap, group, topic, {}, script=CHILD)
    try:
        assert wait_until(lambda: bool(child.snapshot()[1]), WAIT_S, lambda: time.sleep(0.05))
        child.kill()  # SIGKILL: no acknowledgement, no leave; its locks are all that is left
        in_flight = dict(report.split(":") for report in child.snapshot()[1])
    finally:
        child.kill()
    assert in_flight and set(in_flight.values()) == {"1"}

    survivor = ShareConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "share.acknowledgement.mode": "explicit",
        }
    )
    survivor.subscribe([topic])
    seen: list[tuple[str, int]] = []
    try:
        deadline = time.monotonic() + WAIT_S
        quiet = 0
        while quiet < QUIET_POLLS and time.monotonic() < deadline:
            messages = survivor.poll(0.3)
            for message in messages:
                assert message.error() is None, message.error()
                seen.append(((message.key() or b"").decode(), message.delivery_count()))
                survivor.acknowledge(message, AcknowledgeType.ACCEPT)
            if messages:
                survivor.commit_sync()
            if {key for key, _ in seen} == set(keys):
                quiet += 1
    finally:
        survivor.close()
    assert sorted(key for key, _ in seen) == keys, "every record once, none lost or repeated"
    for key, count in seen:
        assert count == (2 if key in in_flight else 1), (key, count, in_flight)
