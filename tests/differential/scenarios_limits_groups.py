"""Two more differential scenarios, kept out of scenarios.py (which other work owns):

- ``batch_size_limit``: a record batch exactly at the size limit is stored, one byte more is
  refused with MESSAGE_TOO_LARGE, both for the broker-wide ``message.max.bytes`` default and for a
  topic's ``max.message.bytes`` override.
- ``member_leaves_group``: two members share a topic; one leaves (LeaveGroup on close), and the
  survivor ends up owning every partition, resuming each at the committed offset; with the eager
  (range) protocol and with the incremental (cooperative-sticky) one.

Each returns plain data two correct brokers agree on (no timings, no member ids).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import confluent_kafka as ck
from confluent_kafka import ConsumerGroupTopicPartitions

from tests.differential.scenarios import (
    TIMEOUT_S,
    Result,
    admin,
    consume,
    create_topic,
    produce,
    unique,
)

# --- size limits -------------------------------------------------------------------------------

KAFKA_DEFAULT_MESSAGE_MAX_BYTES = 1_048_588
"""Apache Kafka's default message.max.bytes: 1 MiB of records plus the 12-byte log overhead."""
BATCH_HEADER_BYTES = 61
"""A v2 record batch before its records: baseOffset(8) batchLength(4) leaderEpoch(4) magic(1)
crc(4) attributes(2) lastOffsetDelta(4) baseTimestamp(8) maxTimestamp(8) producerId(8)
producerEpoch(2) baseSequence(4) recordCount(4). The limit counts the whole batch, these too."""


def varint_size(value: int) -> int:
    """Bytes of a zigzag varint, as the record format encodes lengths."""
    zigzag = (value << 1) ^ (value >> 63)
    size = 1
    while zigzag >= 0x80:
        zigzag >>= 7
        size += 1
    return size


def single_record_batch_size(value_size: int) -> int:
    """Wire size of an uncompressed batch holding one record: no key, no headers, deltas 0.

    record = length(varint) attributes(1) timestampDelta(1) offsetDelta(1) keyLength(1, -1)
             valueLength(varint) value headerCount(1)
    """
    body = 1 + 1 + 1 + 1 + varint_size(value_size) + value_size + 1
    return BATCH_HEADER_BYTES + varint_size(body) + body


def value_size_for_batch(batch_bytes: int) -> int:
    """The value size whose single-record batch is exactly ``batch_bytes`` long."""
    for value_size in range(batch_bytes - BATCH_HEADER_BYTES, 0, -1):
        if single_record_batch_size(value_size) == batch_bytes:
            return value_size
    raise ValueError(f"no single-record batch is exactly {batch_bytes} bytes")


def produce_alone(bootstrap: str, topic: str, value_size: int) -> Any:
    """One record in a batch of its own, uncompressed, so its batch size is known exactly."""
    # The client's own limits are raised well past the broker's so the broker is the judge.
    [outcome] = produce(
        bootstrap,
        topic,
        [{"value": b"m" * value_size, "partition": 0}],
        **{
            "linger.ms": 0,
            "compression.codec": "none",
            "message.max.bytes": 4_000_000,
            "batch.size": 4_000_000,
            "enable.idempotence": False,
            "acks": "all",
        },
    )
    return outcome


def at_and_over_limit(bootstrap: str, topic: str, limit_bytes: int) -> Result:
    at_size = value_size_for_batch(limit_bytes)
    over_size = value_size_for_batch(limit_bytes + 1)
    out: Result = {
        "at_limit": produce_alone(bootstrap, topic, at_size),
        "over_limit": produce_alone(bootstrap, topic, over_size),
    }
    stored = consume(bootstrap, topic, 1, **{"fetch.message.max.bytes": 4_000_000})
    out["stored"] = [(m.get("offset"), len(m.get("value") or b"")) for m in stored]
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": unique("limits")})
    try:
        out["watermarks"] = consumer.get_watermark_offsets(
            ck.TopicPartition(topic, 0), timeout=TIMEOUT_S
        )
    finally:
        consumer.close()
    return out


def batch_size_limit(bootstrap: str) -> Result:
    assert single_record_batch_size(value_size_for_batch(1000)) == 1000
    broker_topic = create_topic(bootstrap)
    topic_limited = create_topic(bootstrap, **{"max.message.bytes": "1000"})
    return {
        "broker_default": at_and_over_limit(
            bootstrap, broker_topic, KAFKA_DEFAULT_MESSAGE_MAX_BYTES
        ),
        "topic_max_message_bytes_1000": at_and_over_limit(bootstrap, topic_limited, 1000),
    }


# --- a member leaves ---------------------------------------------------------------------------

PARTITIONS = 4


