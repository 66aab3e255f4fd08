"""KIP-932 share groups (shoal, Apache Kafka) for the share-group bench, through confluent-kafka's
ShareConsumer (librdkafka) with explicit acknowledgement.

Each consumer child acknowledges every record of a poll (ACCEPT, or RELEASE for the records
given back once) and polls again: the acknowledgements ride on its next ShareFetch, as the
share consumer sends them.
"""

from __future__ import annotations

import time
import traceback
from typing import Any, Final

from bench.peers.share_common import (
    POLL_S,
    RUN_TIMEOUT_S,
    ChildResult,
    Shared,
    id_of,
    released_on_first_delivery,
    value_of,
)
from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

ADMIN_TIMEOUT_S: Final = 60.0
FLUSH_TIMEOUT_S: Final = 120.0
FETCH_RECORDS: Final = 500
"""max.poll.records: librdkafka's default for the share consumer, stated so the RabbitMQ
consumers get the same prefetch."""
PRODUCER: Final[dict[str, Any]] = {
    "acks": "all",
    "linger.ms": 5,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 1_000_000,
    "enable.idempotence": False,
    "log_level": 0,
}


def prepare(bootstrap: str, topic: str, partitions: int, group: str) -> None:
    """The topic, and the group set to start at the earliest offset (a new share group starts
    at the log end by default, and the records are produced before the consumers start)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(ADMIN_TIMEOUT_S)
    change = ConfigResource(
        ResourceType.GROUP,
        group,
        incremental_configs=[
            ConfigEntry(
                "share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET
            )
        ],
    )
    admin.incremental_alter_configs([change])[change].result(ADMIN_TIMEOUT_S)


def produce(bootstrap: str, topic: str, records: int, size: int) -> None:
    """``records`` records with ids 0..records-1, every one acknowledged (acks=all)."""
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER})
    failures: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    for record_id in range(records):
        while True:
            try:
                producer.produce(topic, value_of(record_id, size), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)  # the local queue is full: let it drain
        producer.poll(0)
    left = producer.flush(FLUSH_TIMEOUT_S)
    if left or failures:
        raise RuntimeError(f"produce failed: {left} unsent, errors {failures[:3]}")


def consumer_child(bootstrap: str, group: str, topic: str, shared: Shared) -> None:
    """One share consumer: reads, acknowledges and counts until every record is accepted."""
    result = ChildResult()
    try:
        consumer = ShareConsumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "share.acknowledgement.mode": "explicit",
                "max.poll.records": str(FETCH_RECORDS),
                "log_level": 0,
            }
        )
        consumer.subscribe([topic])
        with shared.ready.get_lock():
            shared.ready.value += 1
        shared.start.wait()
        cpu0 = time.process_time()
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not shared.done() and time.monotonic() < deadline:
            accepted = 0
            for message in consumer.poll(POLL_S):
                if message.error() is not None:
                    continue  # transient: librdkafka reports it again if it persists
                now = time.monotonic_ns()
                if result.first_record_ns is None:
                    result.first_record_ns = now
                record_id, count = id_of(message.value()), message.delivery_count()
                result.max_delivery_count = max(result.max_delivery_count, count)
                if count > 1:
                    result.redelivered_ns.setdefault(record_id, now)
                if count == 1 and released_on_first_delivery(record_id):
                    result.released_ns[record_id] = time.monotonic_ns()
                    consumer.acknowledge(message, AcknowledgeType.RELEASE)
                else:
                    consumer.acknowledge(message, AcknowledgeType.ACCEPT)
                    accepted += 1
            if accepted:
                result.accepted += accepted
                shared.add_accepted(accepted)
        result.cpu_s = time.process_time() - cpu0
        consumer.commit_sync()
        consumer.close()
    except Exception:
        result.error = traceback.format_exc()
    shared.results.put(result.as_json())
