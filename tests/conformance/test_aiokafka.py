"""aiokafka, unmodified, against shoal: the old non-flexible protocol versions (Produce <= 8,
Fetch <= 11, Metadata <= 5, ApiVersions <= 2). Producers with every codec and acks setting,
consumers by assign + seek (no group), offsets by time, and 100,000 records round trip."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import aiokafka
import pytest
from aiokafka.structs import TopicPartition

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

pytestmark = pytest.mark.integration

CASES = {  # codec -> acks, so that every acks setting is used too
    "none": 0,
    "gzip": 1,
    "snappy": "all",
    "lz4": 1,
    "zstd": "all",
}


async def produce(bootstrap: str, topic: str, records: Sequence[Sent], **config: Any) -> list[Any]:
    producer = aiokafka.AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=5, **config
    )
    await producer.start()
    try:
        pending = []
        for r in records:
            pending.append(
                await producer.send(
                    topic,
                    key=r.key,
                    value=r.value,
                    partition=r.partition,
                    headers=list(r.headers) or None,
                    timestamp_ms=r.timestamp_ms,
                )
            )
        return list(await asyncio.wait_for(asyncio.gather(*pending), TIMEOUT_S))
    finally:
        await producer.stop()


async def consume(
    bootstrap: str, topic: str, starts: dict[int, int | None], expected: int
) -> list[Got]:
    """Assign, seek (None: to the beginning), read ``expected`` records, then check that no
    more arrive before every partition is read to its end."""
    consumer = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in starts]
        consumer.assign(tps)
        for tp in tps:
            offset = starts[tp.partition]
            if offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
        ends = await consumer.end_offsets(tps)
        got: list[Got] = []
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            got.extend(to_got(m) for messages in batches.values() for m in messages)
            positions = [await consumer.position(tp) for tp in tps]
            if len(got) >= expected and positions == [ends[tp] for tp in tps]:
                break
        assert len(got) >= expected, f"{len(got)} of {expected} records arrived"
        return got
    finally:
        await consumer.stop()


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
    records = dataset(1_500, partitions, seed=len(codec) * 31)
    compression = None if codec == "none" else codec

    async def scenario() -> list[Got]:
        await produce(
            broker.bootstrap_servers,
            topic,
            records,
            acks=CASES[codec],
            compression_type=compression,
        )
        return await consume(
            broker.bootstrap_servers, topic, dict.fromkeys(range(partitions)), len(records)
        )

    assert_same_records(records, asyncio.run(scenario()))
    assert_stored_with(broker.bootstrap_servers, topic, partitions, codec)


def test_offsets_by_time_and_from_the_end(broker: EmbeddedBroker, new_topic: TopicMaker) -> None:
    partitions = 2
    topic = new_topic(partitions)
    base_ms = int(time.time() * 1000) - 3_600_000
    records = dataset(400, partitions, seed=11, timestamps_from_ms=base_ms)
    per_partition = by_partition(records)

    async def scenario() -> None:
        await produce(broker.bootstrap_servers, topic, records, acks="all", max_batch_size=2048)
        consumer = aiokafka.AIOKafkaConsumer(
            bootstrap_servers=broker.bootstrap_servers, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            target = base_ms + 200 * 1000 + 1
            found = await consumer.offsets_for_times(dict.fromkeys(tps, target))
            for tp, at in found.items():
                times = [r.timestamp_ms or 0 for r in per_partition[tp.partition]]
                want = next(i for i, t in enumerate(times) if t >= target)
                assert at is not None
                assert (at.offset, at.timestamp) == (want, times[want])
            beyond = await consumer.offsets_for_times(dict.fromkeys(tps, base_ms + 10**9))
            assert list(beyond.values()) == [None, None]
            assert await consumer.beginning_offsets(tps) == dict.fromkeys(tps, 0)
            ends = await consumer.end_offsets(tps)
            assert ends == {tp: len(per_partition[tp.partition]) for tp in tps}
            # From the end: the position resolves to the log end, and only records produced
            # afterwards arrive.
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            assert [await consumer.position(tp) for tp in tps] == [ends[tp] for tp in tps]
            new = dataset(100, partitions, seed=12)
            await produce(broker.bootstrap_servers, topic, new, acks=1)
            got: list[Got] = []
            deadline = time.monotonic() + TIMEOUT_S
            while len(got) < len(new) and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                got.extend(to_got(m) for messages in batches.values() for m in messages)
            starts = {tp.partition: ends[tp] for tp in tps}
            assert_same_records(new, got, start_offsets=starts)
        finally:
            await consumer.stop()

    asyncio.run(scenario())


@pytest.mark.slow
def test_one_hundred_thousand_records_round_trip(
    broker: EmbeddedBroker, new_topic: TopicMaker
) -> None:
    partitions = 4
    topic = new_topic(partitions)
    records = dataset(100_000, partitions, seed=13, value_bytes_max=120)

    async def scenario() -> list[Got]:
        await produce(broker.bootstrap_servers, topic, records, acks="all", compression_type="lz4")
        return await consume(
            broker.bootstrap_servers, topic, dict.fromkeys(range(partitions)), len(records)
        )

    assert_same_records(records, asyncio.run(scenario()))
