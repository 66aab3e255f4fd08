"""confluent-kafka (librdkafka), unmodified, against shoal: produce with every acks setting and
compression codec, consume from the beginning, from the end and by timestamp, metadata and
watermarks, and one round trip of 100,000 records.

Idempotence is off here (another suite covers the idempotent producer); consumers use assign()
and never join a group (librdkafka wants a group.id all the same), so these tests need nothing
of group coordination.
"""

from __future__ import annotations

import time

import confluent_kafka as ck
import pytest

from shoal.embedded import EmbeddedBroker
from tests.conformance.confluent import all_from, consume, consumer, drain, produce
from tests.conformance.records import assert_same_records, assert_stored_with, by_partition, dataset
from tests.conformance.support import TopicMaker

pytestmark = pytest.mark.integration

CODECS = ("gzip", "lz4", "none", "snappy", "zstd")


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_produce_and_consume_from_beginning(
    broker: EmbeddedBroker, new_topic: TopicMaker, acks: str, codec: str
) -> None:
    partitions = 3
    topic = new_topic(partitions)
    records = dataset(1_500, partitions, seed=sum(map(ord, acks + codec)), null_header_values=True)
    reports = produce(
        broker.bootstrap_servers, topic, records, acks=acks, **{"compression.type": codec}
    )
    if acks != "0":  # with acks=0 nobody tells the producer its offsets
        offsets = sorted((m.partition(), m.offset()) for m in reports)
        counts = {p: len(rs) for p, rs in by_partition(records).items()}
        assert offsets == [(p, o) for p in sorted(counts) for o in range(counts[p])]
    got = consume(broker.bootstrap_servers, topic, all_from(partitions), len(records))
    assert_same_records(records, got)
    assert_stored_with(broker.bootstrap_servers, topic, partitions, codec)


def test_consume_from_end_sees_only_new_records(
    broker: EmbeddedBroker, new_topic: TopicMaker
) -> None:
    partitions = 3
    topic = new_topic(partitions)
    old = dataset(600, partitions, seed=1)
    produce(broker.bootstrap_servers, topic, old, acks="all")
    c = consumer(broker.bootstrap_servers)
    try:
        c.assign([ck.TopicPartition(topic, p, ck.OFFSET_END) for p in range(partitions)])
        assert drain(c, set(range(partitions)), 0) == []  # resolved the end; nothing old
        new = dataset(400, partitions, seed=2)
        produce(broker.bootstrap_servers, topic, new, acks="1")
        got = drain(c, set(range(partitions)), len(new))
    finally:
        c.close()
    starts = {p: len(rs) for p, rs in by_partition(old).items()}
    assert_same_records(new, got, start_offsets=starts)


def test_consume_from_an_offset_in_the_middle(
    broker: EmbeddedBroker, new_topic: TopicMaker
) -> None:
    partitions = 2
    topic = new_topic(partitions)
    records = dataset(1_000, partitions, seed=3)
    produce(broker.bootstrap_servers, topic, records, acks="all", **{"compression.type": "lz4"})
    per_partition = by_partition(records)
    starts = {p: len(rs) // 3 for p, rs in per_partition.items()}
    rest = [r for p, rs in per_partition.items() for r in rs[starts[p] :]]
    got = consume(broker.bootstrap_servers, topic, starts, len(rest))
    assert_same_records(rest, got, start_offsets=starts)


def test_offsets_for_times_and_consume_from_there(
    broker: EmbeddedBroker, new_topic: TopicMaker
) -> None:
    partitions = 3
    topic = new_topic(partitions)
    base_ms = int(time.time() * 1000) - 3_600_000
    records = dataset(900, partitions, seed=4, timestamps_from_ms=base_ms)
    # Small batches, so that lookups land inside batches, not only on their first records.
    produce(broker.bootstrap_servers, topic, records, acks="all", **{"batch.num.messages": 7})
    per_partition = by_partition(records)
    c = consumer(broker.bootstrap_servers)
    try:
        for target_index in (0, 1, 450, 451, 899):
            target = base_ms + target_index * 1000
            found = c.offsets_for_times(
                [ck.TopicPartition(topic, p, target) for p in range(partitions)], timeout=30
            )
            for tp in found:
                assert tp.error is None
                times = [r.timestamp_ms for r in per_partition[tp.partition]]
                want = next((i for i, t in enumerate(times) if t is not None and t >= target), -1)
                assert tp.offset == want, (target_index, tp.partition)
        after_all = c.offsets_for_times(
            [ck.TopicPartition(topic, p, base_ms + 10_000_000) for p in range(partitions)],
            timeout=30,
        )
        assert [tp.offset for tp in after_all] == [ck.OFFSET_END] * partitions
    finally:
        c.close()
    target = base_ms + 450 * 1000
    starts = {
        p: next(i for i, r in enumerate(rs) if (r.timestamp_ms or 0) >= target)
        for p, rs in per_partition.items()
    }
    rest = [r for p, rs in per_partition.items() for r in rs[starts[p] :]]
    got = consume(broker.bootstrap_servers, topic, starts, len(rest))
    assert_same_records(rest, got, start_offsets=starts)


def test_metadata_and_watermarks(broker: EmbeddedBroker, new_topic: TopicMaker) -> None:
    partitions = 4
    topic = new_topic(partitions)
    records = dataset(400, partitions, seed=5)
    produce(broker.bootstrap_servers, topic, records, acks="1")
    c = consumer(broker.bootstrap_servers)
    try:
        metadata = c.list_topics(topic, timeout=30)
        assert sorted(metadata.topics[topic].partitions) == list(range(partitions))
        assert metadata.topics[topic].error is None
        (broker_meta,) = metadata.brokers.values()
        assert f"{broker_meta.host}:{broker_meta.port}" == broker.bootstrap_servers
        for p, rs in by_partition(records).items():
            low, high = c.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=30)
            assert (low, high) == (0, len(rs))
        unknown = c.list_topics("no-such-topic-here", timeout=30).topics["no-such-topic-here"]
        assert unknown.error is not None
    finally:
        c.close()


def test_one_hundred_thousand_records_round_trip(
    broker: EmbeddedBroker, new_topic: TopicMaker
) -> None:
    partitions = 4
    topic = new_topic(partitions)
    records = dataset(100_000, partitions, seed=6, value_bytes_max=120, null_header_values=True)
    produce(broker.bootstrap_servers, topic, records, acks="all", **{"compression.type": "snappy"})
    got = consume(broker.bootstrap_servers, topic, all_from(partitions), len(records))
    assert_same_records(records, got)
