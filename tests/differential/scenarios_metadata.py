"""Scenarios on what Metadata and the describe APIs show: internal topics, authorized
operations, the node id and the address clients are told. Each runs unchanged against Apache
Kafka and shoal and returns plain data (no broker-chosen ids, no timings)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, Final

import confluent_kafka as ck
from confluent_kafka import ConsumerGroupTopicPartitions, TopicCollection
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from tests.differential.scenarios import TIMEOUT_S, admin, create_topic, error_name, unique
from tests.server.wire import WireClient, batch_of, host_port

Result = dict[str, Any]
OFFSETS: Final = "__consumer_offsets"
ZERO_ID: Final = uuid.UUID(int=0)


def raw_metadata(
    bootstrap: str,
    topics: list[str] | None,
    *,
    version: int = 12,
    operations: bool = False,
) -> Any:
    with WireClient(bootstrap) as client:
        return client.request(
            3,
            version,
            {
                "topics": None if topics is None else [{"name": t} for t in topics],
                "allow_auto_topic_creation": False,
                "include_cluster_authorized_operations": operations,
                "include_topic_authorized_operations": operations,
            },
        )


def topic_view(topic: Any) -> Result:
    """What a client sees of one Metadata topic, minus the broker-chosen id."""
    return {
        "error": int(topic.error_code),
        "is_internal": topic.is_internal,
        "partitions": len(topic.partitions),
        "has_id": topic.topic_id not in (None, ZERO_ID),
    }


def listed_topics(bootstrap: str, *expected: str) -> dict[str, Any]:
    """Every topic Metadata lists, once it lists ``expected`` (Kafka's metadata cache catches
    up with a just-created topic a moment later) or TIMEOUT_S has passed."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        listed = {t.name: t for t in raw_metadata(bootstrap, None).topics}
        if all(name in listed for name in expected) or time.monotonic() > deadline:
            return listed
        time.sleep(0.1)


def use_a_group(bootstrap: str, topic: str) -> str:
    """Commit one offset for a new group: the group coordinator is in use from then on."""
    group = unique("group")
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        consumer.commit(offsets=[ck.TopicPartition(topic, 0, 1)], asynchronous=False)
    finally:
        consumer.close()
    return group


def future_outcome(future: Any) -> str:
    try:
        future.result(TIMEOUT_S)
        return "ok"
    except ck.KafkaException as exc:
        return error_name(exc)


def describe_topics(client: AdminClient, names: list[str]) -> list[Result]:
    futures = client.describe_topics(TopicCollection(names), include_authorized_operations=True)
    out: list[Result] = []
    for name in names:
        described = futures[name].result(TIMEOUT_S)
        out.append(
            {
                "is_internal": described.is_internal,
                "partitions": len(described.partitions),
                "operations": sorted(str(op) for op in described.authorized_operations or ()),
            }
        )
    return out


def internal_topics_after_group_use(bootstrap: str) -> Result:
    data = create_topic(bootstrap)
    group = use_a_group(bootstrap, data)
    mine = f"__{unique('mine')}"
    create_topic_named(bootstrap, mine)
    client = admin(bootstrap)
    listed = listed_topics(bootstrap, OFFSETS, mine)
    out: Result = {
        "listed": topic_view(listed[OFFSETS]),
        "mine_listed": topic_view(listed[mine]),
        "by_name": topic_view(raw_metadata(bootstrap, [OFFSETS]).topics[0]),
        # A Kafka internal name: internal by its name, whether it exists yet or not (it does
        # once any share group was used on the broker, which the session's other tests do).
        "share_state_internal": raw_metadata(bootstrap, ["__share_group_state"])
        .topics[0]
        .is_internal,
        "describe_topics": describe_topics(client, [OFFSETS, mine]),
        "create_again": future_outcome(client.create_topics([NewTopic(OFFSETS, 1, 1)])[OFFSETS]),
    }
    with WireClient(bootstrap) as wire:
        out["produce"] = int(wire.produce(OFFSETS, 0, batch_of([b"forged"])).error_code)
        fetched = wire.fetch(OFFSETS, 0, 0)
        out["fetch"] = (int(fetched.error_code), fetched.high_watermark > 0)
    tp = ck.TopicPartition(OFFSETS, 0, 0)
    out["delete_records"] = future_outcome(client.delete_records([tp])[tp])
    earliest = client.list_offsets({tp: OffsetSpec.earliest()})[tp].result(TIMEOUT_S)
    out["list_offsets_earliest"] = earliest.offset >= 0
    resource = ConfigResource(ResourceType.TOPIC, OFFSETS)
    configs = client.describe_configs([resource])[resource].result(TIMEOUT_S)
    out["configs"] = {
        name: (configs[name].value, configs[name].source)
        for name in ("cleanup.policy", "compression.type")
    }
    committed = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    out["committed"] = [
        (tp.topic == data, tp.offset) for tp in committed[group].result(TIMEOUT_S).topic_partitions
    ]
    return out


