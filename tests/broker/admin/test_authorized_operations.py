"""Authorized operations (KIP-430) in Metadata and DescribeGroups, and through confluent-kafka's
describe_cluster / describe_topics / describe_consumer_groups, which read them from there.

Without an authorizer Kafka reports every operation the resource type supports, and the schema
default INT32_MIN when the request did not ask (Kafka's answers are compared in
tests/differential/test_differential_metadata.py). DescribeCluster and DescribeTopicPartitions
are covered in test_cluster.py.
"""

from __future__ import annotations

from typing import Any, Final

import pytest
from confluent_kafka import Consumer, TopicCollection, TopicPartition
from confluent_kafka.admin import AclOperation, AdminClient, NewTopic

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey
from tests.broker.admin.support import TIMEOUT_S, unique
from tests.server.wire import WireClient

pytestmark = pytest.mark.integration

TOPIC_OPERATIONS: Final = {
    AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DELETE,
    AclOperation.ALTER, AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS,
    AclOperation.ALTER_CONFIGS,
}  # fmt: skip
CLUSTER_OPERATIONS: Final = {
    AclOperation.CREATE, AclOperation.ALTER, AclOperation.DESCRIBE, AclOperation.CLUSTER_ACTION,
    AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS, AclOperation.IDEMPOTENT_WRITE,
}  # fmt: skip
GROUP_OPERATIONS: Final = {
    AclOperation.READ, AclOperation.DELETE, AclOperation.DESCRIBE,
    AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
}  # fmt: skip
NOT_ASKED: Final = -(2**31)


def bits(operations: set[AclOperation]) -> int:
    return sum(1 << op.value for op in operations)


def metadata(broker: EmbeddedBroker, version: int, topics: list[str], *, asked: bool) -> Any:
    with WireClient(broker.bootstrap_servers) as client:
        return client.request(
            ApiKey.METADATA,
            version,
            {
                "topics": [{"name": t} for t in topics],
                "allow_auto_topic_creation": False,
                "include_cluster_authorized_operations": asked,
                "include_topic_authorized_operations": asked,
            },
        )


@pytest.fixture
def admin(shoal_broker: EmbeddedBroker) -> AdminClient:
    return AdminClient({"bootstrap.servers": shoal_broker.bootstrap_servers})


@pytest.mark.parametrize("version", [8, 9, 10, 11, 12, 13])
def test_metadata(shoal_broker: EmbeddedBroker, admin: AdminClient, version: int) -> None:
    name, missing = unique(), unique("missing")
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(TIMEOUT_S)
    asked = metadata(shoal_broker, version, [name, missing], asked=True)
    # As Kafka: every topic asked for by name gets them, even one that does not exist.
    assert [t.topic_authorized_operations for t in asked.topics] == [bits(TOPIC_OPERATIONS)] * 2
    plain = metadata(shoal_broker, version, [name], asked=False)
    assert plain.topics[0].topic_authorized_operations == NOT_ASKED
    if version <= 10:  # v11+ leaves the cluster's to DescribeCluster (KIP-700)
        assert asked.cluster_authorized_operations == bits(CLUSTER_OPERATIONS)
        assert plain.cluster_authorized_operations == NOT_ASKED


def test_confluent_describe_cluster_and_topics(admin: AdminClient) -> None:
    name = unique()
    admin.create_topics([NewTopic(name, 2, 1)])[name].result(TIMEOUT_S)
    cluster = admin.describe_cluster(include_authorized_operations=True).result(TIMEOUT_S)
    assert set(cluster.authorized_operations) == CLUSTER_OPERATIONS
    assert admin.describe_cluster().result(TIMEOUT_S).authorized_operations is None
    futures = admin.describe_topics(TopicCollection([name]), include_authorized_operations=True)
    assert set(futures[name].result(TIMEOUT_S).authorized_operations) == TOPIC_OPERATIONS


def test_describe_groups(shoal_broker: EmbeddedBroker, admin: AdminClient) -> None:
    group, topic = unique("group"), unique()
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(TIMEOUT_S)
    consumer = Consumer({"bootstrap.servers": shoal_broker.bootstrap_servers, "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    finally:
        consumer.close()
    described = admin.describe_consumer_groups([group], include_authorized_operations=True)
    assert set(described[group].result(TIMEOUT_S).authorized_operations) == GROUP_OPERATIONS
    with WireClient(shoal_broker.bootstrap_servers) as client:
        for asked, expected in ((True, bits(GROUP_OPERATIONS)), (False, NOT_ASKED)):
            answer = client.request(
                ApiKey.DESCRIBE_GROUPS,
                6,
                {"groups": [group, "no-such-group"], "include_authorized_operations": asked},
            )
            known, unknown = answer.groups
            assert known.authorized_operations == expected
            # As Kafka: a group answered with an error (here GROUP_ID_NOT_FOUND) gets none.
            assert unknown.authorized_operations == NOT_ASKED
