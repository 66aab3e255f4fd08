"""Differential scenarios for the admin APIs a single node answers (DescribeLogDirs,
AlterReplicaLogDirs, ElectLeaders, partition reassignments, DescribeQuorum, DescribeProducers,
features, ListConfigResources), run unchanged against Apache Kafka and shoal.

Clients: confluent-kafka's elect_leaders, kafka-python's admin client (describe_log_dirs,
list_partition_reassignments, describe_features...), and raw requests through the test wire
client where a detail matters that no client shows (null lists, error messages, every version).

Each scenario returns what two correct single-node brokers agree on. Left out, because they are
choices each broker makes: paths and ports, producer ids, and the metadata log's offsets (Kafka's
grows with every metadata record; shoal keeps no such log and reports 0). Both brokers share their
session with other scenarios, so results are restricted to the topics a scenario creates.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import confluent_kafka as ck
from confluent_kafka import ElectionType

from tests.differential.scenarios import TIMEOUT_S, Result, admin, create_topic, unique
from tests.server.wire import WireClient

with warnings.catch_warnings():
    # kafka-python's schema loader uses an importlib.resources call deprecated since 3.11.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient

METADATA_TOPIC = "__cluster_metadata"
NODE_ID = 1


def request(bootstrap: str, api_key: int, version: int, values: dict[str, Any]) -> Any:
    with WireClient(bootstrap) as client:
        return client.request(api_key, version, values)


def kp_admin(bootstrap: str) -> Any:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(TIMEOUT_S * 1000))


def log_dir(bootstrap: str, topic: str | None = None) -> Any:
    asked = None if topic is None else [{"topic": topic, "partitions": [0]}]
    (result,) = request(bootstrap, 35, 4, {"topics": asked}).results
    return result


def hosted_topic(bootstrap: str, partitions: int = 1) -> str:
    """A new topic, once this broker hosts all its partitions (Kafka's replica manager learns of
    a topic from the metadata log a moment after CreateTopics answers)."""
    topic = create_topic(bootstrap, partitions)
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        listed = {
            p.partition_index
            for t in request(bootstrap, 35, 4, {"topics": [
                {"topic": topic, "partitions": list(range(partitions))}]}).results[0].topics
            for p in t.partitions
        }  # fmt: skip
        if len(listed) == partitions:
            return topic
        time.sleep(0.1)
    raise AssertionError(f"{topic} not hosted after {TIMEOUT_S}s")


def produce_one_by_one(bootstrap: str, topic: str, count: int, **config: Any) -> None:
    """``count`` records, one batch each: batches of the same bytes on both brokers."""
    producer = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, **config})
    for i in range(count):
        producer.produce(topic, f"value-{i}".encode(), partition=0, timestamp=1_700_000_000_000 + i)
        assert producer.flush(TIMEOUT_S) == 0


# --- log dirs ----------------------------------------------------------------------------------


def log_dirs(bootstrap: str) -> Result:
    topic = hosted_topic(bootstrap, partitions=2)
    produce_one_by_one(bootstrap, topic, 3, **{"enable.idempotence": False, "acks": 1})
    every = request(bootstrap, 35, 4, {"topics": None})
    (result,) = every.results
    out: Result = {
        "errors": (every.error_code, result.error_code),
        "absolute_dir": result.log_dir.startswith("/"),
        "space_reported": 0 < result.usable_bytes <= result.total_bytes,
        "partitions": sorted(
            (p.partition_index, p.partition_size, p.offset_lag, p.is_future_key)
            for t in result.topics
            if t.name == topic
            for p in t.partitions
        ),
    }
    wanted = [
        {"topic": topic, "partitions": [1, 7]},
        {"topic": unique("gone"), "partitions": [0]},
    ]
    asked = request(bootstrap, 35, 5, {"topics": wanted})
    out["asked"] = [
        (t.name == topic, [p.partition_index for p in t.partitions])
        for t in asked.results[0].topics
    ]
    out["asked_cordoned"] = asked.results[0].is_cordoned
    out["none_asked"] = [list(r.topics) for r in request(bootstrap, 35, 1, {"topics": []}).results]
    client = kp_admin(bootstrap)
    try:
        described = client.describe_log_dirs({topic: [0]})
        out["kafka_python"] = [
            (b["broker"], [(d["error_code"], [t["name"] == topic for t in d["topics"]])
                           for d in b["log_dirs"]])
            for b in described
        ]  # fmt: skip
    finally:
        client.close()
    return out


def alter_replica_log_dirs(bootstrap: str) -> Result:
    topic = hosted_topic(bootstrap, partitions=1)
    here = log_dir(bootstrap).log_dir
    missing = unique("gone")

    def move(path: str, topics: dict[str, list[int]]) -> list[Any]:
        response = request(
            bootstrap,
            34,
            2,
            {"dirs": [{"path": path, "topics": [
                {"name": name, "partitions": ps} for name, ps in topics.items()]}]},
        )  # fmt: skip
        return sorted(
            ("topic" if r.topic_name == topic else "missing", p.partition_index, p.error_code)
            for r in response.results
            for p in r.partitions
        )

    return {
        "same_dir": move(here, {topic: [0, 5], missing: [0]}),
        "other_dir": move("/nonexistent/log/dir", {topic: [0], missing: [0]}),
        "relative_dir": move("data", {topic: [0]}),
        "trailing_slash": move(here + "/", {topic: [0]}),
        "size_unchanged": [p.partition_size for t in log_dir(bootstrap, topic).topics
                           for p in t.partitions],
    }  # fmt: skip


# --- leader elections --------------------------------------------------------------------------


def elect_leaders(bootstrap: str) -> Result:
    topic = hosted_topic(bootstrap, partitions=2)
    missing = unique("gone")

    def raw(kind: int, asked: list[tuple[str, list[int]]] | None, version: int = 2) -> Any:
        topics = None if asked is None else [{"topic": t, "partitions": ps} for t, ps in asked]
        return request(
            bootstrap, 43, version,
            {"election_type": kind, "topic_partitions": topics, "timeout": 30_000},
        )  # fmt: skip

    def partitions(response: Any) -> list[Any]:
        # Topic names are each run's own: compared by role, and so in the messages.
        def message(text: str | None) -> str | None:
            return (
                None
                if text is None
                else text.replace(topic, "<topic>").replace(missing, "<missing>")
            )

        return [
            ("topic" if r.topic == topic else r.topic == missing, p.partition_id, p.error_code,
             message(p.error_message))
            for r in response.replica_election_results
            for p in r.partition_result
        ]  # fmt: skip

    out: Result = {}
    for kind in (0, 1):
        every = raw(kind, None)
        mine = [r for r in every.replica_election_results if r.topic == topic]
        out[f"all_{kind}"] = (every.error_code, [list(r.partition_result) for r in mine])
        out[f"all_{kind}_partitions"] = partitions(every)
        listed = raw(kind, [(topic, [0, 1, 4]), (missing, [0])])
        out[f"listed_{kind}"] = (listed.error_code, partitions(listed))
    out["v0"] = partitions(raw(0, [(topic, [1])], version=0))
    bad = raw(7, [(topic, [0])])
    out["bad_type"] = (bad.error_code, partitions(bad))
    out["empty"] = list(raw(0, []).replica_election_results)

    client = admin(bootstrap)
    tps = [ck.TopicPartition(topic, 0), ck.TopicPartition(topic, 1)]
    try:
        result = client.elect_leaders(ElectionType.PREFERRED, tps).result(TIMEOUT_S)
        out["confluent"] = sorted((tp.partition, error_name(err)) for tp, err in result.items())
    except ck.KafkaException as exc:
        out["confluent"] = exc.args[0].name()
    try:
        missing_tp = [ck.TopicPartition(missing, 0)]
        result = client.elect_leaders(ElectionType.PREFERRED, missing_tp).result(TIMEOUT_S)
        out["confluent_missing"] = [error_name(err) for err in result.values()]
    except ck.KafkaException as exc:
        out["confluent_missing"] = exc.args[0].name()
    return out


def error_name(error: Any) -> str | None:
    """A per-partition result of confluent-kafka's elect_leaders: None, a KafkaError, or an
    exception holding one."""
    if error is None:
        return None
    if isinstance(error, ck.KafkaError):
        return str(error.name())
    return str(error.args[0].name())


# --- reassignments -----------------------------------------------------------------------------


def partition_reassignments(bootstrap: str) -> Result:
    topic = hosted_topic(bootstrap, partitions=2)
    missing = unique("gone")
    out: Result = {}
    for label, topics in (
        ("list_all", None),
        ("list_topic", [{"name": topic, "partition_indexes": [0, 1, 9]}]),
        ("list_missing", [{"name": missing, "partition_indexes": [0]}]),
    ):
        listed = request(bootstrap, 46, 0, {"timeout": 30_000, "topics": topics})
        out[label] = (listed.error_code, listed.error_message, list(listed.topics))
    moves: list[tuple[str, int, list[int] | None]] = [
        (topic, 0, [NODE_ID]), (topic, 1, None), (topic, 0, []), (topic, 0, [2]),
        (topic, 0, [NODE_ID, NODE_ID]), (topic, 0, [NODE_ID, 2]), (topic, 0, [-1]),
        (topic, 0, [3, 3]), (topic, 9, [NODE_ID]), (missing, 0, [NODE_ID]), (missing, 0, None),
    ]  # fmt: skip
    for version in (0, 1):
        for allow in (True, False):
            response = request(
                bootstrap,
                45,
                version,
                {"timeout": 30_000, "allow_replication_factor_change": allow, "topics": [
                    {"name": name, "partitions": [{"partition_index": p, "replicas": r}]}
                    for name, p, r in moves]},
            )  # fmt: skip
            out[f"alter_v{version}_{allow}"] = (
                response.error_code,
                [
                    (p.partition_index, p.error_code, p.error_message is None)
                    for t in response.responses
                    for p in t.partitions
                ],
            )
    client = kp_admin(bootstrap)
    try:
        out["kafka_python_list"] = client.list_partition_reassignments()
        altered = client.alter_partition_reassignments(
            {TopicPartition(topic, 0): [NODE_ID], TopicPartition(topic, 1): None}
        )
        out["kafka_python_alter"] = sorted(
            (tp.partition, None if err is None else err.__name__) for tp, err in altered.items()
        )
    finally:
        client.close()
    return out


# --- quorum ------------------------------------------------------------------------------------


def describe_quorum(bootstrap: str) -> Result:
    def quorum(topics: list[tuple[str, list[int]]], version: int = 2) -> Any:
        return request(bootstrap, 55, version, {"topics": [
            {"topic_name": name, "partitions": [{"partition_index": p} for p in ps]}
            for name, ps in topics]})  # fmt: skip

    out: Result = {}
    for version in (0, 1, 2):
        response = quorum([(METADATA_TOPIC, [0])], version)
        ((name, part),) = [(t.topic_name, p) for t in response.topics for p in t.partitions]
        (voter,) = part.current_voters
        out[f"v{version}"] = {
            "codes": (response.error_code, part.error_code),
            "topic": (name, part.partition_index),
            "leader": (part.leader_id, part.leader_epoch),
            "voters": [v.replica_id for v in part.current_voters],
            "observers": list(part.observers),
            "voter_caught_up": voter.log_end_offset >= part.high_watermark >= 0,
        }
        if version >= 1:
            out[f"v{version}"]["leader_times"] = (
                voter.last_fetch_timestamp > 0,
                voter.last_caught_up_timestamp > 0,
            )
        if version >= 2:
            out[f"v{version}"]["nodes"] = [
                (n.node_id, [(x.host, x.port > 0) for x in n.listeners]) for n in response.nodes
            ]
    for label, topics in (
        ("other_topic", [("some-topic", [0])]),
        ("other_partition", [(METADATA_TOPIC, [1])]),
        ("two_partitions", [(METADATA_TOPIC, [0, 1])]),
        ("none", []),
    ):
        response = quorum(topics)
        out[label] = (
            response.error_code,
            [(t.topic_name, p.partition_index, p.error_code, p.leader_id)
             for t in response.topics for p in t.partitions],
            list(response.nodes),
        )  # fmt: skip
    client = kp_admin(bootstrap)
    try:
        described = client.describe_metadata_quorum()
        out["kafka_python"] = [
            (p["leader_id"], [v["replica_id"] for v in p["current_voters"]], p["error"])
            for t in described["topics"]
            for p in t["partitions"]
        ]
    finally:
        client.close()
    return out


# --- producers ---------------------------------------------------------------------------------


def describe_producers(bootstrap: str) -> Result:
    topic = hosted_topic(bootstrap, partitions=2)
    produce_one_by_one(bootstrap, topic, 4, **{"enable.idempotence": True})
    response = request(
        bootstrap, 61, 0,
        {"topics": [{"name": topic, "partition_indexes": [0, 1, 9]},
                    {"name": unique("gone"), "partition_indexes": [0]}]},
    )  # fmt: skip
    return {
        "partitions": [
            (
                t.name == topic,
                p.partition_index,
                p.error_code,
                [
                    (s.producer_epoch, s.last_sequence, s.last_timestamp, s.coordinator_epoch,
                     s.current_txn_start_offset)
                    for s in p.active_producers
                ],
            )
            for t in response.topics
            for p in t.partitions
        ],
    }  # fmt: skip


# --- features ----------------------------------------------------------------------------------


def features(bootstrap: str) -> Result:
    versions = request(
        bootstrap, 18, 4, {"client_software_name": "diff", "client_software_version": "1"}
    )
    finalized = {f.name: f.max_version_level for f in versions.finalized_features}
    supported = {f.name: (f.min_version, f.max_version) for f in versions.supported_features}

    def update(changes: list[tuple[str, int, int]], version: int = 1) -> Any:
        response = request(bootstrap, 57, version, {
            "timeout": 30_000, "validate_only": True,
            "feature_updates": [
                {"feature": f, "max_version_level": level, "upgrade_type": kind,
                 "allow_downgrade": kind != 1}
                for f, level, kind in changes]})  # fmt: skip
        results = [] if version >= 2 else [(r.feature, r.error_code) for r in response.results]
        return (response.error_code, results)

    level = finalized["metadata.version"]
    return {
        "metadata_version": level,
        "metadata_version_supported": supported["metadata.version"][1] >= level,
        "epoch_known": versions.finalized_features_epoch >= 0,
        **{
            f"same_level_v{version}_{kind}": update([("metadata.version", level, kind)], version)
            for version in (0, 1, 2)
            for kind in (1, 2, 3)
        },
        "unknown_feature": update([("no.such.feature", 1, 1)]),
        "too_high": update([("metadata.version", 999, 1)]),
        "bad_upgrade_type": update([("metadata.version", level, 9)]),
        "one_bad_of_two": update([("metadata.version", level, 1), ("no.such.feature", 1, 1)]),
        "nothing": update([]),
    }


# --- config resources --------------------------------------------------------------------------

# BROKER_LOGGER (8) is left out of the comparison: Kafka lists node 1's logger resource, shoal
# serves no logger configs and so lists none (it answers that type with an empty list).
COMPARED_TYPES = (2, 4, 16, 32)


def list_config_resources(bootstrap: str) -> Result:
    topic = hosted_topic(bootstrap)
    # A group with a config of its own (GROUP resources are listed once they have one). Only
    # this scenario's topic and group are compared: the reference broker is shared by the
    # session, and other tests leave topics and group configs on it.
    group = unique("cfg-group")
    resource = ck.admin.ConfigResource(
        ck.admin.ResourceType.GROUP,
        group,
        incremental_configs=[
            ck.admin.ConfigEntry(
                "consumer.session.timeout.ms",
                "50000",
                incremental_operation=ck.admin.AlterConfigOpType.SET,
            )
        ],
    )
    client = admin(bootstrap)  # held: a collected client destroys its pending futures
    client.incremental_alter_configs([resource])[resource].result(TIMEOUT_S)
    mine = {(2, topic): "<topic>", (32, group): "<group>"}

    def listed(types: list[int], version: int = 1) -> Any:
        response = request(bootstrap, 74, version, {"resource_types": types})
        return (
            response.error_code,
            sorted(
                (r.resource_type, mine.get((r.resource_type, r.resource_name), r.resource_name))
                for r in response.config_resources
                if r.resource_type in COMPARED_TYPES
                and (r.resource_type not in (2, 32) or (r.resource_type, r.resource_name) in mine)
            ),
        )

    return {
        "v0": listed([], version=0),
        "all": listed([]),
        **{f"type_{kind}": listed([kind]) for kind in COMPARED_TYPES},
        "repeated": listed([2, 4, 2]),
        **{f"unknown_{kind}": listed([kind]) for kind in (0, 1, 99)},
        "unknown_with_known": listed([2, 64]),
    }


# --- versions ----------------------------------------------------------------------------------

ADMIN_API_KEYS = (34, 35, 43, 45, 46, 55, 57, 61, 74, 27)  # 27: WriteTxnMarkers (issue 14)


def advertised_versions(bootstrap: str) -> Result:
    """The version ranges of these APIs in ApiVersions: shoal serves what Kafka 4.4 serves."""
    response = request(
        bootstrap, 18, 3, {"client_software_name": "diff", "client_software_version": "1"}
    )
    ranges = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
    return {str(key): ranges.get(key) for key in ADMIN_API_KEYS}


SCENARIOS: dict[str, Callable[[str], Result]] = {
    "advertised_versions": advertised_versions,
    "log_dirs": log_dirs,
    "alter_replica_log_dirs": alter_replica_log_dirs,
    "elect_leaders": elect_leaders,
    "partition_reassignments": partition_reassignments,
    "describe_quorum": describe_quorum,
    "describe_producers": describe_producers,
    "features": features,
    "list_config_resources": list_config_resources,
}