def create_topic_named(bootstrap: str, name: str) -> None:
    client = admin(bootstrap)
    client.create_topics([NewTopic(name, 1, 1)])[name].result(TIMEOUT_S)


def authorized_operations(bootstrap: str) -> Result:
    topic = create_topic(bootstrap)
    group = use_a_group(bootstrap, topic)
    client = admin(bootstrap)
    asked = client.describe_cluster(include_authorized_operations=True).result(TIMEOUT_S)
    plain = client.describe_cluster().result(TIMEOUT_S)
    described_group = client.describe_consumer_groups([group], include_authorized_operations=True)
    out: Result = {
        "cluster": sorted(str(op) for op in asked.authorized_operations or ()),
        "cluster_not_asked": plain.authorized_operations,
        "topic": describe_topics(client, [topic])[0]["operations"],
        "group": sorted(
            str(op) for op in described_group[group].result(TIMEOUT_S).authorized_operations or ()
        ),
    }
    missing = unique("missing")
    for version in (8, 10, 12):
        for asked_flag in (True, False):
            answer = raw_metadata(
                bootstrap, [topic, missing], version=version, operations=asked_flag
            )
            out[f"metadata_v{version}_{asked_flag}"] = {
                "cluster": getattr(answer, "cluster_authorized_operations", None),
                "topics": [t.topic_authorized_operations for t in answer.topics],
            }
    with WireClient(bootstrap) as wire:
        for asked_flag in (True, False):
            answer = wire.request(
                15,
                6,
                {"groups": [group, unique("nogroup")], "include_authorized_operations": asked_flag},
            )
            out[f"describe_groups_{asked_flag}"] = [
                (int(g.error_code), g.authorized_operations) for g in answer.groups
            ]
    return out


SCENARIOS: dict[str, Callable[[str], Result]] = {
    "internal_topics_after_group_use": internal_topics_after_group_use,
    "authorized_operations": authorized_operations,
}


# --- a fresh broker, with node.id 7 and an advertised listener -------------------------------

NODE: Final = 7
ADVERTISED_HOST: Final = "localhost"


def find_group_coordinator(bootstrap: str) -> Any:
    """Ask until the coordinator is ready: Kafka answers COORDINATOR_NOT_AVAILABLE while it
    creates __consumer_offsets, as clients expect (they ask again)."""
    deadline = time.monotonic() + TIMEOUT_S
    with WireClient(bootstrap) as wire:
        while True:
            answer = wire.request(10, 3, {"key": unique("g"), "key_type": 0})
            if answer.error_code == 0 or time.monotonic() > deadline:
                return answer
            time.sleep(0.2)


def fresh_broker(bootstrap: str) -> Result:
    """Run first on a broker that nothing has used yet, started with node.id 7 and advertising
    ``localhost`` at the port it is bound to on 127.0.0.1."""
    _, port = host_port(bootstrap)
    before = raw_metadata(bootstrap, None)
    out: Result = {
        "listed_before": [t.name for t in before.topics],
        "by_name_before": topic_view(raw_metadata(bootstrap, [OFFSETS]).topics[0]),
        "brokers": [(b.node_id, b.host, b.port == port) for b in before.brokers],
        "controller": before.controller_id,
    }
    coordinator = find_group_coordinator(bootstrap)
    out["coordinator"] = (
        int(coordinator.error_code),
        coordinator.node_id,
        coordinator.host,
        coordinator.port == port,
    )
    after = listed_topics(bootstrap, OFFSETS)
    out["listed_after"] = {name: topic_view(t) for name, t in after.items()}
    client = admin(bootstrap)
    cluster = client.describe_cluster().result(TIMEOUT_S)
    out["cluster"] = (
        cluster.controller.id,
        [(n.id, n.host, n.port == port) for n in cluster.nodes],
    )
    # Every connection after the bootstrap one goes to the advertised address.
    advertised = f"{ADVERTISED_HOST}:{port}"
    topic = create_topic(advertised)
    producer = ck.Producer({"bootstrap.servers": advertised, "broker.address.family": "v4"})
    producer.produce(topic, b"through the advertised listener", partition=0)
    out["unflushed"] = producer.flush(TIMEOUT_S)
    metadata = admin(advertised).list_topics(topic, timeout=TIMEOUT_S)
    out["leader"] = metadata.topics[topic].partitions[0].leader
    return out
