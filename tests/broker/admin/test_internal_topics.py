"""``__consumer_offsets`` as Kafka shows it: absent until the group coordinator is first used,
then listed with IsInternal=true, one partition and a stable id; readable, but not writable,
deletable or reshaped by clients. No topic a client creates is internal, whatever its name.
(What Kafka itself does is checked in tests/differential/test_differential_metadata.py.)"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Final

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicCollection, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ErrorCode
from tests.broker.admin.support import TIMEOUT_S, admin_for, kafka_error, unique
from tests.server.wire import WireClient, batch_of, record_values

pytestmark = pytest.mark.integration

OFFSETS: Final = "__consumer_offsets"
ZERO_ID: Final = uuid.UUID(int=0)
SET: Final = AlterConfigOpType.SET


def find_group_coordinator(broker: EmbeddedBroker, group: str = "g") -> Any:
    with WireClient(broker.bootstrap_servers) as client:
        return client.request(10, 3, {"key": group, "key_type": 0})


def metadata(broker: EmbeddedBroker, topics: list[str] | None, *, auto_create: bool) -> Any:
    with WireClient(broker.bootstrap_servers) as client:
        return client.metadata(topics, auto_create=auto_create)


def listed(broker: EmbeddedBroker) -> dict[str, Any]:
    return {t.name: t for t in metadata(broker, None, auto_create=False).topics}


def commit(broker: EmbeddedBroker, group: str, topic: str, offset: int) -> None:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        consumer.close()


def create(admin: AdminClient, name: str, partitions: int = 1) -> None:
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(TIMEOUT_S)


def test_absent_until_a_group_is_used(shoal_broker: EmbeddedBroker) -> None:
    assert OFFSETS not in listed(shoal_broker)
    by_name = metadata(shoal_broker, [OFFSETS], auto_create=False).topics[0]
    # As Kafka: unknown, yet internal by its name.
    assert (by_name.error_code, by_name.is_internal) == (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, True)
    with WireClient(shoal_broker.bootstrap_servers) as client:
        fetched = client.fetch(OFFSETS, 0, 0)
    assert fetched.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION

    assert find_group_coordinator(shoal_broker).error_code == ErrorCode.NONE
    topic = listed(shoal_broker)[OFFSETS]
    assert (topic.error_code, topic.is_internal, len(topic.partitions)) == (0, True, 1)
    assert topic.topic_id not in (None, ZERO_ID)


def test_metadata_that_may_auto_create_creates_it(shoal_broker: EmbeddedBroker) -> None:
    topic = metadata(shoal_broker, [OFFSETS], auto_create=True).topics[0]
    assert (topic.error_code, topic.is_internal, len(topic.partitions)) == (0, True, 1)
    assert OFFSETS in listed(shoal_broker)


def test_its_id_survives_a_restart_and_is_found_by_id(tmp_path: Path) -> None:
    with EmbeddedBroker(str(tmp_path / "data")) as broker:
        find_group_coordinator(broker)
        before = listed(broker)[OFFSETS].topic_id
    with EmbeddedBroker(str(tmp_path / "data")) as broker:
        assert listed(broker)[OFFSETS].topic_id == before
        with WireClient(broker.bootstrap_servers) as client:
            by_id = client.request(
                3,
                12,
                {
                    "topics": [{"name": None, "topic_id": before}],
                    "allow_auto_topic_creation": False,
                    "include_topic_authorized_operations": False,
                },
            )
    assert (by_id.topics[0].name, by_id.topics[0].is_internal) == (OFFSETS, True)


def test_a_data_directory_with_groups_from_before_shows_it(tmp_path: Path) -> None:
    """Data directories written before internal topics were registered: the committed offsets
    in the log say a group was used, so the topic is there at the next start."""
    data = tmp_path / "data"
    with EmbeddedBroker(str(data)) as broker:
        create(admin_for(broker), "t")
        commit(broker, "old-group", "t", 3)
    topics_file = data / "topics.json"
    doc = json.loads(topics_file.read_text())
    doc["topics"] = [t for t in doc["topics"] if t["name"] != OFFSETS]
    topics_file.write_text(json.dumps(doc))
    with EmbeddedBroker(str(data)) as broker:
        assert listed(broker)[OFFSETS].is_internal


def test_user_topics_are_never_internal(shoal_broker: EmbeddedBroker) -> None:
    admin = admin_for(shoal_broker)
    mine = f"__{unique('mine')}"
    create(admin, mine)
    create(admin, "_schemas")  # the schema registry's topic is an ordinary one in Kafka too
    topics = listed(shoal_broker)
    assert topics[mine].is_internal is False
    assert topics["_schemas"].is_internal is False
    described = admin.describe_topics(TopicCollection([mine]))[mine].result(TIMEOUT_S)
    assert described.is_internal is False


def test_transaction_state_appears_with_the_first_transaction_coordinator_lookup(
    shoal_broker: EmbeddedBroker,
) -> None:
    assert "__transaction_state" not in listed(shoal_broker)
    with WireClient(shoal_broker.bootstrap_servers) as client:
        found = client.request(10, 3, {"key": "tx", "key_type": 1})
    assert found.error_code == ErrorCode.NONE
    topic = listed(shoal_broker)["__transaction_state"]
    assert (topic.error_code, topic.is_internal, len(topic.partitions)) == (0, True, 1)


@pytest.mark.parametrize("name", ["__share_group_state"])
def test_kafka_internal_names_shoal_does_not_keep_are_refused(
    shoal_broker: EmbeddedBroker, name: str
) -> None:
    admin = admin_for(shoal_broker)
    error = kafka_error(admin.create_topics([NewTopic(name, 1, 1)])[name])
    assert error.code() == ErrorCode.INVALID_REQUEST
    assert "reserved" in error.str()
    auto = metadata(shoal_broker, [name], auto_create=True).topics[0]
    assert (auto.error_code, auto.is_internal) == (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, True)


def test_create_topics_of_it(shoal_broker: EmbeddedBroker) -> None:
    admin = admin_for(shoal_broker)
    error = kafka_error(admin.create_topics([NewTopic(OFFSETS, 3, 1)])[OFFSETS])
    assert error.code() == ErrorCode.INVALID_PARTITIONS
    assert OFFSETS not in listed(shoal_broker)
    # One partition, as shoal keeps it: created (registered) as Kafka would create it.
    admin.create_topics([NewTopic(OFFSETS, 1, 1)])[OFFSETS].result(TIMEOUT_S)
    assert listed(shoal_broker)[OFFSETS].is_internal
    error = kafka_error(admin.create_topics([NewTopic(OFFSETS, 1, 1)])[OFFSETS])
    assert error.code() == ErrorCode.TOPIC_ALREADY_EXISTS


def test_clients_read_it_but_cannot_write_or_reshape_it(shoal_broker: EmbeddedBroker) -> None:
    admin = admin_for(shoal_broker)
    create(admin, "data")
    commit(shoal_broker, "readers", "data", 5)
    with WireClient(shoal_broker.bootstrap_servers) as client:
        fetched = client.fetch(OFFSETS, 0, 0)
        produced = client.produce(OFFSETS, 0, batch_of([b"forged"]))
    assert fetched.error_code == ErrorCode.NONE
    assert fetched.high_watermark > 0
    assert record_values(fetched.records), "the commit is a record clients can read"
    assert produced.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION  # as Kafka

    deleted = admin.delete_records([TopicPartition(OFFSETS, 0, 1)])
    error = kafka_error(deleted[TopicPartition(OFFSETS, 0, 1)])
    assert error.code() == ErrorCode.INVALID_TOPIC_EXCEPTION  # as Kafka

    # Kafka allows these; shoal's coordinator owns that log, so they are refused.
    for future in (
        admin.delete_topics([OFFSETS], operation_timeout=TIMEOUT_S)[OFFSETS],
        admin.create_partitions([NewPartitions(OFFSETS, 3)])[OFFSETS],
    ):
        assert kafka_error(future).code() == ErrorCode.POLICY_VIOLATION
    with WireClient(shoal_broker.bootstrap_servers) as client:
        answer = client.request(20, 6, {"topics": [{"name": OFFSETS}], "timeout": 1000})
    assert "internal topic" in answer.responses[0].error_message
    resource = ConfigResource(
        ResourceType.TOPIC,
        OFFSETS,
        incremental_configs=[ConfigEntry("retention.ms", "1", incremental_operation=SET)],
    )
    error = kafka_error(admin.incremental_alter_configs([resource])[resource])
    assert error.code() == ErrorCode.POLICY_VIOLATION

    topic = listed(shoal_broker)[OFFSETS]
    assert (topic.is_internal, len(topic.partitions)) == (True, 1)
    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("readers")])
    committed = offsets["readers"].result(TIMEOUT_S).topic_partitions
    assert [(tp.topic, tp.offset) for tp in committed] == [("data", 5)]


def test_describe_configs_shows_a_compacted_topic(shoal_broker: EmbeddedBroker) -> None:
    find_group_coordinator(shoal_broker)
    resource = ConfigResource(ResourceType.TOPIC, OFFSETS)
    admin = admin_for(shoal_broker)  # kept alive until the future resolves
    configs = admin.describe_configs([resource])[resource].result(TIMEOUT_S)
    assert configs["cleanup.policy"].value == "compact"
    assert configs["compression.type"].value == "producer"
    assert not configs["cleanup.policy"].is_default
