"""MirrorMaker 2 moves a team from shoal to Apache Kafka (must-show 5 of issue 15).

Dedicated MirrorMaker 2 (``org.apache.kafka.connect.mirror.MirrorMaker``, what
``connect-mirror-maker.sh`` runs; connect-mirror 4.1.0 on Kafka 4.4's runtime) with the
settings docs/migrating-to-kafka.md gives copies a topic from shoal to the Kafka peer under the
same name (IdentityReplicationPolicy) and the consumer group's committed offset with it, so the
group's consumers, pointed at Kafka, carry on where they stopped on shoal (or a little before:
MirrorMaker's offset translation is conservative, never past what was read).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from shoal.embedded import EmbeddedBroker
from tests.peers.kafka_apps import JvmApp, mirror_maker_classpath
from tests.peers.kafka_peer import KafkaPeer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

TOPIC = "payments"
GROUP = "billing"
RECORDS = 100
CONSUMED = 60
WAIT_S = 120.0
"""MirrorMaker's start, its first topic and group refresh, the copy and a checkpoint."""


def mm2_properties(shoal: str, kafka: str) -> str:
    """The configuration docs/migrating-to-kafka.md shows, with the test's addresses,
    intervals of a second instead of minutes, and replication factor 1 on the one-broker peer
    (the doc sizes its topics for a three-broker cluster: tests/peers/cluster/test_migration.py)."""
    return f"""\
clusters = shoal, kafka
shoal.bootstrap.servers = {shoal}
kafka.bootstrap.servers = {kafka}
shoal->kafka.enabled = true
shoal->kafka.topics = {TOPIC}
shoal->kafka.groups = {GROUP}
kafka->shoal.enabled = false
replication.policy.class = org.apache.kafka.connect.mirror.IdentityReplicationPolicy
sync.group.offsets.enabled = true
sync.topic.acls.enabled = false
replication.factor = 1
checkpoints.topic.replication.factor = 1
heartbeats.topic.replication.factor = 1
offset-syncs.topic.replication.factor = 1
offset.storage.replication.factor = 1
status.storage.replication.factor = 1
config.storage.replication.factor = 1
refresh.topics.interval.seconds = 1
refresh.groups.interval.seconds = 1
emit.checkpoints.interval.seconds = 1
sync.group.offsets.interval.seconds = 1
offset.lag.max = 0
"""


def _values(bootstrap: str, count: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "mm2-check"})
    consumer.assign([TopicPartition(TOPIC, 0, OFFSET_BEGINNING)])
    values: list[bytes] = []
    deadline = time.monotonic() + WAIT_S
    try:
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                values.append(message.value())
    finally:
        consumer.close()
    return values


def _committed(bootstrap: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(GROUP, [TopicPartition(TOPIC, 0)])
    try:
        result = admin.list_consumer_group_offsets([request])[GROUP].result(10)
    except Exception:  # the group does not exist there yet
        return -1
    return int(result.topic_partitions[0].offset)


def test_mirror_maker_copies_a_topic_and_its_group_offsets_to_kafka(
    shoal_broker_factory: Callable[..., EmbeddedBroker], kafka_peer: KafkaPeer, tmp_path: Path
) -> None:
    shoal = shoal_broker_factory(group_initial_rebalance_delay_ms=0).bootstrap_servers
    kafka = kafka_peer.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": shoal})  # kept: a dropped client ends its requests
    admin.create_topics([NewTopic(TOPIC, 1)])[TOPIC].result(10)
    producer = Producer({"bootstrap.servers": shoal})
    sent = [f"payment-{i:03d}".encode() for i in range(RECORDS)]
    for value in sent:
        producer.produce(TOPIC, value=value)
    assert producer.flush(30) == 0
    consumer = Consumer(
        {"bootstrap.servers": shoal, "group.id": GROUP, "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(TOPIC, 0, OFFSET_BEGINNING)])
    read = 0
    while read < CONSUMED:
        message = consumer.poll(5)
        assert message is not None and message.error() is None
        read += 1
    consumer.commit(offsets=[TopicPartition(TOPIC, 0, CONSUMED)], asynchronous=False)
    consumer.close()

    properties = tmp_path / "mm2.properties"
    properties.write_text(mm2_properties(shoal, kafka))
    mirror = JvmApp(
        mirror_maker_classpath(),
        "org.apache.kafka.connect.mirror.MirrorMaker",
        str(properties),
        log_path=tmp_path / "mm2.log",
    ).start()
    try:
        assert _values(kafka, RECORDS) == sent, mirror.tail()
        deadline = time.monotonic() + WAIT_S
        while _committed(kafka) <= 0 and time.monotonic() < deadline:
            assert mirror.alive(), mirror.tail()
            time.sleep(0.5)
        # MirrorMaker translates a committed offset through the offset syncs it wrote, down
        # to the last sync at or before it (KAFKA-14666): never past what the group read on
        # shoal, so a consumer moved to Kafka re-reads at most a few records and misses none.
        translated = _committed(kafka)
        assert 0 < translated <= CONSUMED, mirror.tail()
        mirror.stop()  # the group is the consumers' now
        moved = Consumer({"bootstrap.servers": kafka, "group.id": GROUP})
        moved.assign([TopicPartition(TOPIC, 0)])  # from the group's committed offset
        resumed = []
        try:
            while len(resumed) < RECORDS - translated:
                message = moved.poll(10)
                assert message is not None and message.error() is None, message
                resumed.append((message.offset(), message.value()))
        finally:
            moved.close()
        assert resumed == list(enumerate(sent))[translated:]
    finally:
        mirror.stop()
