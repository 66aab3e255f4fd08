"""confluent-kafka helpers the conformance tests share: produce records, consume them from
given offsets (assign(), no group)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import confluent_kafka as ck

from tests.conformance.records import TIMEOUT_S, Got, Sent


def produce(bootstrap: str, topic: str, records: Sequence[Sent], **config: Any) -> list[Any]:
    """Produce ``records`` to their partitions; return the delivery reports, all successful."""
    producer = ck.Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": False,
            "linger.ms": 5,
            **config,
        }
    )
    reports: list[Any] = []
    errors: list[Any] = []

    def on_delivery(error: Any, message: Any) -> None:
        (errors if error is not None else reports).append(error or message)

    for record in records:
        extra = {} if record.timestamp_ms is None else {"timestamp": record.timestamp_ms}
        while True:
            try:
                producer.produce(
                    topic,
                    key=record.key,
                    value=record.value,
                    headers=list(record.headers) or None,
                    partition=record.partition,
                    on_delivery=on_delivery,
                    **extra,
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)
    remaining = producer.flush(TIMEOUT_S)
    assert remaining == 0, f"{remaining} records still undelivered after {TIMEOUT_S} s"
    assert not errors, f"{len(errors)} delivery errors, the first: {errors[0]}"
    assert len(reports) == len(records)
    return reports


def consumer(bootstrap: str, **config: Any) -> Any:
    return ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "conformance-unused",  # librdkafka requires one; no group is joined
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            **config,
        }
    )


def consume(
    bootstrap: str, topic: str, starts: dict[int, int], expected: int, **config: Any
) -> list[Got]:
    """Assign the partitions at ``starts`` and read until ``expected`` records arrived and every
    partition reported its end (so extra records, had there been any, would be counted)."""
    c = consumer(bootstrap, **config)
    try:
        c.assign([ck.TopicPartition(topic, p, offset) for p, offset in starts.items()])
        return drain(c, set(starts), expected)
    finally:
        c.close()


def drain(c: Any, partitions: set[int], expected: int) -> list[Got]:
    got: list[Got] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + TIMEOUT_S
    while (len(got) < expected or at_end != partitions) and time.monotonic() < deadline:
        for message in c.consume(num_messages=10_000, timeout=0.05):
            error = message.error()
            if error is not None:
                assert error.code() == ck.KafkaError._PARTITION_EOF, error
                at_end.add(message.partition())
                continue
            at_end.discard(message.partition())
            got.append(to_got(message))
    assert len(got) >= expected, f"{len(got)} of {expected} records arrived"
    return got


def to_got(message: Any) -> Got:
    _kind, timestamp = message.timestamp()
    return Got(
        partition=message.partition(),
        offset=message.offset(),
        key=message.key(),
        value=message.value(),
        headers=tuple(message.headers() or ()),
        timestamp_ms=timestamp,
    )


def all_from(partitions: int, offset: int = ck.OFFSET_BEGINNING) -> dict[int, int]:
    return dict.fromkeys(range(partitions), offset)
