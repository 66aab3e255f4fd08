"""kafka-python, unmodified, against shoal (it negotiates recent versions: Metadata 13, Fetch
12...). Producers with every codec and acks setting, consumers by assign + seek (no group),
offsets by time and from the end, and 100,000 records round trip."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import pytest

with warnings.catch_warnings():
    # kafka-python reads its bundled schemas with importlib.resources.read_text, deprecated
    # since Python 3.11; the warning is theirs, and this suite turns warnings into errors.
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka
    from kafka import TopicPartition

from shoal.embedded import EmbeddedBroker
from tests.conformance.records import (
    TIMEOUT_S,
    Got,
    Sent,
    assert_same_records,
    assert_stored_with,
    by_partition,
    dataset,
)
from tests.conformance.support import TopicMaker

pytestmark = [
    pytest.mark.integration,
    # The same warning, when kafka-python loads a schema lazily at run time.
    pytest.mark.filterwarnings("ignore:read_text is deprecated:DeprecationWarning"),
]

CASES = {  # codec -> acks, so that every acks setting is used too
    "none": "all",
    "gzip": 0,
    "snappy": 1,
    "lz4": "all",
    "zstd": 1,
}


def produce(bootstrap: str, topic: str, records: Sequence[Sent], **config: Any) -> list[Any]:
    producer = kafka.KafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=5, **config
    )
    try:
        futures = [
            producer.send(
                topic,
                key=r.key,
                value=r.value,
                partition=r.partition,
                headers=list(r.headers),
                timestamp_ms=r.timestamp_ms,
            )
            for r in records
        ]
        producer.flush(TIMEOUT_S)
        return [future.get(TIMEOUT_S) for future in futures]
    finally:
        producer.close(TIMEOUT_S)


def new_consumer(bootstrap: str) -> Any:
    return kafka.KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)


def read(consumer: Any, tps: list[Any], expected: int) -> list[Got]:
    """Poll until ``expected`` records arrived and every partition is read to its end (so any
    extra record would have been counted)."""
    ends = consumer.end_offsets(tps)
    got: list[Got] = []
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        batches = consumer.poll(timeout_ms=500, max_records=10_000)
        got.extend(to_got(m) for messages in batches.values() for m in messages)
        at_end = all(consumer.position(tp) == ends[tp] for tp in tps)
        if len(got) >= expected and at_end:
            break
    assert len(got) >= expected, f"{len(got)} of {expected} records arrived"
    return got


def consume_all(bootstrap: str, topic: str, partitions: int, expected: int) -> list[Got]:
    consumer = new_consumer(bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        return read(consumer, tps, expected)
    finally:
        consumer.close()


def to_got(message: Any) -> Got:
    return Got(
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=tuple(message.headers or ()),
        timestamp_ms=message.timestamp,
    )


@pytest.mark.parametrize("codec", sorted(CASES))
def test_produce_and_consume(broker: EmbeddedBroker, new_topic: TopicMaker, codec: str) -> None:
    partitions = 3
    topic = new_topic(partitions)
    records = dataset(1_500, partitions, seed=len(codec) * 17)
    compression = None if codec == "none" else codec
    metadata = produce(
        broker.bootstrap_servers, topic, records, acks=CASES[codec], compression_type=compression
    )
    if CASES[codec] != 0:
        offsets = sorted((m.partition, m.offset) for m in metadata)
        counts = {p: len(rs) for p, rs in by_partition(records).items()}
        assert offsets == [(p, o) for p in sorted(counts) for o in range(counts[p])]
    got = consume_all(broker.bootstrap_servers, topic, partitions, len(records))
    assert_same_records(records, got)
    assert_stored_with(broker.bootstrap_servers, topic, partitions, codec)


def test_offsets_by_time_and_from_the_end(broker: EmbeddedBroker, new_topic: TopicMaker) -> None:
    partitions = 3
    topic = new_topic(partitions)
    base_ms = int(time.time() * 1000) - 3_600_000
    records = dataset(600, partitions, seed=21, timestamps_from_ms=base_ms)
    per_partition = by_partition(records)
    produce(broker.bootstrap_servers, topic, records, acks="all", batch_size=2048)
    consumer = new_consumer(broker.bootstrap_servers)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        target = base_ms + 300 * 1000 + 1
        found = consumer.offsets_for_times(dict.fromkeys(tps, target))
        for tp, at in found.items():
            times = [r.timestamp_ms or 0 for r in per_partition[tp.partition]]
            want = next(i for i, t in enumerate(times) if t >= target)
            assert at is not None
            assert (at.offset, at.timestamp) == (want, times[want])
        beyond = consumer.offsets_for_times(dict.fromkeys(tps, base_ms + 10**9))
        assert list(beyond.values()) == [None] * partitions
        assert consumer.beginning_offsets(tps) == dict.fromkeys(tps, 0)
        ends = consumer.end_offsets(tps)
        assert ends == {tp: len(per_partition[tp.partition]) for tp in tps}
        # Seek to the found offsets and read the rest.
        for tp, at in found.items():
            consumer.seek(tp, at.offset)
        starts = {tp.partition: at.offset for tp, at in found.items()}
        rest = [r for p, rs in per_partition.items() for r in rs[starts[p] :]]
        assert_same_records(rest, read(consumer, tps, len(rest)), start_offsets=starts)
        # From the end: only what is produced afterwards.
        consumer.seek_to_end(*tps)
        assert [consumer.position(tp) for tp in tps] == [ends[tp] for tp in tps]
        new = dataset(150, partitions, seed=22)
        produce(broker.bootstrap_servers, topic, new, acks=1)
        got = read(consumer, tps, len(new))
        assert_same_records(new, got, start_offsets={tp.partition: ends[tp] for tp in tps})
    finally:
        consumer.close()


@pytest.mark.slow
def test_one_hundred_thousand_records_round_trip(
    broker: EmbeddedBroker, new_topic: TopicMaker
) -> None:
    partitions = 4
    topic = new_topic(partitions)
    records = dataset(100_000, partitions, seed=23, value_bytes_max=120)
    produce(broker.bootstrap_servers, topic, records, acks=1, compression_type="zstd")
    got = consume_all(broker.bootstrap_servers, topic, partitions, len(records))
    assert_same_records(records, got)
