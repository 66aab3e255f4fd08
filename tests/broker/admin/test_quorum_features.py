"""DescribeQuorum, the feature flags ApiVersions reports, and UpdateFeatures, through the raw
protocol: this node is the quorum's only voter and leader, and its feature levels are fixed."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey, ErrorCode
from tests.broker.admin.support import inner
from tests.server.wire import WireClient, host_port
from tests.support.broker import BrokerProcess

pytestmark = pytest.mark.integration

METADATA = "__cluster_metadata"


def request(broker: EmbeddedBroker, api_key: int, version: int, values: dict[str, Any]) -> Any:
    with WireClient(broker.bootstrap_servers) as client:
        return client.request(api_key, version, values)


def quorum(broker: EmbeddedBroker, topics: list[tuple[str, list[int]]], version: int = 2) -> Any:
    asked = [
        {"topic_name": name, "partitions": [{"partition_index": p} for p in partitions]}
        for name, partitions in topics
    ]
    return request(broker, ApiKey.DESCRIBE_QUORUM, version, {"topics": asked})


@pytest.mark.parametrize("version", [0, 1, 2])
def test_this_node_is_the_only_voter_and_the_leader(
    shoal_broker: EmbeddedBroker, version: int
) -> None:
    node_id = inner(shoal_broker).config.node_id
    response = quorum(shoal_broker, [(METADATA, [0])], version)
    assert response.error_code == ErrorCode.NONE
    ((topic_name, partition),) = [(t.topic_name, p) for t in response.topics for p in t.partitions]
    assert (topic_name, partition.partition_index, partition.error_code) == (METADATA, 0, 0)
    assert (partition.leader_id, partition.leader_epoch) == (node_id, 1)
    (voter,) = partition.current_voters
    assert voter.replica_id == node_id
    assert voter.log_end_offset == partition.high_watermark == 0
    assert list(partition.observers) == []
    if version >= 1:
        assert voter.last_fetch_timestamp == voter.last_caught_up_timestamp > 0
    if version >= 2:
        assert voter.replica_directory_id in (None, uuid.UUID(int=0))
        host, port = host_port(shoal_broker.bootstrap_servers)
        [(node, listeners)] = [(n.node_id, n.listeners) for n in response.nodes]
        assert node == node_id
        assert [(x.name, x.host, x.port) for x in listeners] == [("PLAINTEXT", host, port)]


@pytest.mark.parametrize(
    "topics",
    [[("t", [0])], [(METADATA, [1])], [(METADATA, [0, 1])], [(METADATA, [0]), (METADATA, [0])]],
    ids=repr,
)
def test_other_partitions_are_not_hosted(
    shoal_broker: EmbeddedBroker, topics: list[tuple[str, list[int]]]
) -> None:
    response = quorum(shoal_broker, topics)
    assert response.error_code == ErrorCode.NONE
    answered = [
        (t.topic_name, p.partition_index, p.error_code)
        for t in response.topics
        for p in t.partitions
    ]
    expected = [
        (name, index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        for name, indexes in topics
        for index in indexes
    ]
    assert answered == expected
    assert list(response.nodes) == []


def features(broker: EmbeddedBroker, version: int) -> Any:
    return request(
        broker,
        ApiKey.API_VERSIONS,
        version,
        {"client_software_name": "test", "client_software_version": "1"},
    )


@pytest.mark.parametrize("version", [3, 4])
def test_api_versions_reports_metadata_version_of_kafka_4_4(
    shoal_broker: EmbeddedBroker, version: int
) -> None:
    response = features(shoal_broker, version)
    supported = {f.name: (f.min_version, f.max_version) for f in response.supported_features}
    finalized = {
        f.name: (f.min_version_level, f.max_version_level) for f in response.finalized_features
    }
    assert supported["metadata.version"] == finalized["metadata.version"] == (33, 33)
    assert response.finalized_features_epoch >= 0
    # Transactions V2 is finalized; its supported range starts at 0, which (as Kafka 4.4 does,
    # KAFKA-17011) only v4+ lists.
    assert finalized["transaction.version"] == (2, 2)
    assert supported.get("transaction.version") == ((0, 2) if version >= 4 else None)
    assert "kraft.version" not in finalized
    assert supported.keys() - {"transaction.version"} == finalized.keys() - {"transaction.version"}


def update(broker: EmbeddedBroker, changes: list[tuple[str, int, int]], version: int = 1) -> Any:
    return request(
        broker,
        ApiKey.UPDATE_FEATURES,
        version,
        {
            "timeout": 5000,
            "validate_only": False,
            "feature_updates": [
                {"feature": f, "max_version_level": level, "upgrade_type": kind,
                 "allow_downgrade": kind != 1}
                for f, level, kind in changes
            ],
        },
    )  # fmt: skip


@pytest.mark.parametrize("version", [0, 1, 2])
@pytest.mark.parametrize("kind", [1, 2, 3])
def test_update_to_the_current_level_is_a_no_op(
    shoal_broker: EmbeddedBroker, version: int, kind: int
) -> None:
    response = update(shoal_broker, [("metadata.version", 33, kind)], version)
    assert (response.error_code, response.error_message) == (ErrorCode.NONE, None)
    if version < 2:
        assert [(r.feature, r.error_code) for r in response.results] == [
            ("metadata.version", ErrorCode.NONE)
        ]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ([("no.such.feature", 1, 1)], "does not support this feature"),
        ([("metadata.version", 34, 1)], "only supports version 33"),
        ([("metadata.version", 30, 2)], "only supports version 33"),
        ([("metadata.version", 0, 3)], "only supports version 33"),
        ([("metadata.version", 33, 9)], "does not support the given upgrade type"),
        ([("metadata.version", 33, 1), ("transaction.version", 1, 2)], "only supports version 2"),
    ],
    ids=repr,
)
def test_any_other_update_fails_the_whole_request(
    shoal_broker: EmbeddedBroker, changes: list[tuple[str, int, int]], reason: str
) -> None:
    response = update(shoal_broker, changes)
    assert response.error_code == ErrorCode.INVALID_UPDATE_VERSION
    assert reason in response.error_message
    assert list(response.results) == []
    finalized = {f.name: f.max_version_level for f in features(shoal_broker, 4).finalized_features}
    assert finalized["metadata.version"] == 33


def test_node_id_comes_from_the_broker_config(broker_process: Callable[..., BrokerProcess]) -> None:
    """Every answer that names this node uses its configured node.id, not a constant 1."""
    process = broker_process(broker_config={"node_id": 7})
    bootstrap = process.bootstrap_servers
    with WireClient(bootstrap) as client:
        assert client.metadata(["moved"]).topics[0].error_code == 0  # auto-created
        described = client.request(
            ApiKey.DESCRIBE_QUORUM,
            2,
            {"topics": [{"topic_name": METADATA, "partitions": [{"partition_index": 0}]}]},
        )
        resources = client.request(ApiKey.LIST_CONFIG_RESOURCES, 1, {"resource_types": [4]})
        moved = client.request(
            ApiKey.ALTER_PARTITION_REASSIGNMENTS,
            0,
            {"timeout": 5000, "topics": [{"name": "moved", "partitions": [
                {"partition_index": 0, "replicas": [7]},
                {"partition_index": 0, "replicas": [1]}]}]},
        )  # fmt: skip
    (partition,) = described.topics[0].partitions
    assert (partition.leader_id, [v.replica_id for v in partition.current_voters]) == (7, [7])
    assert [n.node_id for n in described.nodes] == [7]
    assert [r.resource_name for r in resources.config_resources] == ["7"]
    assert [p.error_code for p in moved.responses[0].partitions] == [
        ErrorCode.NONE,
        ErrorCode.INVALID_REPLICA_ASSIGNMENT,
    ]
