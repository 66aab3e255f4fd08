"""The share.* group configs (GROUP config resource) with confluent-kafka's admin client and
ShareConsumer: share.auto.offset.reset=earliest makes a new share group start at the log
start, the lock duration set for the group is what ShareFetch answers carry, and a bad value
is refused with INVALID_CONFIG, changing nothing."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import (
    AcknowledgeType,
    KafkaException,
    Producer,
    ShareConsumer,
)
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from shoal.embedded import EmbeddedBroker
from tests.coordinator.groups.clients import set_group_configs

pytestmark = pytest.mark.integration

WAIT_S = 30.0  # an upper bound only


def _alter(admin: AdminClient, group: str, name: str, value: str) -> None:
    set_group_configs(admin, group, {name: value})


def _described(admin: AdminClient, group: str) -> dict[str, str]:
    resource = ConfigResource(ResourceType.GROUP, group)
    entries = admin.describe_configs([resource])[resource].result(30)
    return {name: entry.value for name, entry in entries.items() if name.startswith("share.")}


def test_share_group_configs_apply(shoal_broker_factory: Callable[..., EmbeddedBroker]) -> None:
    broker = shoal_broker_factory(share_version=1)
    bootstrap = broker.bootstrap_servers
    topic, group = "share-configs", "share-configs-group"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    assert _described(admin, group)["share.auto.offset.reset"] == "latest"
    _alter(admin, group, "share.auto.offset.reset", "earliest")
    with pytest.raises(KafkaException) as refused:
        _alter(admin, group, "share.auto.offset.reset", "sometimes")
    assert "INVALID_CONFIG" in str(refused.value) or "nvalid" in str(refused.value)
    described = _described(admin, group)
    assert described["share.auto.offset.reset"] == "earliest"
    assert described["share.record.lock.duration.ms"] == "30000"
    assert described["share.delivery.count.limit"] == "5"

    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(3):
        producer.produce(topic, key=f"k{i}".encode(), value=b"v")
    producer.flush(10)
    consumer = ShareConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "share.acknowledgement.mode": "explicit",
        }
    )
    consumer.subscribe([topic])
    got: list[tuple[str, int]] = []
    deadline = time.monotonic() + WAIT_S
    while len(got) < 3 and time.monotonic() < deadline:
        for message in consumer.poll(0.2):
            got.append((message.key().decode(), message.offset()))
            consumer.acknowledge(message, AcknowledgeType.ACCEPT)
        consumer.commit_sync()
    # DeleteGroups refuses a share group with members...
    with pytest.raises(KafkaException) as busy:
        admin.delete_consumer_groups([group])[group].result(30)
    assert "NON_EMPTY_GROUP" in str(busy.value) or "not empty" in str(busy.value)
    consumer.close()
    # Produced before the group ever fetched: only earliest delivers them.
    assert got == [("k0", 0), ("k1", 1), ("k2", 2)]
    # ...and deletes an empty one with its share-partition state.
    admin.delete_consumer_groups([group])[group].result(30)
