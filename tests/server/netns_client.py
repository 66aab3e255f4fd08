"""A Kafka client for test_network_namespaces.py, run inside the client's network namespace.

    python netns_client.py roundtrip BOOTSTRAP TOPIC   produce records, read them back
    python netns_client.py produce BOOTSTRAP TOPIC     bootstrap, then try to produce one

Prints one JSON object: the broker list Metadata gave (what the client was told), and what
happened to the records. Only confluent-kafka is imported: the script runs by path.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Final

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

RECORDS: Final = 10
TIMEOUT_S: Final = 30.0
DELIVERY_TIMEOUT_MS: Final = 5000
"""How long the producer tries before reporting a record undeliverable (the unreachable case)."""


def brokers(bootstrap: str) -> list[list[Any]]:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=TIMEOUT_S)
    return sorted([b.id, b.host, b.port] for b in metadata.brokers.values())


def produce(bootstrap: str, topic: str, count: int) -> list[Any]:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "message.timeout.ms": DELIVERY_TIMEOUT_MS,
        }
    )
    outcomes: list[Any] = []

    def done(err: Any, msg: Any) -> None:
        outcomes.append(err.name() if err else msg.offset())

    for i in range(count):
        producer.produce(topic, f"record-{i}".encode(), partition=0, on_delivery=done)
    producer.flush(TIMEOUT_S)
    return outcomes


def consume(bootstrap: str, topic: str, count: int) -> list[str]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "netns-readers", "enable.auto.commit": False}
    )
    values: list[str] = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + TIMEOUT_S
        while len(values) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                values.append(msg.value().decode())
        consumer.commit(offsets=[TopicPartition(topic, 0, len(values))], asynchronous=False)
    finally:
        consumer.close()
    return values


def main(mode: str, bootstrap: str, topic: str) -> dict[str, Any]:
    result: dict[str, Any] = {"brokers": brokers(bootstrap)}
    if mode == "roundtrip":
        result["delivered"] = produce(bootstrap, topic, RECORDS)
        result["consumed"] = consume(bootstrap, topic, RECORDS)
    elif mode == "produce":
        result["delivered"] = produce(bootstrap, topic, 1)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    return result


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])), flush=True)
