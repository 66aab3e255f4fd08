"""Client scenarios run unchanged against any Kafka-protocol broker. Each returns the observable
result as plain data (records, offsets, error codes, config values, group states): no timings,
no broker-chosen ids, nothing that two correct brokers could legitimately disagree on."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import confluent_kafka as ck
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from shoal.records import SimpleRecord, build_batch
from tests.server.wire import WireClient

TIMEOUT_S = 30.0
Result = dict[str, Any]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def error_name(exc: BaseException) -> str:
    """The Kafka error name inside a confluent-kafka exception (or the exception type)."""
    if isinstance(exc, ck.KafkaException) and exc.args and isinstance(exc.args[0], ck.KafkaError):
        return str(exc.args[0].name())
    return type(exc).__name__


def create_topic(bootstrap: str, partitions: int = 1, **config: str) -> str:
    name = unique("diff")
    client = admin(bootstrap)  # kept alive until the future resolves
    futures = client.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config)],
        operation_timeout=TIMEOUT_S,
    )
    futures[name].result(TIMEOUT_S)
    return name


def produce(bootstrap: str, topic: str, records: list[dict[str, Any]], **config: Any) -> list[Any]:
    """Produce records (dicts of produce() keyword arguments); return the delivery outcomes."""
    producer = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **config})
    outcomes: list[Any] = [None] * len(records)

    def report(i: int) -> Callable[[Any, Any], None]:
        def done(err: Any, msg: Any) -> None:
            outcomes[i] = err.name() if err else (msg.partition(), msg.offset())

        return done

    for i, record in enumerate(records):
        producer.produce(topic, on_delivery=report(i), **record)
    remaining = producer.flush(TIMEOUT_S)
    assert remaining == 0, f"{remaining} records not delivered in {TIMEOUT_S}s"
    return outcomes


def consume(
    bootstrap: str, topic: str, count: int, partition: int = 0, offset: int = 0, **config: Any
) -> list[Any]:
    """Read ``count`` messages (or errors) of one partition from ``offset``."""
    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "enable.auto.commit": False,
            "allow.auto.create.topics": False,
            **config,
        }
    )
    try:
        consumer.assign([ck.TopicPartition(topic, partition, offset)])
        got: list[Any] = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                got.append({"error": msg.error().name()})
                continue
            got.append(
                {
                    "offset": msg.offset(),
                    "key": msg.key(),
                    "value": msg.value(),
                    "headers": msg.headers(),
                    "timestamp": msg.timestamp(),
                }
            )
        return got
    finally:
        consumer.close()


def dataset(n: int) -> list[dict[str, Any]]:
    return [
        {
            "key": None if i % 5 == 0 else f"key-{i}".encode(),
            "value": None if i % 7 == 3 else (f"value-{i}-" * (i % 4 + 1)).encode(),
            "headers": [("h", f"{i}".encode())] if i % 2 else None,
            "timestamp": 1_700_000_000_000 + i,
            "partition": 0,
        }
        for i in range(n)
    ]


# --- produce / consume -------------------------------------------------------------------------


def produce_consume(bootstrap: str, codec: str) -> Result:
    topic = create_topic(bootstrap)
    records = dataset(25)
    delivered = produce(bootstrap, topic, records, **{"compression.codec": codec})
    return {"delivered": delivered, "consumed": consume(bootstrap, topic, len(records))}


def idempotent_produce(bootstrap: str) -> Result:
    topic = create_topic(bootstrap, partitions=2)
    records = [{"value": f"v{i}".encode(), "partition": i % 2} for i in range(40)]
    delivered = produce(bootstrap, topic, records, **{"enable.idempotence": True, "acks": "all"})
    return {
        "delivered": delivered,
        "p0": [m["value"] for m in consume(bootstrap, topic, 20, partition=0)],
        "p1": [m["value"] for m in consume(bootstrap, topic, 20, partition=1)],
    }


def list_offsets_by_time(bootstrap: str) -> Result:
    topic = create_topic(bootstrap)
    stamps = [1_000_000, 2_000_000, 2_000_000, 3_000_000, 2_500_000]
    produce(bootstrap, topic, [{"value": b"x", "timestamp": t, "partition": 0} for t in stamps])
    tp = ck.TopicPartition(topic, 0)
    specs = {
        "earliest": OffsetSpec.earliest(),
        "latest": OffsetSpec.latest(),
        "before_all": OffsetSpec.for_timestamp(1),
        "at_2000000": OffsetSpec.for_timestamp(2_000_000),
        "at_2500000": OffsetSpec.for_timestamp(2_500_000),
        "after_all": OffsetSpec.for_timestamp(9_000_000),
        "max_timestamp": OffsetSpec.max_timestamp(),
    }
    out: Result = {}
    client = admin(bootstrap)
    for name, spec in specs.items():
        try:
            info = client.list_offsets({tp: spec})[tp].result(TIMEOUT_S)
            out[name] = (info.offset, info.timestamp)
        except ck.KafkaException as exc:
            out[name] = error_name(exc)
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": unique("times")})
    try:
        found = consumer.offsets_for_times([ck.TopicPartition(topic, 0, 2_200_000)], TIMEOUT_S)
        out["offsets_for_times"] = found[0].offset
        out["watermarks"] = consumer.get_watermark_offsets(tp, TIMEOUT_S)
    finally:
        consumer.close()
    return out


# --- topic admin -------------------------------------------------------------------------------

DESCRIBED_CONFIGS = ("cleanup.policy", "retention.ms", "max.message.bytes", "segment.bytes")


def describe_configs(bootstrap: str, topic: str) -> dict[str, Any]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    client = admin(bootstrap)
    entries = client.describe_configs([resource])[resource].result(TIMEOUT_S)
    return {
        name: (entries[name].value, entries[name].is_default, entries[name].source)
        for name in DESCRIBED_CONFIGS
    }


def partition_count(bootstrap: str, topic: str) -> int:
    return len(admin(bootstrap).list_topics(topic, timeout=TIMEOUT_S).topics[topic].partitions)


def topic_admin(bootstrap: str) -> Result:
    client = admin(bootstrap)
    topic = create_topic(
        bootstrap, partitions=1, **{"retention.ms": "123456", "cleanup.policy": "compact"}
    )
    out: Result = {"configs": describe_configs(bootstrap, topic)}
    client.create_partitions([NewPartitions(topic, 3)])[topic].result(TIMEOUT_S)
    out["partitions_after_grow"] = partition_count(bootstrap, topic)
    try:
        client.create_partitions([NewPartitions(topic, 2)])[topic].result(TIMEOUT_S)
        out["shrink"] = "ok"
    except ck.KafkaException as exc:
        out["shrink"] = error_name(exc)
    try:
        client.create_topics([NewTopic(topic, 1, 1)])[topic].result(TIMEOUT_S)
        out["create_again"] = "ok"
    except ck.KafkaException as exc:
        out["create_again"] = error_name(exc)
    client.delete_topics([topic], operation_timeout=TIMEOUT_S)[topic].result(TIMEOUT_S)
    deadline = time.monotonic() + TIMEOUT_S
    while topic in client.list_topics(timeout=TIMEOUT_S).topics and time.monotonic() < deadline:
        time.sleep(0.1)
    out["listed_after_delete"] = topic in client.list_topics(timeout=TIMEOUT_S).topics
    return out


# --- error cases -------------------------------------------------------------------------------


def create_error(bootstrap: str, topic: NewTopic) -> str:
    try:
        client = admin(bootstrap)
        client.create_topics([topic])[topic.topic].result(TIMEOUT_S)
        return "ok"
    except ck.KafkaException as exc:
        return error_name(exc)


def invalid_creates(bootstrap: str) -> Result:
    return {
        "zero_partitions": create_error(bootstrap, NewTopic(unique("zero"), 0, 1)),
        "bad_name": create_error(bootstrap, NewTopic("bad name!", 1, 1)),
        "too_long_name": create_error(bootstrap, NewTopic("x" * 250, 1, 1)),
        "dot_name": create_error(bootstrap, NewTopic("..", 1, 1)),
        "replication_factor_3": create_error(bootstrap, NewTopic(unique("rf"), 1, 3)),
        "bad_config": create_error(
            bootstrap, NewTopic(unique("cfg"), 1, 1, config={"cleanup.policy": "nonsense"})
        ),
    }


def unknown_topic(bootstrap: str) -> Result:
    missing = unique("missing")
    metadata = admin(bootstrap).list_topics(missing, timeout=TIMEOUT_S)
    error = metadata.topics[missing].error
    return {
        "metadata_error": error.name() if error else None,
        "still_missing": missing not in admin(bootstrap).list_topics(timeout=TIMEOUT_S).topics,
    }


def out_of_range_fetch(bootstrap: str) -> Result:
    topic = create_topic(bootstrap)
    produce(bootstrap, topic, [{"value": f"v{i}".encode(), "partition": 0} for i in range(3)])

    def offsets(reset: str) -> list[Any]:
        got = consume(bootstrap, topic, 3, offset=10, **{"auto.offset.reset": reset})
        return [m.get("offset", m.get("error")) for m in got]

    earliest = offsets("earliest")
    error = consume(bootstrap, topic, 1, offset=10, **{"auto.offset.reset": "error"})
    return {"earliest": earliest, "error": [m.get("error") for m in error]}


def message_too_large(bootstrap: str) -> Result:
    topic = create_topic(bootstrap)
    big = {"value": b"x" * 1_100_000, "partition": 0}
    small = {"value": b"ok", "partition": 0}
    delivered = produce(
        bootstrap, topic, [big, small], **{"message.max.bytes": 2_000_000, "linger.ms": 0}
    )
    topic_limited = create_topic(bootstrap, **{"max.message.bytes": "1000"})
    limited = produce(
        bootstrap,
        topic_limited,
        [{"value": b"y" * 2000, "partition": 0}, {"value": b"y" * 10, "partition": 0}],
        **{"linger.ms": 0, "compression.codec": "none"},
    )
    return {"broker_limit": delivered, "topic_limit": limited}


# --- groups ------------------------------------------------------------------------------------


def groups(bootstrap: str) -> Result:
    topic = create_topic(bootstrap, partitions=4)
    produce(bootstrap, topic, [{"value": f"v{i}".encode(), "partition": i % 4} for i in range(8)])
    group = unique("group")
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 500,
        "partition.assignment.strategy": "range",
    }
    consumers = [ck.Consumer({**config, "client.id": f"member-{i}"}) for i in range(2)]
    out: Result = {}
    try:
        for consumer in consumers:
            consumer.subscribe([topic])
        seen: list[set[int]] = [set(), set()]
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            for i, consumer in enumerate(consumers):
                msg = consumer.poll(0.2)
                if msg is not None and not msg.error():
                    seen[i].add(msg.partition())
            sizes = [len(c.assignment()) for c in consumers]
            if sizes == [2, 2] and sum(len(s) for s in seen) == 4:
                break
        assignments = [sorted(tp.partition for tp in c.assignment()) for c in consumers]
        out["assignment_sizes"] = sorted(len(a) for a in assignments)
        out["assigned_union"] = sorted(p for a in assignments for p in a)
        for consumer, assigned in zip(consumers, assignments, strict=True):
            # explicit offsets: what each member has polled so far is up to timing
            consumer.commit(
                offsets=[ck.TopicPartition(topic, p, 2) for p in assigned], asynchronous=False
            )
        client = admin(bootstrap)
        described = client.describe_consumer_groups([group])[group].result(TIMEOUT_S)
        out["state"] = str(described.state)
        out["members"] = len(described.members)
        out["assignor"] = described.partition_assignor
        out["member_partitions"] = sorted(
            sorted(tp.partition for tp in m.assignment.topic_partitions) for m in described.members
        )
        listed = client.list_consumer_groups().result(TIMEOUT_S)
        out["listed"] = [str(g.state) for g in listed.valid if g.group_id == group]
    finally:
        for consumer in consumers:
            consumer.close()
    client = admin(bootstrap)
    offsets = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    committed = offsets[group].result(TIMEOUT_S).topic_partitions
    out["committed"] = sorted((tp.partition, tp.offset) for tp in committed)
    out["state_after_close"] = str(
        client.describe_consumer_groups([group])[group].result(TIMEOUT_S).state
    )
    return out


# --- acks=0 Produce (issue 13, S2) ---------------------------------------------------------


def acks_0_produce(bootstrap: str) -> Result:
    """An acks=0 Produce gets no response: one that succeeds keeps the connection, one with a
    failed partition (an unknown topic) closes it (KafkaApis.handleProduceRequest)."""
    topic = create_topic(bootstrap)
    batch = build_batch([SimpleRecord(value=b"v")])
    with WireClient(bootstrap) as client:
        # acks=1 first, until the partition has its leader (Kafka's election right after
        # CreateTopics would otherwise fail, and so close, the acks=0 request).
        led = client.produce_once_led(topic, 0, batch).error_code
        client.produce(topic, 0, batch, acks=0)
        still_open = client.api_versions().error_code
        client.produce(unique("missing"), 0, batch, acks=0)
        after_unknown = client.wait_closed()
    return {"led": led, "still_open": still_open, "after_unknown_topic": after_unknown}


SCENARIOS: dict[str, Callable[[str], Result]] = {
    **{
        f"produce_consume_{codec}": (lambda b, c=codec: produce_consume(b, c))
        for codec in ("none", "gzip", "snappy", "lz4", "zstd")
    },
    "idempotent_produce": idempotent_produce,
    "list_offsets_by_time": list_offsets_by_time,
    "topic_admin": topic_admin,
    "invalid_creates": invalid_creates,
    "unknown_topic": unknown_topic,
    "out_of_range_fetch": out_of_range_fetch,
    "message_too_large": message_too_large,
    "groups": groups,
    "acks_0_produce": acks_0_produce,  # issue 13, S2
}
