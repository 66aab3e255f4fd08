"""Kafka Streams 4.4 on shoal: a word count with a state store (must-show 4 of issue 15).

``tests/peers/java/ShoalWordCount.java``, compiled here with the JDK's javac against the
kafka-streams jars from Maven Central, counts the words of the ``lines`` topic: a ``groupBy``
(a repartition topic, which Streams purges with DeleteRecords after each commit) and a
``count`` (a RocksDB store whose changelog topic Streams creates with cleanup.policy=compact and
the segment.ms and min.cleanable.dirty.ratio the program sets). The test

1. runs it on a first batch of lines and checks the counts it publishes;
2. SIGKILLs the JVM, deletes its local state and starts a new one: the store can then only come
   back by restoring the changelog from shoal, and a second batch of lines must give counts
   over both batches;
3. checks the repartition topic was purged (its log start offset moved) and the changelog was
   compacted by shoal's cleaner (fewer records remain than Streams wrote).
"""

from __future__ import annotations

import shutil
import struct
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from shoal.embedded import EmbeddedBroker
from tests.peers.kafka_apps import JvmApp, compile_java, read_partition, streams_classpath

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

APP_ID = "wordcount"
CHANGELOG = f"{APP_ID}-counts-changelog"
REPARTITION = f"{APP_ID}-words-repartition"
START_TIMEOUT_S = 90.0
"""A JVM start, Streams' rebalance and (the second time) the restore, on a busy 2-core machine."""
WAIT_S = 60.0
WORDS = ["apple", "pear", "plum", "fig", "kiwi"]


def _lines(start: int, count: int) -> list[str]:
    """Deterministic lines of two to four words."""
    return [
        " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(2 + i % 3))
        for i in range(start, start + count)
    ]


def _produce(bootstrap: str, lines: list[str]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i, line in enumerate(lines):
        producer.produce("lines", key=str(i).encode(), value=line.encode())
    assert producer.flush(30) == 0


def _wait_until(condition: Callable[[], bool], what: str, app: JvmApp) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {WAIT_S} s:\n{app.tail()}")
        time.sleep(0.2)


def _caught_up(admin: AdminClient, consumer: Consumer) -> bool:
    """The app committed the end of ``lines`` and of its repartition topic."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    topics = [TopicPartition("lines", 0), TopicPartition(REPARTITION, 0)]
    future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(APP_ID, topics)])
    committed = {
        tp.topic: tp.offset for tp in future[APP_ID].result(10).topic_partitions if tp.error is None
    }
    for tp in topics:
        _low, high = consumer.get_watermark_offsets(tp, timeout=10)
        if committed.get(tp.topic, -1) != high:
            return False
    return True


def _counts(bootstrap: str) -> dict[str, int]:
    latest = {m.key(): m.value() for m in read_partition(bootstrap, "counts")}
    return {k.decode(): struct.unpack(">q", v)[0] for k, v in latest.items() if v is not None}


def test_word_count_restores_its_store_from_a_compacted_changelog(
    shoal_broker_factory: Callable[..., EmbeddedBroker], tmp_path: Path
) -> None:
    broker = shoal_broker_factory(log_cleaner_backoff_ms=50, group_initial_rebalance_delay_ms=0)
    bootstrap = broker.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic("lines", 1), NewTopic("counts", 1)]).values():
        future.result(10)
    classpath = compile_java("ShoalWordCount.java", streams_classpath(), tmp_path / "classes")
    state_dir = tmp_path / "state"
    args = (bootstrap, APP_ID, str(state_dir), "lines", "counts")
    checker = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})

    first_lines, second_lines = _lines(0, 40), _lines(40, 30)
    app = JvmApp(classpath, "ShoalWordCount", *args, log_path=tmp_path / "streams-1.log")
    try:
        app.start().wait_for("STATE RUNNING", START_TIMEOUT_S)
        _produce(bootstrap, first_lines)
        _wait_until(lambda: _caught_up(admin, checker), "processing the first lines", app)
        first = Counter(w for line in first_lines for w in line.split())
        assert _counts(bootstrap) == first
    finally:
        app.kill()
    # Streams created its changelog compacted, with the configs the program gave it.
    resource = ConfigResource(ResourceType.TOPIC, CHANGELOG)
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["cleanup.policy"].value == "compact"
    assert configs["min.cleanable.dirty.ratio"].value == "0.01"

    shutil.rmtree(state_dir)  # nothing local left: the store must come from the changelog
    app = JvmApp(classpath, "ShoalWordCount", *args, log_path=tmp_path / "streams-2.log")
    try:
        app.start().wait_for("STATE RUNNING", START_TIMEOUT_S)
        _produce(bootstrap, second_lines)
        _wait_until(lambda: _caught_up(admin, checker), "processing the second lines", app)
        both = Counter(w for line in first_lines + second_lines for w in line.split())
        assert _counts(bootstrap) == both

        # Streams purged its repartition topic up to what it committed (DeleteRecords).
        repartition = TopicPartition(REPARTITION, 0)
        _wait_until(
            lambda: checker.get_watermark_offsets(repartition, timeout=10)[0] > 0,
            "the repartition topic's purge",
            app,
        )
        # Every count update went to the changelog (no record cache); the cleaner keeps the
        # latest per word below the active segment.
        written = checker.get_watermark_offsets(TopicPartition(CHANGELOG, 0), timeout=10)[1]
        assert written == sum(both.values())
        cleaner = broker.app.logs.cleaner if broker.app.logs is not None else None
        assert cleaner is not None
        _wait_until(lambda: len(read_partition(bootstrap, CHANGELOG)) < written, "compaction", app)
        remaining = read_partition(bootstrap, CHANGELOG)
        latest = {
            m.key().decode(): struct.unpack(">q", m.value())[0]
            for m in remaining
            if m.value() is not None
        }
        assert latest == both, "compaction kept each word's latest count"
    finally:
        app.stop()
        checker.close()
