"""Kafka Streams 4.4 with ``processing.guarantee=exactly_once_v2`` on shoal (issue 14).

The word count of ``tests/peers/java/ShoalWordCount.java`` in exactly-once mode: each commit of
Streams is one transaction of its producer holding the repartition, changelog and output records
and the consumed offsets. With shoal finalizing ``transaction.version`` 2, Kafka 4.4's client
runs it on transactions V2 (partitions added by Produce, offsets by TxnOffsetCommit v5, an epoch
bump per commit). A read_committed reader of the output must see exactly the counts of the
input, and the output must hold the transactions' markers.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from shoal.embedded import EmbeddedBroker
from tests.peers.kafka_apps import JvmApp, compile_java, streams_classpath
from tests.peers.test_kafka_streams import START_TIMEOUT_S, _lines, _produce, _wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

APP_ID = "wordcount-eos"
REPARTITION = f"{APP_ID}-words-repartition"
READ_TIMEOUT_S = 30.0
LINES = 40


def _read_committed(bootstrap: str, topic: str) -> list[ck.Message]:
    """Every record of partition 0 a read_committed reader gets, up to the partition's end."""
    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{topic}",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    consumer.assign([ck.TopicPartition(topic, 0, 0)])
    seen: list[ck.Message] = []
    deadline = time.monotonic() + READ_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == ck.KafkaError._PARTITION_EOF:
                    return seen
                continue
            seen.append(message)
    finally:
        consumer.close()
    raise AssertionError(f"no end of {topic} within {READ_TIMEOUT_S} s ({len(seen)} read)")


def _caught_up(admin: AdminClient, consumer: ck.Consumer) -> bool:
    """The app committed (transactionally) the end of ``lines`` and of its repartition topic:
    their ends are then the last stable offsets, past the markers."""
    topics = [ck.TopicPartition("lines", 0), ck.TopicPartition(REPARTITION, 0)]
    future = admin.list_consumer_group_offsets([ck.ConsumerGroupTopicPartitions(APP_ID, topics)])
    committed = {
        tp.topic: tp.offset for tp in future[APP_ID].result(10).topic_partitions if tp.error is None
    }
    for tp in topics:
        _low, high = consumer.get_watermark_offsets(tp, timeout=10)
        if committed.get(tp.topic, -1) != high:
            return False
    return True


def test_exactly_once_v2_word_count(
    shoal_broker_factory: Callable[..., EmbeddedBroker], tmp_path: Path
) -> None:
    broker = shoal_broker_factory(group_initial_rebalance_delay_ms=0)
    bootstrap = broker.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic("lines", 1), NewTopic("counts", 1)]).values():
        future.result(10)
    classpath = compile_java("ShoalWordCount.java", streams_classpath(), tmp_path / "classes")
    args = (bootstrap, APP_ID, str(tmp_path / "state"), "lines", "counts", "exactly_once_v2")
    checker = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    lines = _lines(0, LINES)
    app = JvmApp(classpath, "ShoalWordCount", *args, log_path=tmp_path / "streams.log")
    try:
        app.start().wait_for("STATE RUNNING", START_TIMEOUT_S)
        _produce(bootstrap, lines)
        _wait_until(lambda: _caught_up(admin, checker), "processing the lines", app)
    finally:
        app.kill()
    counts = _read_committed(bootstrap, "counts")
    latest = {m.key(): m.value() for m in counts}
    got = {k.decode(): int.from_bytes(v, "big") for k, v in latest.items() if v is not None}
    assert got == Counter(w for line in lines for w in line.split())
    # Every count update is in a committed transaction: the markers sit between them.
    _low, high = checker.get_watermark_offsets(ck.TopicPartition("counts", 0), timeout=10)
    checker.close()
    assert high > len(counts)
