"""Every served version of every admin API answers a real request the client can decode.

Handlers build responses for all versions from one set of values; a field a version lacks, or
a value of the wrong shape, shows up here as a broker that closes the connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shoal.embedded import EmbeddedBroker
from shoal.protocol import SUPPORTED_APIS, ApiKey, ErrorCode
from tests.server.wire import WireClient
from tests.support.broker import create_topic

pytestmark = pytest.mark.integration

TOPIC = "versions"


def _topics_for_create(name: str) -> dict[str, Any]:
    topic = {"name": name, "num_partitions": 1, "replication_factor": 1, "assignments": [],
             "configs": [{"name": "retention.ms", "value": "1000"}]}  # fmt: skip
    return {"topics": [topic], "timeout": 5000, "validate_only": True}


def _config_resources(**extra: Any) -> list[dict[str, Any]]:
    return [{"resource_type": 2, "resource_name": TOPIC, **extra}]


# A minimal request of each API about the topic TOPIC, and how to read its one error code.
REQUESTS: dict[ApiKey, tuple[dict[str, Any], Any]] = {
    ApiKey.CREATE_TOPICS: (_topics_for_create("v-new"), lambda r: r.topics[0].error_code),
    ApiKey.DELETE_TOPICS: (
        {"topic_names": ["v-missing"], "topics": [{"name": "v-missing", "topic_id": None}],
         "timeout": 5000},
        lambda r: r.responses[0].error_code,
    ),
    ApiKey.CREATE_PARTITIONS: (
        {"topics": [{"name": TOPIC, "count": 3, "assignments": None}], "timeout": 5000,
         "validate_only": True},
        lambda r: r.results[0].error_code,
    ),
    ApiKey.DESCRIBE_CONFIGS: (
        {"resources": _config_resources(configuration_keys=None), "include_synonyms": True},
        lambda r: r.results[0].error_code,
    ),
    ApiKey.ALTER_CONFIGS: (
        {"resources": _config_resources(configs=[{"name": "retention.ms", "value": "5"}]),
         "validate_only": True},
        lambda r: r.responses[0].error_code,
    ),
    ApiKey.INCREMENTAL_ALTER_CONFIGS: (
        {"resources": _config_resources(
            configs=[{"name": "retention.ms", "config_operation": 0, "value": "5"}]),
         "validate_only": True},
        lambda r: r.responses[0].error_code,
    ),
    ApiKey.DELETE_RECORDS: (
        {"topics": [{"name": TOPIC, "partitions": [{"partition_index": 0, "offset": 0}]}],
         "timeout": 5000},
        lambda r: r.topics[0].partitions[0].error_code,
    ),
    ApiKey.OFFSET_FOR_LEADER_EPOCH: (
        {"replica_id": -1, "topics": [{"topic": TOPIC, "partitions": [
            {"partition": 0, "current_leader_epoch": -1, "leader_epoch": 0}]}]},
        lambda r: r.topics[0].partitions[0].error_code,
    ),
    ApiKey.DESCRIBE_CLUSTER: (
        {"include_cluster_authorized_operations": False},
        lambda r: r.error_code,
    ),
    ApiKey.DESCRIBE_TOPIC_PARTITIONS: (
        {"topics": [{"name": TOPIC}], "response_partition_limit": 10, "cursor": None},
        lambda r: r.topics[0].error_code,
    ),
    ApiKey.DESCRIBE_LOG_DIRS: (
        {"topics": [{"topic": TOPIC, "partitions": [0]}]},
        lambda r: r.results[0].error_code,
    ),
    ApiKey.ALTER_REPLICA_LOG_DIRS: (
        {"dirs": [{"path": "/not/a/log/dir", "topics": [{"name": TOPIC, "partitions": [0]}]}]},
        lambda r: r.results[0].partitions[0].error_code,
    ),
    ApiKey.ELECT_LEADERS: (
        {"election_type": 0, "topic_partitions": [{"topic": TOPIC, "partitions": [0]}],
         "timeout": 5000},
        lambda r: r.replica_election_results[0].partition_result[0].error_code,
    ),
    ApiKey.ALTER_PARTITION_REASSIGNMENTS: (
        {"timeout": 5000, "allow_replication_factor_change": True,
         "topics": [{"name": TOPIC, "partitions": [{"partition_index": 0, "replicas": [1]}]}]},
        lambda r: r.responses[0].partitions[0].error_code,
    ),
    ApiKey.LIST_PARTITION_REASSIGNMENTS: (
        {"timeout": 5000, "topics": [{"name": TOPIC, "partition_indexes": [0]}]},
        lambda r: r.error_code,
    ),
    ApiKey.DESCRIBE_QUORUM: (
        {"topics": [{"topic_name": "__cluster_metadata", "partitions": [{"partition_index": 0}]}]},
        lambda r: r.topics[0].partitions[0].error_code,
    ),
    ApiKey.UPDATE_FEATURES: (
        {"timeout": 5000, "validate_only": True, "feature_updates": [
            {"feature": "metadata.version", "max_version_level": 33, "upgrade_type": 1,
             "allow_downgrade": False}]},
        lambda r: r.error_code,
    ),
    ApiKey.DESCRIBE_PRODUCERS: (
        {"topics": [{"name": TOPIC, "partition_indexes": [0]}]},
        lambda r: r.topics[0].partitions[0].error_code,
    ),
    ApiKey.LIST_CONFIG_RESOURCES: ({"resource_types": []}, lambda r: r.error_code),
}  # fmt: skip

# The error a request above gets when its version is answered right; none unless listed.
EXPECTED_ERRORS: dict[ApiKey, ErrorCode] = {
    ApiKey.DELETE_TOPICS: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    ApiKey.ALTER_REPLICA_LOG_DIRS: ErrorCode.LOG_DIR_NOT_FOUND,
    ApiKey.ELECT_LEADERS: ErrorCode.ELECTION_NOT_NEEDED,
}

CASES = [
    pytest.param(key, version, id=f"{key.name}-v{version}")
    for key in REQUESTS
    for version in range(SUPPORTED_APIS[key].min_version, SUPPORTED_APIS[key].max_version + 1)
]


@pytest.fixture(scope="module")
def versions_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(str(tmp_path_factory.mktemp("versions"))) as broker:
        create_topic(broker, TOPIC, 2)
        yield broker


@pytest.mark.parametrize(("api_key", "version"), CASES)
def test_every_version_answers(
    versions_broker: EmbeddedBroker, api_key: ApiKey, version: int
) -> None:
    values, error_of = REQUESTS[api_key]
    with WireClient(versions_broker.bootstrap_servers) as client:
        response = client.request(api_key, version, values)
    assert error_of(response) == EXPECTED_ERRORS.get(api_key, ErrorCode.NONE)
