"""Dynamic broker configs: AlterConfigs and IncrementalAlterConfigs on the BROKER resource,
cluster-wide (resource name "") and for this broker (its node id), against an embedded broker.

Requests to the cluster-wide resource go through the raw protocol client: librdkafka refuses a
ConfigResource with an empty name. Per-broker ones go through confluent-kafka where it can.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import pytest
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    ResourceType,
)

from shoal.broker.dynamic_config_store import BROKER_CONFIGS_FILE
from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey, ErrorCode
from tests.broker.admin.support import TIMEOUT_S, admin_for, partition_log, unique
from tests.server.wire import WireClient, batch_of

pytestmark = pytest.mark.integration

TOPIC, BROKER = 2, 4
CLUSTER: Final = ""
NODE: Final = "1"
SET, DELETE, APPEND = 0, 1, 2
WEEK_MS: Final = 7 * 24 * 3600 * 1000

DYNAMIC_BROKER = ConfigSource.DYNAMIC_BROKER_CONFIG.value
DYNAMIC_DEFAULT = ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
TOPIC_SOURCE = ConfigSource.DYNAMIC_TOPIC_CONFIG.value
DEFAULT = ConfigSource.DEFAULT_CONFIG.value


def alter(
    broker: EmbeddedBroker,
    name: str,
    *ops: tuple[str, int, str | None],
    validate_only: bool = False,
) -> tuple[int, str | None]:
    """IncrementalAlterConfigs of one BROKER resource: (error code, message)."""
    request = {
        "resources": [
            {
                "resource_type": BROKER,
                "resource_name": name,
                "configs": [{"name": n, "config_operation": o, "value": v} for n, o, v in ops],
            }
        ],
        "validate_only": validate_only,
    }
    with WireClient(broker.bootstrap_servers) as client:
        (response,) = client.request(ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, request).responses
    return response.error_code, response.error_message


def alter_legacy(broker: EmbeddedBroker, name: str, configs: dict[str, str]) -> int:
    """AlterConfigs v2 of one BROKER resource (the whole level): its error code."""
    request = {
        "resources": [
            {
                "resource_type": BROKER,
                "resource_name": name,
                "configs": [{"name": n, "value": v} for n, v in configs.items()],
            }
        ],
        "validate_only": False,
    }
    with WireClient(broker.bootstrap_servers) as client:
        (response,) = client.request(ApiKey.ALTER_CONFIGS, 2, request).responses
    return int(response.error_code)


def described(broker: EmbeddedBroker, kind: int, name: str, keys: list[str]) -> dict[str, Any]:
    """{config: (value, source, [(synonym, value, source)])} from DescribeConfigs v4."""
    request = {
        "resources": [{"resource_type": kind, "resource_name": name, "configuration_keys": keys}],
        "include_synonyms": True,
        "include_documentation": False,
    }
    with WireClient(broker.bootstrap_servers) as client:
        (result,) = client.request(ApiKey.DESCRIBE_CONFIGS, 4, request).results
    assert result.error_code == ErrorCode.NONE, result
    return {
        e.name: (e.value, e.config_source, [(s.name, s.value, s.source) for s in e.synonyms])
        for e in result.configs
    }


def create(admin: AdminClient, partitions: int = 1, **config: str) -> str:
    name = unique()
    admin.create_topics([NewTopic(name, partitions, 1, config=config)])[name].result(TIMEOUT_S)
    return name


def retention_ms(broker: EmbeddedBroker, topic: str, partition: int = 0) -> int:
    plog = partition_log(broker, topic, partition)
    assert plog is not None
    return plog.config.retention_ms


def test_a_cluster_wide_change_reaches_every_topic_without_restart(
    shoal_broker: EmbeddedBroker,
) -> None:
    broker = shoal_broker
    admin = admin_for(broker)
    plain, overridden = create(admin, 2), create(admin, **{"retention.ms": "5000"})
    assert retention_ms(broker, plain) == WEEK_MS

    assert alter(broker, CLUSTER, ("log.retention.ms", SET, "60000")) == (ErrorCode.NONE, None)
    # Every partition of a topic without its own retention.ms follows at once; an override wins.
    assert [retention_ms(broker, plain, p) for p in (0, 1)] == [60000, 60000]
    assert retention_ms(broker, overridden) == 5000
    assert retention_ms(broker, create(admin)) == 60000  # and so does a topic created later
    assert described(broker, TOPIC, plain, ["retention.ms"])["retention.ms"] == (
        "60000",
        DYNAMIC_DEFAULT,
        [("log.retention.ms", "60000", DYNAMIC_DEFAULT), ("log.retention.hours", "168", DEFAULT)],
    )

    # This broker's own level wins over the cluster-wide one.
    entry = ConfigEntry("log.retention.ms", "30000", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.BROKER, NODE, incremental_configs=[entry])
    admin.incremental_alter_configs([resource])[resource].result(TIMEOUT_S)
    assert retention_ms(broker, plain) == 30000
    value, source, _synonyms = described(broker, TOPIC, plain, ["retention.ms"])["retention.ms"]
    assert (value, source) == ("30000", DYNAMIC_BROKER)

    # Deleting both brings back the built-in week.
    assert alter(broker, NODE, ("log.retention.ms", DELETE, None))[0] == ErrorCode.NONE
    assert alter(broker, CLUSTER, ("log.retention.ms", DELETE, None))[0] == ErrorCode.NONE
    assert retention_ms(broker, plain) == WEEK_MS
    assert described(broker, TOPIC, plain, ["retention.ms"])["retention.ms"] == (
        str(WEEK_MS),
        DEFAULT,
        [],
    )


def test_a_cluster_wide_cleanup_policy_stops_retention(shoal_broker: EmbeddedBroker) -> None:
    broker = shoal_broker
    topic = create(admin_for(broker))
    assert alter(broker, CLUSTER, ("log.cleanup.policy", SET, "compact"))[0] == ErrorCode.NONE
    plog = partition_log(broker, topic, 0)
    assert plog is not None and (plog.config.retention_ms, plog.config.retention_bytes) == (-1, -1)
    assert alter(broker, CLUSTER, ("log.cleanup.policy", DELETE, None))[0] == ErrorCode.NONE
    assert retention_ms(broker, topic) == WEEK_MS


def test_dynamic_configs_survive_a_restart(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    with EmbeddedBroker(data_dir) as broker:
        topic = create(admin_for(broker))
        assert alter(broker, CLUSTER, ("log.retention.ms", SET, "60000"))[0] == ErrorCode.NONE
        assert alter(broker, NODE, ("log.segment.bytes", SET, "2097152"))[0] == ErrorCode.NONE
    saved = json.loads((Path(data_dir) / BROKER_CONFIGS_FILE).read_text())
    assert saved["cluster"] == {"log.retention.ms": "60000", "min.insync.replicas": "1"}
    assert saved["brokers"] == {NODE: {"log.segment.bytes": "2097152"}}

    with EmbeddedBroker(data_dir) as broker:
        configs = described(broker, TOPIC, topic, ["retention.ms", "segment.bytes"])
        assert configs["retention.ms"][:2] == ("60000", DYNAMIC_DEFAULT)
        assert configs["segment.bytes"][:2] == ("2097152", DYNAMIC_BROKER)
        plog = partition_log(broker, topic, 0)
        assert plog is not None
        assert (plog.config.retention_ms, plog.config.segment_bytes) == (60000, 2097152)
        cluster = described(broker, BROKER, CLUSTER, [])
        assert {name: v[:2] for name, v in cluster.items()} == {
            "log.retention.ms": ("60000", DYNAMIC_DEFAULT),
            "min.insync.replicas": ("1", DYNAMIC_DEFAULT),
        }


@pytest.mark.parametrize(
    ("name", "change", "code", "words"),
    [
        (NODE, ("no.such.config", SET, "1"), ErrorCode.INVALID_REQUEST, "Unknown broker configs"),
        (NODE, ("log.dirs", SET, "/x"), ErrorCode.INVALID_REQUEST,
         "Cannot update these configs dynamically: [log.dirs]"),
        (CLUSTER, ("num.partitions", SET, "3"), ErrorCode.INVALID_REQUEST,
         "Cannot update these configs dynamically: [num.partitions]"),
        (NODE, ("compression.type", SET, "gzip"), ErrorCode.INVALID_REQUEST, "does not apply"),
        (NODE, ("log.retention.ms", SET, "soon"), ErrorCode.INVALID_REQUEST,
         "Invalid value soon for configuration log.retention.ms"),
        (CLUSTER, ("log.cleanup.policy", SET, "forever"), ErrorCode.INVALID_REQUEST,
         "log.cleanup.policy"),
        (NODE, ("log.retention.ms", APPEND, "5"), ErrorCode.INVALID_CONFIG,
         "append is not allowed for config key: log.retention.ms"),
        (NODE, ("log.retention.ms", SET, None), ErrorCode.INVALID_REQUEST, "Null value"),
        ("7", ("log.retention.ms", SET, "1000"), ErrorCode.INVALID_REQUEST, "broker 1"),
        (CLUSTER, ("min.insync.replicas", DELETE, None), ErrorCode.INVALID_CONFIG,
         "min.insync.replicas cannot be removed"),
    ],
)  # fmt: skip
def test_refusals_change_nothing(
    tmp_path: Path, name: str, change: tuple[str, int, str | None], code: int, words: str
) -> None:
    data_dir = tmp_path / "data"
    with EmbeddedBroker(str(data_dir)) as broker:
        topic = create(admin_for(broker))
        # A good change in the same resource must not happen either.
        error, message = alter(broker, name, ("log.segment.bytes", SET, "2097152"), change)
        assert error == code
        assert message is not None and words in message
        assert not (data_dir / BROKER_CONFIGS_FILE).exists()
        assert set(described(broker, BROKER, CLUSTER, [])) == {"min.insync.replicas"}
        segment = described(broker, BROKER, NODE, ["log.segment.bytes"])["log.segment.bytes"]
        assert segment[:2] == ("1073741824", DEFAULT)
        plog = partition_log(broker, topic, 0)
        assert plog is not None and plog.config.segment_bytes == 1024**3


def test_validate_only_changes_nothing(shoal_broker: EmbeddedBroker) -> None:
    broker = shoal_broker
    topic = create(admin_for(broker))
    change = ("log.retention.ms", SET, "60000")
    assert alter(broker, CLUSTER, change, validate_only=True) == (ErrorCode.NONE, None)
    assert retention_ms(broker, topic) == WEEK_MS
    assert "log.retention.ms" not in described(broker, BROKER, CLUSTER, [])
    # validate_only still refuses what a real change would refuse.
    bad = ("log.retention.ms", SET, "soon")
    assert alter(broker, CLUSTER, bad, validate_only=True)[0] == ErrorCode.INVALID_REQUEST


def test_legacy_alter_configs_replaces_the_whole_level(shoal_broker: EmbeddedBroker) -> None:
    broker = shoal_broker
    assert alter_legacy(broker, NODE, {"log.retention.ms": "60000"}) == ErrorCode.NONE
    assert alter_legacy(broker, NODE, {"log.segment.bytes": "2097152"}) == ErrorCode.NONE
    node = described(broker, BROKER, NODE, ["log.retention.ms", "log.segment.bytes"])
    assert node["log.retention.ms"][:2] == (None, DEFAULT)  # left out: gone back
    assert node["log.segment.bytes"][:2] == ("2097152", DYNAMIC_BROKER)
    # The cluster level must keep min.insync.replicas, as in Kafka 4.4.
    assert alter_legacy(broker, CLUSTER, {"log.retention.ms": "1"}) == ErrorCode.INVALID_CONFIG
    assert alter_legacy(broker, NODE, {}) == ErrorCode.NONE
    assert described(broker, BROKER, NODE, ["log.segment.bytes"])["log.segment.bytes"][1] == DEFAULT


def test_a_dynamic_message_max_bytes_limits_produce(shoal_broker: EmbeddedBroker) -> None:
    broker = shoal_broker
    topic = create(admin_for(broker))
    assert alter(broker, CLUSTER, ("message.max.bytes", SET, "1000"))[0] == ErrorCode.NONE
    with WireClient(broker.bootstrap_servers) as client:
        too_big = client.produce(topic, 0, batch_of([b"x" * 2000]), acks=1)
        assert too_big.error_code == ErrorCode.MESSAGE_TOO_LARGE
        assert alter(broker, CLUSTER, ("message.max.bytes", DELETE, None))[0] == ErrorCode.NONE
        assert client.produce(topic, 0, batch_of([b"x" * 2000]), acks=1).error_code == 0


def test_a_dynamic_timestamp_type_stamps_appends(shoal_broker: EmbeddedBroker) -> None:
    broker = shoal_broker
    topic = create(admin_for(broker))
    with WireClient(broker.bootstrap_servers) as client:
        # -1 (CreateTime kept) reads back as None.
        assert client.produce(topic, 0, batch_of([b"a"]), acks=1).log_append_time is None
        change = ("log.message.timestamp.type", SET, "LogAppendTime")
        assert alter(broker, NODE, change)[0] == ErrorCode.NONE
        assert client.produce(topic, 0, batch_of([b"b"]), acks=1).log_append_time is not None
