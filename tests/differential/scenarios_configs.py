"""Differential scenarios for configs, kept out of scenarios.py (which other work owns):

- ``subtract_to_empty_list``: IncrementalAlterConfigs SUBTRACT empties a topic's cleanup.policy
  (Kafka 4.4 keeps and reports ""), APPEND refills it, APPEND on a non-list config is refused.
- ``broker_setting_on_topic``: a topic's retention.ms and min.insync.replicas, with their
  sources and synonyms, before and after log.retention.ms is set cluster-wide, then for the
  broker, then deleted again.
- ``broker_configs``: DescribeConfigs of the BROKER resource (values, sources, read-only flags,
  synonyms), a dynamic config set per broker, read back, refused changes, deleted back.
- ``min_insync_replicas_above_one``: acks=all to a single-replica topic asking for more in-sync
  replicas than it has.

confluent-kafka's AdminClient is the client, except where it cannot be: librdkafka refuses a
ConfigResource with an empty name, so the cluster-wide resource ("") goes through the raw
protocol client, and so do the synonym lists (confluent-kafka returns them as a dict keyed by
name, which loses the order and the same-name entries that tell the levels apart).

Kafka applies a dynamic config change a moment after it answers (the controller commits it, the
broker applies it from the metadata log), so each read after a change waits until the change
shows, bounded by TIMEOUT_S. Every dynamic broker config a scenario sets is deleted again in a
``finally``: the Kafka peer is shared by the whole session.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any, Final, TypeVar

import confluent_kafka as ck
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from shoal.protocol import ApiKey
from tests.differential.scenarios import TIMEOUT_S, Result, admin, create_topic, error_name
from tests.server.wire import WireClient, batch_of

T = TypeVar("T")

RESOURCE_TOPIC: Final = 2
RESOURCE_BROKER: Final = 4
CLUSTER: Final = ""
"""The BROKER resource name of the cluster-wide dynamic configs."""
NODE: Final = "1"
"""Both brokers run with node.id 1 (the Kafka peer's server.properties, shoal's default)."""
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def settled(read: Callable[[], T], done: Callable[[T], bool]) -> T:
    """``read()`` once it satisfies ``done``, waiting for Kafka to apply a change; the last
    value read if TIMEOUT_S passes first (the comparison then shows the difference)."""
    deadline = time.monotonic() + TIMEOUT_S
    value = read()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.1)
        value = read()
    return value


# --- clients -----------------------------------------------------------------------------------


def described(
    bootstrap: str, kind: int, name: str, keys: list[str] | None = None
) -> dict[str, Any]:
    """DescribeConfigs v4 with synonyms: {config: (value, source, read_only, synonyms)}."""
    request = {
        "resources": [{"resource_type": kind, "resource_name": name, "configuration_keys": keys}],
        "include_synonyms": True,
        "include_documentation": False,
    }
    with WireClient(bootstrap) as client:
        (result,) = client.request(ApiKey.DESCRIBE_CONFIGS, 4, request).results
    assert result.error_code == 0, result
    return {
        entry.name: (
            entry.value,
            entry.config_source,
            entry.read_only,
            [(s.name, s.value, s.source) for s in entry.synonyms],
        )
        for entry in result.configs
    }


def wire_alter(bootstrap: str, kind: int, name: str, *ops: tuple[str, int, str | None]) -> str:
    """IncrementalAlterConfigs v1 of one resource; "ok" or the error's name."""
    request = {
        "resources": [
            {
                "resource_type": kind,
                "resource_name": name,
                "configs": [{"name": n, "config_operation": o, "value": v} for n, o, v in ops],
            }
        ],
        "validate_only": False,
    }
    with WireClient(bootstrap) as client:
        (response,) = client.request(ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, request).responses
    return "ok" if response.error_code == 0 else _code_name(response.error_code)


def _code_name(code: int) -> str:
    return str(ck.KafkaError(code).name())


def incremental(
    bootstrap: str, kind: ResourceType, name: str, *ops: tuple[str, str | None, Any]
) -> str:
    """confluent-kafka's incremental_alter_configs of one resource; "ok" or the error's name."""
    entries = [ConfigEntry(n, v, incremental_operation=op) for n, v, op in ops]
    resource = ConfigResource(kind, name, incremental_configs=entries)
    client = admin(bootstrap)  # kept alive until the future resolves
    try:
        client.incremental_alter_configs([resource])[resource].result(TIMEOUT_S)
        return "ok"
    except ck.KafkaException as exc:
        return error_name(exc)


