"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs through confluent-kafka, and
DescribeConfigs v4 (synonyms, documentation, types) through the raw protocol."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    ResourceType,
)

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey, ErrorCode
from shoal.storage import FlushPolicy
from tests.broker.admin.support import (
    TIMEOUT_S,
    admin_for,
    kafka_error,
    partition_log,
    unique,
)
from tests.server.wire import WireClient

pytestmark = pytest.mark.integration

DEFAULT = ConfigSource.DEFAULT_CONFIG.value
TOPIC = ConfigSource.DYNAMIC_TOPIC_CONFIG.value
STATIC = ConfigSource.STATIC_BROKER_CONFIG.value


def create(admin: AdminClient, name: str, partitions: int = 1, **config: str) -> None:
    topic = NewTopic(name, partitions, 1, config=config)
    admin.create_topics([topic])[name].result(TIMEOUT_S)


def describe(admin: AdminClient, kind: ResourceType, name: str) -> dict[str, Any]:
    resource = ConfigResource(kind, name)
    result: dict[str, Any] = admin.describe_configs([resource])[resource].result(TIMEOUT_S)
    return result


def alter_legacy(admin: AdminClient, *resources: ConfigResource) -> dict[Any, Any]:
    """AlterConfigs (33), which confluent-kafka deprecates in favour of the incremental API but
    Kafka still serves, and older tools still send."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        futures: dict[Any, Any] = admin.alter_configs(list(resources))
    return futures


def incremental(admin: AdminClient, name: str, *changes: tuple[str, str | None, Any]) -> Any:
    entries = [ConfigEntry(n, v, incremental_operation=op) for n, v, op in changes]
    resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=entries)
    return admin.incremental_alter_configs([resource])[resource]


def test_topic_values_and_sources(shoal_broker_factory: Any) -> None:
    broker: EmbeddedBroker = shoal_broker_factory(message_max_bytes=2_000_000)
    admin = admin_for(broker)
    name = unique()
    create(admin, name, **{"retention.ms": "3600000"})
    configs = describe(admin, ResourceType.TOPIC, name)

    overridden, inherited, default = (
        configs["retention.ms"],
        configs["max.message.bytes"],
        configs["segment.bytes"],
    )
    assert (overridden.value, overridden.source, overridden.is_default) == ("3600000", TOPIC, False)
    # The broker's own setting (message.max.bytes) is the topic's default.
    assert (inherited.value, inherited.source) == ("2000000", STATIC)
    assert (default.value, default.source, default.is_default) == ("1073741824", DEFAULT, True)
    assert not any(entry.is_read_only or entry.is_sensitive for entry in configs.values())
    # Every Kafka topic config is known, so tools that list them all find them.
    assert {"cleanup.policy", "min.insync.replicas", "message.timestamp.type"} <= set(configs)


def test_broker_values_and_sources(shoal_broker_factory: Any) -> None:
    broker: EmbeddedBroker = shoal_broker_factory(num_partitions=3)
    configs = describe(admin_for(broker), ResourceType.BROKER, "1")
    assert (configs["node.id"].value, configs["node.id"].source) == ("1", STATIC)
    assert (configs["num.partitions"].value, configs["num.partitions"].source) == ("3", STATIC)
    segment = configs["log.segment.bytes"]
    assert (segment.value, segment.source) == ("1073741824", DEFAULT)
    # shoal's default flush policy (fsync before acks=all is answered) reads as flush.ms 0.
    assert configs["log.flush.interval.ms"].value == "0"
    # Read-only unless shoal applies a runtime change of it (see test_dynamic_broker_configs).
    assert configs["node.id"].is_read_only and configs["num.partitions"].is_read_only
    assert not segment.is_read_only and not configs["log.retention.ms"].is_read_only
    assert configs["compression.type"].is_read_only  # dynamic in Kafka; shoal does not apply it


def describe_v4(broker: EmbeddedBroker, *resources: dict[str, Any]) -> list[Any]:
    request = {
        "resources": list(resources),
        "include_synonyms": True,
        "include_documentation": True,
    }
    with WireClient(broker.bootstrap_servers) as client:
        return list(client.request(ApiKey.DESCRIBE_CONFIGS, 4, request).results)


def resource(kind: int, name: str, keys: list[str] | None = None) -> dict[str, Any]:
    return {"resource_type": kind, "resource_name": name, "configuration_keys": keys}


def test_v4_synonyms_types_documentation_and_key_filter(
    broker: EmbeddedBroker, admin: AdminClient
) -> None:
    name = unique()
    create(admin, name, **{"retention.ms": "5000"})
    (result,) = describe_v4(broker, resource(2, name, ["retention.ms", "cleanup.policy"]))
    assert result.error_code == ErrorCode.NONE
    entries = {entry.name: entry for entry in result.configs}
    assert set(entries) == {"retention.ms", "cleanup.policy"}

    retention = entries["retention.ms"]
    # log.retention.ms has no default in Kafka (log.retention.hours=168 supplies it), so the
    # override is the only synonym, as Kafka lists it.
    assert [(s.name, s.value, s.source) for s in retention.synonyms] == [
        ("retention.ms", "5000", TOPIC),
    ]
    assert retention.config_type == 5  # LONG
    assert retention.documentation is not None and "keep forever" in retention.documentation
    assert entries["cleanup.policy"].config_type == 7  # LIST


def test_v4_errors_per_resource(broker: EmbeddedBroker) -> None:
    missing, bad_name, other_broker, not_an_id, logger, cluster = describe_v4(
        broker,
        resource(2, unique()),
        resource(2, "no spaces allowed"),
        resource(4, "7"),
        resource(4, "--1"),
        resource(8, "1"),
        resource(4, ""),
    )
    assert missing.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert bad_name.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
    assert other_broker.error_code == not_an_id.error_code == ErrorCode.INVALID_REQUEST
    assert logger.error_code == ErrorCode.INVALID_REQUEST
    # The cluster-wide dynamic configs: a new cluster has min.insync.replicas, as Kafka 4.4.
    assert cluster.error_code == ErrorCode.NONE
    assert [(c.name, c.value, c.config_source) for c in cluster.configs] == [
        ("min.insync.replicas", "1", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
    ]


def test_incremental_set_reaches_the_live_log_and_survives_restart(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    name = unique()
    with EmbeddedBroker(data_dir) as broker:
        admin = admin_for(broker)
        create(admin, name, 2)
        incremental(admin, name, ("retention.ms", "60000", AlterConfigOpType.SET)).result(TIMEOUT_S)
        assert describe(admin, ResourceType.TOPIC, name)["retention.ms"].value == "60000"
        for partition in (0, 1):
            plog = partition_log(broker, name, partition)
            assert plog is not None and plog.config.retention_ms == 60000
    with EmbeddedBroker(data_dir) as broker:
        entry = describe(admin_for(broker), ResourceType.TOPIC, name)["retention.ms"]
        assert (entry.value, entry.source) == ("60000", TOPIC)
        plog = partition_log(broker, name, 1)
        assert plog is not None and plog.config.retention_ms == 60000


def test_incremental_delete_append_and_subtract(broker: EmbeddedBroker, admin: AdminClient) -> None:
    name = unique()
    create(admin, name, **{"retention.ms": "1000", "segment.ms": "2000"})
    incremental(
        admin,
        name,
        ("retention.ms", None, AlterConfigOpType.DELETE),
        ("cleanup.policy", "compact", AlterConfigOpType.APPEND),
    ).result(TIMEOUT_S)
    configs = describe(admin, ResourceType.TOPIC, name)
    assert (configs["retention.ms"].value, configs["retention.ms"].source) == (
        "604800000",
        DEFAULT,
    )
    assert configs["segment.ms"].value == "2000"  # untouched by an incremental change
    # APPEND starts from the default list, "delete".
    assert configs["cleanup.policy"].value == "delete,compact"

    incremental(admin, name, ("cleanup.policy", "delete", AlterConfigOpType.SUBTRACT)).result(
        TIMEOUT_S
    )
    assert describe(admin, ResourceType.TOPIC, name)["cleanup.policy"].value == "compact"
    # A compact-only topic is never cut by retention (Kafka applies none to it).
    plog = partition_log(broker, name, 0)
    assert plog is not None and (plog.config.retention_ms, plog.config.retention_bytes) == (-1, -1)

    # Subtracting the last item leaves an empty policy, which Kafka 4.4 keeps and reports.
    incremental(admin, name, ("cleanup.policy", "compact", AlterConfigOpType.SUBTRACT)).result(
        TIMEOUT_S
    )
    emptied = describe(admin, ResourceType.TOPIC, name)["cleanup.policy"]
    assert (emptied.value, emptied.source) == ("", TOPIC)
    plog = partition_log(broker, name, 0)
    assert plog is not None and (plog.config.retention_ms, plog.config.retention_bytes) == (-1, -1)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (("retention.ms", "10", AlterConfigOpType.APPEND), "APPEND"),
        (("retention.ms", "soon", AlterConfigOpType.SET), "retention.ms"),
        (("retention.msec", "10", AlterConfigOpType.SET), "unknown topic config"),
        (("cleanup.policy", "none", AlterConfigOpType.APPEND), "cleanup.policy"),
    ],
)
def test_incremental_refusals_change_nothing(
    admin: AdminClient, change: tuple[str, str, Any], named: str
) -> None:
    name = unique()
    create(admin, name, **{"segment.ms": "2000"})
    error = kafka_error(
        incremental(admin, name, ("segment.ms", "3000", AlterConfigOpType.SET), change)
    )
    assert error.code() == KafkaError.INVALID_CONFIG
    assert named in error.str()
    assert describe(admin, ResourceType.TOPIC, name)["segment.ms"].value == "2000"


def test_alter_configs_replaces_the_whole_override_set(
    broker: EmbeddedBroker, admin: AdminClient
) -> None:
    name = unique()
    create(admin, name, **{"retention.ms": "1000", "segment.ms": "2000"})
    resource = ConfigResource(ResourceType.TOPIC, name, set_config={"flush.ms": "250"})
    assert alter_legacy(admin, resource)[resource].result(TIMEOUT_S) is None

    configs = describe(admin, ResourceType.TOPIC, name)
    assert (configs["flush.ms"].value, configs["flush.ms"].source) == ("250", TOPIC)
    assert configs["retention.ms"].source == configs["segment.ms"].source == DEFAULT
    plog = partition_log(broker, name, 0)
    assert plog is not None
    assert (plog.config.flush_policy, plog.config.flush_interval_ms) == (FlushPolicy.INTERVAL, 250)
    assert plog.config.retention_ms == 604800000


def test_validate_only_alters_nothing(broker: EmbeddedBroker, admin: AdminClient) -> None:
    name = unique()
    create(admin, name, **{"retention.ms": "1000"})
    entry = ConfigEntry("retention.ms", "2000", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[entry])
    admin.incremental_alter_configs([resource], validate_only=True)[resource].result(TIMEOUT_S)
    assert describe(admin, ResourceType.TOPIC, name)["retention.ms"].value == "1000"
    plog = partition_log(broker, name, 0)
    assert plog is not None and plog.config.retention_ms == 1000


def test_unknown_topics_and_static_broker_configs_cannot_be_altered(admin: AdminClient) -> None:
    topic = ConfigResource(ResourceType.TOPIC, unique(), set_config={"retention.ms": "1"})
    broker = ConfigResource(ResourceType.BROKER, "1", set_config={"num.partitions": "3"})
    futures = alter_legacy(admin, topic, broker)
    assert kafka_error(futures[topic]).code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    error = kafka_error(futures[broker])
    assert error.code() == KafkaError.INVALID_REQUEST
    assert "Cannot update these configs dynamically: [num.partitions]" in error.str()
