"""Reading a topic back with confluent-kafka and checking it against what producers sent."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

READ_TIMEOUT_S: Final = 60.0
"""A bound on reading a topic back; far more than the reads take on a loaded CI machine."""


def read_partitions(
    bootstrap: str, topic: str, ends: Mapping[int, int]
) -> dict[int, list[tuple[int, bytes]]]:
    """``partition -> [(offset, value)]`` from offset 0 up to ``ends[partition]``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            # No group coordination is used (assign, no commits); librdkafka still wants an id.
            "group.id": "shoal-idempotence-check",
            "enable.auto.commit": False,
            "fetch.max.bytes": 8 * 1024 * 1024,
        }
    )
    got: dict[int, list[tuple[int, bytes]]] = {p: [] for p in ends}
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + READ_TIMEOUT_S
        while any(_next(got[p]) < end for p, end in ends.items()):
            if time.monotonic() > deadline:
                have = {p: _next(got[p]) for p in ends}
                raise AssertionError(f"read {have} of {dict(ends)} within {READ_TIMEOUT_S} s")
            for message in consumer.consume(num_messages=10_000, timeout=0.5):
                if message.error() is not None:
                    raise KafkaException(message.error())
                partition, offset, value = message.partition(), message.offset(), message.value()
                assert partition is not None and offset is not None and value is not None
                got[partition].append((offset, value))
    finally:
        consumer.close()
    return got


def _next(messages: Sequence[tuple[int, bytes]]) -> int:
    return messages[-1][0] + 1 if messages else 0


def log_ends(bootstrap: str, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "shoal-idempotence-check"})
    try:
        return {
            p: int(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
            for p in partitions
        }
    finally:
        consumer.close()


def assert_exactly_once_in_order(
    stored: Mapping[int, list[tuple[int, bytes]]],
    sent: Mapping[int, Sequence[bytes]],
    acked: Mapping[int, Mapping[bytes, int]],
    *,
    all_acked: bool,
) -> None:
    """Per partition: gap-free offsets from 0; no value twice; values in the order sent; every
    acknowledged value stored once at the offset its acknowledgement gave. With ``all_acked``,
    every sent value was acknowledged (nothing may be missing)."""
    for partition, messages in stored.items():
        offsets = [offset for offset, _ in messages]
        assert offsets == list(range(len(messages))), f"partition {partition}: offset gaps"
        values = [value for _, value in messages]
        duplicates = len(values) - len(set(values))
        assert duplicates == 0, f"partition {partition}: {duplicates} values stored twice"
        order = {value: i for i, value in enumerate(sent[partition])}
        unknown = [v for v in values if v not in order]
        assert not unknown, f"partition {partition}: values never sent: {unknown[:5]}"
        positions = [order[v] for v in values]
        assert positions == sorted(positions), f"partition {partition}: values out of order"
        where = {value: offset for offset, value in messages}
        lost = [v for v in acked[partition] if v not in where]
        assert not lost, f"partition {partition}: {len(lost)} acknowledged values lost: {lost[:5]}"
        moved = [v for v, offset in acked[partition].items() if where[v] != offset]
        assert not moved, f"partition {partition}: values not at their acknowledged offset"
        if all_acked:
            assert values == list(sent[partition]), f"partition {partition}: not all values stored"


def delivery_recorder(
    acked: dict[int, dict[bytes, int]], failed: list[Any]
) -> Any:  # confluent-kafka callbacks are untyped
    def on_delivery(err: Any, message: Any) -> None:
        if err is not None:
            failed.append(err)
        else:
            acked[message.partition()][message.value()] = message.offset()

    return on_delivery