def poll_until(consumers: list[ck.Consumer], done: Callable[[], bool], what: str) -> None:
    """Poll every member (joins and rebalances happen inside poll) until ``done()``, bounded."""
    deadline = time.monotonic() + TIMEOUT_S
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {TIMEOUT_S}s: {what}")
        for consumer in consumers:
            msg = consumer.poll(0.1)
            assert msg is None or not msg.error(), msg.error()


def consumed_to(consumer: ck.Consumer, offset: int) -> bool:
    """Whether the consumer's position is ``offset`` on every partition it is assigned."""
    positions = consumer.position(consumer.assignment())
    return bool(positions) and all(tp.offset == offset for tp in positions)


def member_leaves_group(bootstrap: str, strategy: str) -> Result:
    topic = create_topic(bootstrap, partitions=PARTITIONS)
    produce(bootstrap, topic, [{"value": b"old", "partition": p} for p in range(PARTITIONS)] * 2)
    group = unique("leave")
    events: list[list[tuple[str, list[int]]]] = [[], []]

    def recorder(i: int) -> dict[str, Any]:
        def assigned(_: ck.Consumer, tps: list[ck.TopicPartition]) -> None:
            events[i].append(("assign", sorted(tp.partition for tp in tps)))

        def revoked(_: ck.Consumer, tps: list[ck.TopicPartition]) -> None:
            events[i].append(("revoke", sorted(tp.partition for tp in tps)))

        return {"on_assign": assigned, "on_revoke": revoked}

    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 300,
        "partition.assignment.strategy": strategy,
    }
    members = [ck.Consumer({**config, "client.id": f"member-{i}"}) for i in range(2)]
    out: Result = {}
    survivor, leaver = members
    try:
        for i, member in enumerate(members):
            member.subscribe([topic], **recorder(i))
        # Each member also reads the two old records of its partitions first: a partition the
        # survivor keeps (cooperative) resumes from its own position, not from the commit, so
        # the position must not depend on how far it happened to poll.
        poll_until(
            members,
            lambda: (
                sorted(len(m.assignment()) for m in members) == [2, 2]
                and all(consumed_to(m, 2) for m in members)
            ),
            "two members with two partitions each, their old records read",
        )
        before = [sorted(tp.partition for tp in m.assignment()) for m in members]
        out["before_union"] = sorted(p for a in before for p in a)
        # Both commit offset 2 (past the two old records) so where the survivor resumes each
        # partition depends only on the committed offsets, not on what it happened to poll.
        for member, assigned in zip(members, before, strict=True):
            member.commit(
                offsets=[ck.TopicPartition(topic, p, 2) for p in assigned], asynchronous=False
            )
        leaver.close()  # sends LeaveGroup: no session timeout to wait out
        members = [survivor]
        poll_until(
            members,
            lambda: len(survivor.assignment()) == PARTITIONS,
            "the survivor owning every partition",
        )
        out["survivor_assignment"] = sorted(tp.partition for tp in survivor.assignment())
        if strategy == "cooperative-sticky":
            # Incremental: the survivor keeps its two partitions and is given the other two.
            last = events[0][-1]
            out["survivor_last_event"] = (last[0], len(last[1]))
            out["survivor_kept_and_gained"] = sorted(before[0] + last[1])
        else:
            # Eager: the survivor gives up its two partitions, then is given all four.
            revoke_then_assign = events[0][-2:]
            out["survivor_last_events"] = [(kind, len(parts)) for kind, parts in revoke_then_assign]
            out["survivor_final_assign"] = revoke_then_assign[-1][1]
        out["leaver_revoked_on_close"] = [len(p) for kind, p in events[1][-1:] if kind == "revoke"]

        produce(bootstrap, topic, [{"value": b"new", "partition": p} for p in range(PARTITIONS)])
        got: list[tuple[int, int, bytes]] = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(got) < PARTITIONS and time.monotonic() < deadline:
            msg = survivor.poll(0.2)
            if msg is not None and not msg.error():
                got.append((msg.partition(), msg.offset(), msg.value()))
        out["survivor_read"] = sorted(got)
        survivor.commit(asynchronous=False)

        client = admin(bootstrap)
        described = client.describe_consumer_groups([group])[group].result(TIMEOUT_S)
        out["state"] = str(described.state)
        out["members"] = len(described.members)
        out["member_client_ids"] = [m.client_id for m in described.members]
        out["member_partitions"] = [
            sorted(tp.partition for tp in m.assignment.topic_partitions) for m in described.members
        ]
        offsets = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
        committed = offsets[group].result(TIMEOUT_S).topic_partitions
        out["committed"] = sorted((tp.partition, tp.offset) for tp in committed)
    finally:
        for member in members:
            member.close()
    return out


SCENARIOS: dict[str, Callable[[str], Result]] = {
    "batch_size_limit": batch_size_limit,
    "member_leaves_group": lambda bootstrap: member_leaves_group(bootstrap, "range"),
    "member_leaves_group_cooperative": (
        lambda bootstrap: member_leaves_group(bootstrap, "cooperative-sticky")
    ),
}
