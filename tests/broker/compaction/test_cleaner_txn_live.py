"""Compaction of a topic written by transactional producers (confluent-kafka), on a running
broker whose cleaner thread runs every 50 ms.

Committed, aborted and still-open transactions write the same keys. After the cleaner ran, a
read_committed consumer sees exactly the committed latest values; the aborted records are gone
from the log; the open transaction's records and the values they would replace are untouched.
When the open transaction then commits, its values become the latest and the next clean
compacts the values they replace.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from shoal.embedded import EmbeddedBroker
from tests.broker.transactions.clients import TIMEOUT_S, transactional_producer

TOPIC = "txn-changelog"
WAIT_S = 30.0
"""Bound on waiting for the cleaner thread (it usually takes well under a second)."""
ROLL_S = 0.15
"""Longer than the topic's segment.ms (100): the next append rolls the segment."""


def _read(bootstrap: str, isolation: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every (key, value) a consumer with ``isolation`` reads to the end it stops at."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(TOPIC, 0)])
    seen: list[tuple[bytes | None, bytes | None]] = []
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                break
            seen.append((message.key(), message.value()))
    finally:
        consumer.close()
    return seen


def _wait_until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert check()


def _roll(producer: Producer, tag: str, count: int = 3) -> None:
    """Non-transactional records on other keys, each in a new segment, so that what came
    before is sealed and cleanable."""
    for i in range(count):
        time.sleep(ROLL_S)
        producer.produce(TOPIC, key=b"filler", value=f"{tag}{i}".encode(), partition=0)
        producer.flush(TIMEOUT_S)


def test_cleaning_a_transactional_topic_keeps_the_committed_latest_values(
    shoal_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    broker = shoal_broker_factory(log_cleaner_backoff_ms=50)
    bootstrap = broker.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bootstrap})
    configs = {
        "cleanup.policy": "compact",
        "segment.ms": "100",
        "min.cleanable.dirty.ratio": "0.01",
    }
    admin.create_topics([NewTopic(TOPIC, 1, config=configs)])[TOPIC].result(TIMEOUT_S)
    plain = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for key in (b"k0", b"k1", b"k2", b"k3"):
        plain.produce(TOPIC, key=key, value=b"base", partition=0)
    plain.flush(TIMEOUT_S)

    committer = transactional_producer(broker, "committer")
    committer.begin_transaction()
    committer.produce(TOPIC, key=b"k0", value=b"committed", partition=0)
    committer.produce(TOPIC, key=b"k1", value=b"committed", partition=0)
    committer.commit_transaction(TIMEOUT_S)
    aborter = transactional_producer(broker, "aborter")
    aborter.begin_transaction()
    aborter.produce(TOPIC, key=b"k0", value=b"aborted", partition=0)
    aborter.produce(TOPIC, key=b"k2", value=b"aborted", partition=0)
    aborter.flush(TIMEOUT_S)
    aborter.abort_transaction(TIMEOUT_S)
    _roll(plain, "a")
    opener = transactional_producer(broker, "opener")
    opener.begin_transaction()
    opener.produce(TOPIC, key=b"k3", value=b"open", partition=0)
    opener.flush(TIMEOUT_S)
    _roll(plain, "b")

    # The cleaner compacts what lies before the open transaction: k0's and k1's base values
    # and the aborted records go; k3's base value must stay (the open one may still abort).
    def cleaned() -> bool:
        return (b"k0", b"base") not in _read(bootstrap, "read_uncommitted")

    _wait_until(cleaned)
    everything = _read(bootstrap, "read_uncommitted")
    assert (b"k0", b"aborted") not in everything and (b"k2", b"aborted") not in everything
    assert (b"k3", b"base") in everything and (b"k3", b"open") in everything
    committed = dict(_read(bootstrap, "read_committed"))
    assert {k: committed[k] for k in (b"k0", b"k1", b"k2", b"k3")} == {
        b"k0": b"committed",
        b"k1": b"committed",
        b"k2": b"base",
        b"k3": b"base",
    }

    opener.commit_transaction(TIMEOUT_S)
    _roll(plain, "c")
    _wait_until(lambda: (b"k3", b"base") not in _read(bootstrap, "read_uncommitted"))
    committed = dict(_read(bootstrap, "read_committed"))
    assert committed[b"k3"] == b"open"
    assert committed[b"k0"] == b"committed" and committed[b"k2"] == b"base"
