"""CreateTime timestamps outside the topic's bounds, sent by a real client (confluent-kafka):
the delivery fails with INVALID_TIMESTAMP, nothing is written, and raising the topic's bound lets
the same record in. The wire-level details (record_errors, messages) are compared with Apache
Kafka's in tests/differential/scenarios_compaction.py."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from tests.server.support import Arena

HOUR_MS = 3_600_000
TIMEOUT_S = 30.0


def now_ms() -> int:
    return int(time.time() * 1000)


def create(arena: Arena, **config: str) -> str:
    name = f"ts-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": arena.bootstrap})
    admin.create_topics([NewTopic(name, 1, 1, config=config)])[name].result(TIMEOUT_S)
    return name


def deliver(arena: Arena, topic: str, timestamp: int) -> KafkaError | None:
    """The delivery outcome of one record (no retries: INVALID_TIMESTAMP is not retriable)."""
    outcome: list[KafkaError | None] = []

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        outcome.append(error)

    producer = Producer({"bootstrap.servers": arena.bootstrap, "acks": "all"})
    producer.produce(topic, b"value", b"key", timestamp=timestamp, on_delivery=on_delivery)
    assert producer.flush(TIMEOUT_S) == 0
    return outcome[0]


def log_end(arena: Arena, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": arena.bootstrap, "group.id": "ts-probe"})
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT_S)
        return int(high)
    finally:
        consumer.close()


def test_a_record_too_far_ahead_is_refused_until_the_bound_is_raised(arena: Arena) -> None:
    topic = create(arena)
    error = deliver(arena, topic, now_ms() + 2 * HOUR_MS)
    assert error is not None and error.code() == KafkaError.INVALID_TIMESTAMP, error
    assert log_end(arena, topic) == 0
    assert deliver(arena, topic, now_ms()) is None

    admin = AdminClient({"bootstrap.servers": arena.bootstrap})
    raised = ConfigEntry(
        "message.timestamp.after.max.ms",
        str(3 * HOUR_MS),
        incremental_operation=AlterConfigOpType.SET,
    )
    resource = ConfigResource("topic", topic, incremental_configs=[raised])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(TIMEOUT_S)
    assert deliver(arena, topic, now_ms() + 2 * HOUR_MS) is None
    assert log_end(arena, topic) == 2


def test_a_past_bound_refuses_old_records_and_log_append_time_checks_none(arena: Arena) -> None:
    bounded = create(arena, **{"message.timestamp.before.max.ms": "60000"})
    error = deliver(arena, bounded, now_ms() - 10 * 60_000)
    assert error is not None and error.code() == KafkaError.INVALID_TIMESTAMP, error
    assert deliver(arena, bounded, now_ms() - 1_000) is None
    assert log_end(arena, bounded) == 1

    stamped = create(arena, **{"message.timestamp.type": "LogAppendTime"})
    assert deliver(arena, stamped, now_ms() + 5 * HOUR_MS) is None


def test_refusing_a_bad_config_value_is_kafkas(arena: Arena) -> None:
    admin = AdminClient({"bootstrap.servers": arena.bootstrap})
    name = f"ts-{uuid.uuid4().hex[:8]}"
    future = admin.create_topics(
        [NewTopic(name, 1, 1, config={"message.timestamp.after.max.ms": "-1"})]
    )[name]
    try:
        future.result(TIMEOUT_S)
    except KafkaException as exc:
        assert exc.args[0].code() == KafkaError.INVALID_CONFIG
    else:
        raise AssertionError("a negative message.timestamp.after.max.ms was accepted")
