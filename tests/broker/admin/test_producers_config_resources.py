"""DescribeProducers and ListConfigResources through the raw protocol: the idempotent producers
a partition remembers, and the config resources that exist, by type."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Producer

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey, ErrorCode
from tests.broker.admin.support import TIMEOUT_S, inner, unique
from tests.server.wire import WireClient
from tests.support.broker import create_topic

pytestmark = pytest.mark.integration

TOPIC_TYPE, BROKER_TYPE = 2, 4


def request(broker: EmbeddedBroker, api_key: int, version: int, values: dict[str, Any]) -> Any:
    with WireClient(broker.bootstrap_servers) as client:
        return client.request(api_key, version, values)


def describe_producers(broker: EmbeddedBroker, topic: str, partitions: list[int]) -> list[Any]:
    response = request(
        broker,
        ApiKey.DESCRIBE_PRODUCERS,
        0,
        {"topics": [{"name": topic, "partition_indexes": partitions}]},
    )
    (answer,) = response.topics
    assert answer.name == topic
    return list(answer.partitions)


def produce_idempotently(broker: EmbeddedBroker, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "enable.idempotence": True})
    for i in range(count):
        producer.produce(topic, b"v", partition=0, timestamp=1_700_000_000_000 + i)
    assert producer.flush(TIMEOUT_S) == 0


def test_describe_producers_reports_the_idempotent_producer(shoal_broker: EmbeddedBroker) -> None:
    topic = unique()
    create_topic(shoal_broker, topic, 2)
    produce_idempotently(shoal_broker, topic, 4)
    first, second = describe_producers(shoal_broker, topic, [0, 1])
    assert (first.partition_index, first.error_code) == (0, ErrorCode.NONE)
    (state,) = first.active_producers
    assert state.producer_id >= 0 and state.producer_epoch == 0
    assert (state.last_sequence, state.last_timestamp) == (3, 1_700_000_000_003)
    assert (state.coordinator_epoch, state.current_txn_start_offset) == (-1, -1)
    assert (second.partition_index, second.error_code, list(second.active_producers)) == (1, 0, [])


def test_describe_producers_of_a_plain_producer_lists_none(shoal_broker: EmbeddedBroker) -> None:
    topic = unique()
    create_topic(shoal_broker, topic, 1)
    producer = Producer({"bootstrap.servers": shoal_broker.bootstrap_servers, "acks": 1,
                         "enable.idempotence": False})  # fmt: skip
    producer.produce(topic, b"v", partition=0)
    assert producer.flush(TIMEOUT_S) == 0
    (answer,) = describe_producers(shoal_broker, topic, [0])
    assert (answer.error_code, list(answer.active_producers)) == (ErrorCode.NONE, [])


def test_describe_producers_of_unknown_partitions(shoal_broker: EmbeddedBroker) -> None:
    topic = unique()
    create_topic(shoal_broker, topic, 1)
    answers = describe_producers(shoal_broker, topic, [5, -1])
    assert [(a.partition_index, a.error_code) for a in answers] == [
        (5, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        (-1, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    ]
    (missing,) = describe_producers(shoal_broker, "no-such-topic", [0])
    assert missing.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert "does not exist" in missing.error_message


def list_resources(broker: EmbeddedBroker, types: list[int], version: int = 1) -> Any:
    return request(broker, ApiKey.LIST_CONFIG_RESOURCES, version, {"resource_types": types})


def listed(response: Any) -> set[tuple[int, str]]:
    assert response.error_code == ErrorCode.NONE
    return {(r.resource_type, r.resource_name) for r in response.config_resources}


def test_list_config_resources_by_type(shoal_broker: EmbeddedBroker) -> None:
    topics = {unique(), unique()}
    for topic in topics:
        create_topic(shoal_broker, topic, 1)
    node = str(inner(shoal_broker).config.node_id)
    by_topic = {(TOPIC_TYPE, t) for t in topics}
    assert listed(list_resources(shoal_broker, [TOPIC_TYPE])) == by_topic
    assert listed(list_resources(shoal_broker, [BROKER_TYPE])) == {(BROKER_TYPE, node)}
    assert listed(list_resources(shoal_broker, [])) == by_topic | {(BROKER_TYPE, node)}
    assert listed(list_resources(shoal_broker, [TOPIC_TYPE, BROKER_TYPE, TOPIC_TYPE])) == (
        by_topic | {(BROKER_TYPE, node)}
    )
    # Broker loggers, client-metrics subscriptions and group configs: shoal has none.
    for kind in (8, 16, 32):
        assert listed(list_resources(shoal_broker, [kind])) == set()
    # v0 (ListClientMetricsResources) lists client-metrics subscriptions only.
    assert listed(list_resources(shoal_broker, [], version=0)) == set()


@pytest.mark.parametrize("types", [[0], [1], [99], [2, 64]], ids=repr)
def test_list_config_resources_of_an_unknown_type(
    shoal_broker: EmbeddedBroker, types: list[int]
) -> None:
    create_topic(shoal_broker, unique(), 1)
    response = list_resources(shoal_broker, types)
    assert response.error_code == ErrorCode.UNSUPPORTED_VERSION
    assert list(response.config_resources) == []
