"""DescribeCluster, topic ids, DescribeTopicPartitions (cursor paging) and OffsetForLeaderEpoch.

librdkafka answers describe_cluster and describe_topics from Metadata, so the two newer APIs are
also driven through the raw protocol, as the Java admin client would use them.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient, NewTopic

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey, ErrorCode
from tests.broker.admin.support import TIMEOUT_S, produce, unique
from tests.server.wire import WireClient, host_port

pytestmark = pytest.mark.integration

# AclOperation codes Kafka reports for the cluster and for topics when no authorizer is set.
CLUSTER_OPERATIONS = {
    "CREATE": 5, "ALTER": 7, "DESCRIBE": 8, "CLUSTER_ACTION": 9, "DESCRIBE_CONFIGS": 10,
    "ALTER_CONFIGS": 11, "IDEMPOTENT_WRITE": 12,
}  # fmt: skip
TOPIC_OPERATIONS = {
    "READ": 3, "WRITE": 4, "CREATE": 5, "DELETE": 6, "ALTER": 7, "DESCRIBE": 8,
    "DESCRIBE_CONFIGS": 10, "ALTER_CONFIGS": 11,
}  # fmt: skip
NOT_ASKED = -(2**31)


def bits(operations: dict[str, int]) -> int:
    return sum(1 << code for code in operations.values())


def request(broker: EmbeddedBroker, api_key: int, version: int, values: dict[str, Any]) -> Any:
    with WireClient(broker.bootstrap_servers) as client:
        return client.request(api_key, version, values)


def create(admin: AdminClient, name: str, partitions: int) -> None:
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(TIMEOUT_S)


def test_describe_cluster_through_confluent(broker: EmbeddedBroker, admin: AdminClient) -> None:
    cluster = admin.describe_cluster().result(TIMEOUT_S)
    host, port = host_port(broker.bootstrap_servers)
    assert cluster.cluster_id == "shoal-cluster"
    assert cluster.controller.id == 1
    assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(1, host, port)]


@pytest.mark.parametrize("version", [0, 1, 2])
def test_describe_cluster_api(broker: EmbeddedBroker, version: int) -> None:
    asked = request(
        broker, ApiKey.DESCRIBE_CLUSTER, version, {"include_cluster_authorized_operations": True}
    )
    host, port = host_port(broker.bootstrap_servers)
    assert asked.error_code == ErrorCode.NONE
    assert (asked.cluster_id, asked.controller_id) == ("shoal-cluster", 1)
    assert [(b.broker_id, b.host, b.port, b.rack) for b in asked.brokers] == [(1, host, port, None)]
    assert asked.cluster_authorized_operations == bits(CLUSTER_OPERATIONS)
    plain = request(
        broker, ApiKey.DESCRIBE_CLUSTER, version, {"include_cluster_authorized_operations": False}
    )
    assert plain.cluster_authorized_operations == NOT_ASKED


def test_describe_cluster_refuses_controller_endpoints(broker: EmbeddedBroker) -> None:
    answer = request(
        broker,
        ApiKey.DESCRIBE_CLUSTER,
        1,
        {"include_cluster_authorized_operations": False, "endpoint_type": 2},
    )
    assert answer.error_code == ErrorCode.UNSUPPORTED_ENDPOINT_TYPE
    assert list(answer.brokers) == []


def test_topic_ids_agree_across_apis(broker: EmbeddedBroker, admin: AdminClient) -> None:
    name = unique()
    create(admin, name, 2)
    described = admin.describe_topics(TopicCollection([name]))[name].result(TIMEOUT_S)
    high, low = (
        described.topic_id.get_most_significant_bits(),
        (described.topic_id.get_least_significant_bits()),
    )
    from_confluent = uuid.UUID(int=((high % 2**64) << 64) | (low % 2**64))
    assert from_confluent != uuid.UUID(int=0)
    assert len(described.partitions) == 2
    (from_dtp,) = describe_partitions(broker, [name]).topics
    assert from_dtp.topic_id == from_confluent


def describe_partitions(
    broker: EmbeddedBroker,
    names: list[str],
    limit: int = 2000,
    cursor: dict[str, Any] | None = None,
) -> Any:
    values = {
        "topics": [{"name": n} for n in names],
        "response_partition_limit": limit,
        "cursor": cursor,
    }
    return request(broker, ApiKey.DESCRIBE_TOPIC_PARTITIONS, 0, values)


def test_describe_topic_partitions_pages_with_a_cursor(
    broker: EmbeddedBroker, admin: AdminClient
) -> None:
    base = unique("dtp")
    a, b, c = f"{base}-a", f"{base}-b", f"{base}-c"
    create(admin, a, 3)
    create(admin, b, 2)
    create(admin, c, 1)
    pages: list[list[tuple[str, list[int]]]] = []
    cursor = None
    for _ in range(10):  # bounded: 6 partitions at 2 per page need 3 pages
        page = describe_partitions(broker, [c, a, b], limit=2, cursor=cursor)
        pages.append([(t.name, [p.partition_index for p in t.partitions]) for t in page.topics])
        if page.next_cursor is None:
            break
        cursor = {
            "topic_name": page.next_cursor.topic_name,
            "partition_index": page.next_cursor.partition_index,
        }
    assert pages == [
        [(a, [0, 1])],
        [(a, [2]), (b, [0])],
        [(b, [1]), (c, [0])],
    ]


def test_describe_topic_partitions_details_and_errors(
    broker: EmbeddedBroker, admin: AdminClient
) -> None:
    name, missing = unique(), unique()
    create(admin, name, 1)
    answer = describe_partitions(broker, [name, missing, "bad name"])
    by_name = {t.name: t for t in answer.topics}
    assert by_name[missing].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert by_name["bad name"].error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
    topic = by_name[name]
    assert topic.topic_authorized_operations == bits(TOPIC_OPERATIONS)
    (partition,) = topic.partitions
    assert (partition.leader_id, partition.leader_epoch) == (1, 0)
    assert (list(partition.replica_nodes), list(partition.isr_nodes)) == ([1], [1])
    assert answer.next_cursor is None
    # A cursor naming a topic the request does not list is malformed.
    bad = describe_partitions(broker, [name], cursor={"topic_name": missing, "partition_index": 0})
    assert [t.error_code for t in bad.topics] == [ErrorCode.INVALID_REQUEST]


def test_describe_topic_partitions_of_every_topic(
    broker: EmbeddedBroker, admin: AdminClient
) -> None:
    names = sorted(unique() for _ in range(3))
    for name in names:
        create(admin, name, 1)
    answer = describe_partitions(broker, [])
    assert [t.name for t in answer.topics] == names


def epoch_end(
    broker: EmbeddedBroker, topic: str, epoch: int, current: int = -1, partition: int = 0
) -> Any:
    values = {
        "replica_id": -1,
        "topics": [
            {
                "topic": topic,
                "partitions": [
                    {
                        "partition": partition,
                        "current_leader_epoch": current,
                        "leader_epoch": epoch,
                    }
                ],
            }
        ],
    }
    (result,) = request(broker, ApiKey.OFFSET_FOR_LEADER_EPOCH, 4, values).topics
    (answer,) = result.partitions
    return answer


def test_offset_for_leader_epoch(broker: EmbeddedBroker, admin: AdminClient) -> None:
    name = unique()
    create(admin, name, 1)
    assert produce(broker, name, [b"a", b"b", b"c"]) == [None] * 3

    def answer(epoch: int, current: int = -1) -> tuple[int, int, int]:
        a = epoch_end(broker, name, epoch, current)
        return a.error_code, a.leader_epoch, a.end_offset

    # Epoch 0 is the only one and still open: it ends at the log end offset.
    assert answer(0) == (ErrorCode.NONE, 0, 3)
    assert answer(0, current=0) == (ErrorCode.NONE, 0, 3)
    # A later epoch is unknown to the log: Kafka answers "undefined", not an error.
    assert answer(4) == (ErrorCode.NONE, -1, -1)
    # The client's view of the current epoch fences first.
    assert answer(0, current=1)[0] == ErrorCode.UNKNOWN_LEADER_EPOCH
    assert answer(0, current=-3)[0] == ErrorCode.FENCED_LEADER_EPOCH
    assert epoch_end(broker, unique(), 0).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
