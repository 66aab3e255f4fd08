"""DeleteRecords through confluent-kafka: low watermarks, and what consumers see below them."""

from __future__ import annotations

import pytest
from confluent_kafka import OFFSET_END, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey, ErrorCode
from tests.broker.admin.support import TIMEOUT_S, consume, kafka_error, produce, unique
from tests.server.wire import WireClient

pytestmark = pytest.mark.integration


def topic_with_records(
    admin: AdminClient, broker: EmbeddedBroker, count: int, **config: str
) -> str:
    name = unique()
    admin.create_topics([NewTopic(name, 1, 1, config=config)])[name].result(TIMEOUT_S)
    values = [f"v{i}".encode() for i in range(count)]
    assert produce(broker, name, values) == [None] * count
    return name


def delete_before(admin: AdminClient, name: str, offset: int) -> int:
    partition = TopicPartition(name, 0, offset)
    (future,) = admin.delete_records([partition]).values()
    low: int = future.result(TIMEOUT_S).low_watermark
    return low


def earliest(admin: AdminClient, name: str) -> int:
    partition = TopicPartition(name, 0)
    (future,) = admin.list_offsets({partition: OffsetSpec.earliest()}).values()
    offset: int = future.result(TIMEOUT_S).offset
    return offset


def test_low_watermark_moves_and_reads_below_it_are_out_of_range(
    broker: EmbeddedBroker, admin: AdminClient
) -> None:
    name = topic_with_records(admin, broker, 10)
    assert delete_before(admin, name, 4) == 4
    assert earliest(admin, name) == 4
    with WireClient(broker.bootstrap_servers) as client:
        below, at = client.fetch(name, 0, 2), client.fetch(name, 0, 4)
    # Kafka answers an out-of-range fetch with offsets -1 (ReplicaManager's error result; the
    # differential scenario of tests/differential/scenarios_epochs.py compares one): the client
    # learns the new start from ListOffsets when it resets.
    assert (below.error_code, below.log_start_offset) == (ErrorCode.OFFSET_OUT_OF_RANGE, -1)
    assert (at.error_code, at.log_start_offset) == (ErrorCode.NONE, 4)
    # Deleting below the current start changes nothing.
    assert delete_before(admin, name, 2) == 4


CONSUME_WAIT_S = 2.0
"""Enough for a working consumer on loopback."""


def test_a_consumer_below_the_low_watermark_resets_to_it(
    broker: EmbeddedBroker, admin: AdminClient
) -> None:
    name = topic_with_records(admin, broker, 10)
    delete_before(admin, name, 4)
    (first,) = consume(broker, name, 0, 2, 1, reset="earliest", timeout_s=CONSUME_WAIT_S)
    assert (first.offset(), first.value()) == (4, b"v4")


def test_reading_below_the_low_watermark_without_reset_is_an_error(
    broker: EmbeddedBroker, admin: AdminClient
) -> None:
    name = topic_with_records(admin, broker, 5)
    delete_before(admin, name, 3)
    (event,) = consume(broker, name, 0, 1, 1, reset="error", timeout_s=CONSUME_WAIT_S)
    assert event.error() is not None
    assert event.error().code() == KafkaError._AUTO_OFFSET_RESET


def test_minus_one_deletes_up_to_the_high_watermark(
    broker: EmbeddedBroker, admin: AdminClient
) -> None:
    name = topic_with_records(admin, broker, 6)
    assert delete_before(admin, name, OFFSET_END) == 6
    assert earliest(admin, name) == 6
    assert produce(broker, name, [b"next"]) == [None]
    (message,) = consume(broker, name, 0, 6, 1)
    assert (message.offset(), message.value()) == (6, b"next")


def test_an_offset_above_the_high_watermark_is_out_of_range(
    broker: EmbeddedBroker, admin: AdminClient
) -> None:
    name = topic_with_records(admin, broker, 3)
    (future,) = admin.delete_records([TopicPartition(name, 0, 4)]).values()
    assert kafka_error(future).code() == KafkaError.OFFSET_OUT_OF_RANGE
    assert earliest(admin, name) == 0


def test_a_compact_only_topic_refuses_deletion(broker: EmbeddedBroker, admin: AdminClient) -> None:
    name = unique()
    admin.create_topics([NewTopic(name, 1, 1, config={"cleanup.policy": "compact"})])[name].result(
        TIMEOUT_S
    )
    (future,) = admin.delete_records([TopicPartition(name, 0, 0)]).values()
    assert kafka_error(future).code() == KafkaError.POLICY_VIOLATION


def test_unknown_topics_and_partitions_are_answered_per_partition(
    broker: EmbeddedBroker, admin: AdminClient
) -> None:
    # Through the raw protocol: librdkafka refuses an unknown partition before asking.
    name = topic_with_records(admin, broker, 1)
    request = {
        "topics": [
            {"name": name, "partitions": [{"partition_index": 5, "offset": 0}]},
            {"name": unique(), "partitions": [{"partition_index": 0, "offset": 0}]},
        ],
        "timeout": 5000,
    }
    with WireClient(broker.bootstrap_servers) as client:
        response = client.request(ApiKey.DELETE_RECORDS, 2, request)
    answers = [
        (p.partition_index, p.error_code, p.low_watermark)
        for t in response.topics
        for p in t.partitions
    ]
    assert answers == [
        (5, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1),
        (0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1),
    ]