def legacy_alter(bootstrap: str, kind: ResourceType, name: str, configs: dict[str, str]) -> str:
    """confluent-kafka's (deprecated) alter_configs of one resource; "ok" or the error's name."""
    resource = ConfigResource(kind, name, set_config=configs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        client = admin(bootstrap)  # kept alive until the future resolves
        futures = client.alter_configs([resource])
    try:
        futures[resource].result(TIMEOUT_S)
        return "ok"
    except ck.KafkaException as exc:
        return error_name(exc)


def confluent_view(bootstrap: str, kind: ResourceType, name: str, keys: list[str]) -> Result:
    """What confluent-kafka's describe_configs shows: value, source, default and read-only."""
    resource = ConfigResource(kind, name)
    client = admin(bootstrap)  # kept alive until the future resolves
    entries = client.describe_configs([resource])[resource].result(TIMEOUT_S)
    return {
        key: (entries[key].value, entries[key].source, entries[key].is_default,
              entries[key].is_read_only)
        for key in keys
    }  # fmt: skip


# --- scenarios ---------------------------------------------------------------------------------


def subtract_to_empty_list(bootstrap: str) -> Result:
    topic = create_topic(bootstrap)
    tkind = ResourceType.TOPIC

    def policy() -> Any:
        return described(bootstrap, RESOURCE_TOPIC, topic, ["cleanup.policy"])["cleanup.policy"]

    out: Result = {"initial": policy()}
    out["subtract_delete"] = incremental(
        bootstrap, tkind, topic, ("cleanup.policy", "delete", AlterConfigOpType.SUBTRACT)
    )
    out["emptied"] = settled(policy, lambda p: p[0] == "")
    out["emptied_confluent"] = confluent_view(bootstrap, tkind, topic, ["cleanup.policy"])
    out["subtract_again"] = incremental(
        bootstrap, tkind, topic, ("cleanup.policy", "delete", AlterConfigOpType.SUBTRACT)
    )
    out["still_empty"] = policy()
    out["append_compact"] = incremental(
        bootstrap, tkind, topic, ("cleanup.policy", "compact", AlterConfigOpType.APPEND)
    )
    out["appended"] = settled(policy, lambda p: p[0] == "compact")
    out["append_to_long"] = incremental(
        bootstrap, tkind, topic, ("retention.ms", "5", AlterConfigOpType.APPEND)
    )
    out["subtract_from_long"] = incremental(
        bootstrap, tkind, topic, ("retention.ms", "5", AlterConfigOpType.SUBTRACT)
    )
    out["set_empty"] = incremental(
        bootstrap, tkind, topic, ("cleanup.policy", "", AlterConfigOpType.SET)
    )
    out["set_empty_read"] = settled(policy, lambda p: p[0] == "")
    created = create_topic(bootstrap, **{"cleanup.policy": ""})
    out["created_empty"] = described(bootstrap, RESOURCE_TOPIC, created, ["cleanup.policy"])
    return out


TOPIC_KEYS: Final = ["retention.ms", "min.insync.replicas", "segment.bytes"]


def broker_setting_on_topic(bootstrap: str) -> Result:
    topic = create_topic(bootstrap)

    def topic_view() -> dict[str, Any]:
        return described(bootstrap, RESOURCE_TOPIC, topic, TOPIC_KEYS)

    def retention_is(value: str) -> Callable[[dict[str, Any]], bool]:
        return lambda view: bool(view["retention.ms"][0] == value)

    out: Result = {"before": topic_view()}
    out["before_confluent"] = confluent_view(bootstrap, ResourceType.TOPIC, topic, TOPIC_KEYS)
    try:
        out["set_cluster"] = wire_alter(
            bootstrap, RESOURCE_BROKER, CLUSTER, ("log.retention.ms", SET, "3600000")
        )
        out["after_cluster"] = settled(topic_view, retention_is("3600000"))
        out["after_cluster_confluent"] = confluent_view(
            bootstrap, ResourceType.TOPIC, topic, TOPIC_KEYS
        )
        out["set_broker"] = incremental(
            bootstrap,
            ResourceType.BROKER,
            NODE,
            ("log.retention.ms", "7200000", AlterConfigOpType.SET),
        )
        out["after_broker"] = settled(topic_view, retention_is("7200000"))
        out["set_topic"] = incremental(
            bootstrap, ResourceType.TOPIC, topic, ("retention.ms", "1000", AlterConfigOpType.SET)
        )
        out["after_topic"] = settled(topic_view, retention_is("1000"))
    finally:
        out["delete_broker"] = incremental(
            bootstrap, ResourceType.BROKER, NODE, ("log.retention.ms", None, DELETE_OP)
        )
        out["delete_cluster"] = wire_alter(
            bootstrap, RESOURCE_BROKER, CLUSTER, ("log.retention.ms", DELETE, None)
        )
    out["delete_topic_override"] = incremental(
        bootstrap, ResourceType.TOPIC, topic, ("retention.ms", None, DELETE_OP)
    )
    out["after_deletes"] = settled(topic_view, retention_is("604800000"))
    return out


DELETE_OP: Final = AlterConfigOpType.DELETE

BROKER_KEYS: Final = [
    "node.id",
    "auto.create.topics.enable",
    "log.retention.ms",
    "log.retention.hours",
    "log.segment.bytes",
    "log.cleanup.policy",
    "message.max.bytes",
    "min.insync.replicas",
]
"""Configs both brokers have set alike. Not num.partitions: the Kafka peer's server.properties
sets it to its default, which shoal (whose settings do not record what was given explicitly)
reports as DEFAULT_CONFIG; not log.dirs or advertised.listeners, whose values differ."""
READ_ONLY_KEYS: Final = ["log.dirs", "advertised.listeners", "num.partitions", "broker.id"]


def broker_configs(bootstrap: str) -> Result:
    def node_view() -> dict[str, Any]:
        return described(bootstrap, RESOURCE_BROKER, NODE, BROKER_KEYS)

    def segment_is(value: str | None) -> Callable[[dict[str, Any]], bool]:
        return lambda view: bool(view["log.segment.bytes"][0] == value)

    read_only = described(bootstrap, RESOURCE_BROKER, NODE, READ_ONLY_KEYS)
    out: Result = {
        "node": node_view(),
        "node_confluent": confluent_view(bootstrap, ResourceType.BROKER, NODE, BROKER_KEYS),
        "read_only": {key: ro for key, (_v, _source, ro, _s) in read_only.items()},
        "operator_set": {
            key: read_only[key][1] for key in ("log.dirs", "advertised.listeners", "broker.id")
        },
        "cluster": described(bootstrap, RESOURCE_BROKER, CLUSTER),
    }
    bkind = ResourceType.BROKER
    # Refused, and nothing changes.
    out["set_static"] = incremental(bootstrap, bkind, NODE, ("log.dirs", "/x", SET_OP))
    out["set_hours"] = incremental(bootstrap, bkind, NODE, ("log.retention.hours", "1", SET_OP))
    out["set_bad_value"] = incremental(bootstrap, bkind, NODE, ("log.segment.bytes", "x", SET_OP))
    out["set_too_small"] = incremental(bootstrap, bkind, NODE, ("log.segment.bytes", "5", SET_OP))
    out["append_to_int"] = incremental(
        bootstrap, bkind, NODE, ("log.segment.bytes", "5", AlterConfigOpType.APPEND)
    )
    # confluent-kafka sends a BROKER resource to the broker it names, and there is no broker 7.
    out["other_broker"] = wire_alter(
        bootstrap, RESOURCE_BROKER, "7", ("log.segment.bytes", SET, "2097152")
    )
    out["legacy_static"] = legacy_alter(bootstrap, bkind, NODE, {"num.partitions": "3"})
    out["delete_cluster_min_isr"] = wire_alter(
        bootstrap, RESOURCE_BROKER, CLUSTER, ("min.insync.replicas", DELETE, None)
    )
    out["unchanged"] = node_view()
    try:
        out["set_segment"] = incremental(
            bootstrap, bkind, NODE, ("log.segment.bytes", "2097152", SET_OP)
        )
        out["segment_set"] = settled(node_view, segment_is("2097152"))
        out["append_policy"] = incremental(
            bootstrap, bkind, NODE, ("log.cleanup.policy", "compact", AlterConfigOpType.APPEND)
        )
        out["policy_appended"] = settled(
            node_view, lambda v: v["log.cleanup.policy"][0] == "delete,compact"
        )
        out["cluster_while_set"] = described(bootstrap, RESOURCE_BROKER, CLUSTER)
    finally:
        out["delete_back"] = incremental(
            bootstrap,
            bkind,
            NODE,
            ("log.segment.bytes", None, DELETE_OP),
            ("log.cleanup.policy", None, DELETE_OP),
        )
    out["deleted"] = settled(
        node_view, lambda v: segment_is("1073741824")(v) and v["log.cleanup.policy"][0] == "delete"
    )
    return out


SET_OP: Final = AlterConfigOpType.SET


def min_insync_replicas_above_one(bootstrap: str) -> Result:
    """Kafka caps min.insync.replicas at the replication factor, so on a single-replica topic
    acks=all is not refused even when it asks for more."""
    topic = create_topic(bootstrap, **{"min.insync.replicas": "3"})
    out: Result = {}
    with WireClient(bootstrap) as client:
        for acks in (-1, 1):
            response = settled(
                lambda a=acks: client.produce(topic, 0, batch_of([b"v"]), acks=a),
                lambda r: r.error_code != ck.KafkaError.NOT_LEADER_FOR_PARTITION,
            )
            out[f"acks={acks}"] = (_code_name(response.error_code), response.base_offset)
    return out


SCENARIOS: dict[str, Callable[[str], Result]] = {
    "subtract_to_empty_list": subtract_to_empty_list,
    "broker_setting_on_topic": broker_setting_on_topic,
    "broker_configs": broker_configs,
    "min_insync_replicas_above_one": min_insync_replicas_above_one,
}
