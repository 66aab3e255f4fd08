"""Transaction scenarios run unchanged against Apache Kafka and shoal (confluent-kafka clients):
commit and abort, fencing of a zombie, a read_committed fetch across an aborted range, and
ListOffsets under both isolation levels with a transaction open. Each returns plain data (values,
offsets, error names), nothing broker-chosen (producer ids, timestamps)."""

from __future__ import annotations

import time
from typing import Any

import confluent_kafka as ck

from tests.differential.scenarios import TIMEOUT_S, Result, create_topic, unique


def _producer(bootstrap: str, txn_id: str) -> ck.Producer:
    producer = ck.Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id})
    producer.init_transactions(TIMEOUT_S)
    return producer


def read_to_end(bootstrap: str, topic: str, isolation: str, partition: int = 0) -> list[Any]:
    """(offset, value) of every record ``isolation`` lets a consumer see, up to the end."""
    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([ck.TopicPartition(topic, partition, 0)])
    got: list[Any] = []
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == ck.KafkaError._PARTITION_EOF:
                    break
                got.append(error.name())
                continue
            got.append([message.offset(), message.value()])
    finally:
        consumer.close()
    return got


def _latest(bootstrap: str, topic: str, isolation: str) -> int:
    consumer = ck.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": unique("lo"), "isolation.level": isolation}
    )
    try:
        return int(consumer.get_watermark_offsets(ck.TopicPartition(topic, 0), TIMEOUT_S)[1])
    finally:
        consumer.close()


def txn_commit_abort(bootstrap: str) -> Result:
    topic = create_topic(bootstrap, partitions=2)
    producer = _producer(bootstrap, unique("tx"))
    outcome = []
    for round_, commit in enumerate([True, False, True]):
        producer.begin_transaction()
        for i in range(3):
            producer.produce(topic, value=f"{round_}-{i}".encode(), partition=i % 2)
        producer.flush(TIMEOUT_S)
        if commit:
            producer.commit_transaction(TIMEOUT_S)
        else:
            producer.abort_transaction(TIMEOUT_S)
        outcome.append(commit)
    return {
        "committed_p0": read_to_end(bootstrap, topic, "read_committed", 0),
        "committed_p1": read_to_end(bootstrap, topic, "read_committed", 1),
        "uncommitted_p0": read_to_end(bootstrap, topic, "read_uncommitted", 0),
        "latest": [_latest(bootstrap, topic, i) for i in ("read_committed", "read_uncommitted")],
    }


def txn_fencing(bootstrap: str) -> Result:
    topic = create_topic(bootstrap)
    txn_id = unique("tx")
    zombie = _producer(bootstrap, txn_id)
    zombie.begin_transaction()
    zombie.produce(topic, value=b"zombie-1", partition=0)
    zombie.flush(TIMEOUT_S)
    successor = _producer(bootstrap, txn_id)  # aborts the zombie's open transaction
    successor.begin_transaction()
    successor.produce(topic, value=b"successor", partition=0)
    successor.commit_transaction(TIMEOUT_S)
    zombie.produce(topic, value=b"zombie-2", partition=0)
    try:
        zombie.commit_transaction(TIMEOUT_S)
        zombie_error: Any = None
    except ck.KafkaException as exc:
        error = exc.args[0]
        zombie_error = [error.name(), error.fatal()]
    return {
        "zombie_error": zombie_error,
        "committed": read_to_end(bootstrap, topic, "read_committed"),
        "uncommitted": read_to_end(bootstrap, topic, "read_uncommitted"),
    }


def txn_aborted_range(bootstrap: str) -> Result:
    """Non-transactional records written in the middle of an aborted transaction stay visible
    to read_committed readers; the aborted ones around them do not."""
    topic = create_topic(bootstrap)
    plain = ck.Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    producer = _producer(bootstrap, unique("tx"))
    producer.begin_transaction()
    producer.produce(topic, value=b"aborted-1", partition=0)
    producer.flush(TIMEOUT_S)
    plain.produce(topic, value=b"plain", partition=0)
    plain.flush(TIMEOUT_S)
    producer.produce(topic, value=b"aborted-2", partition=0)
    producer.flush(TIMEOUT_S)
    producer.abort_transaction(TIMEOUT_S)
    producer.begin_transaction()
    producer.produce(topic, value=b"committed", partition=0)
    producer.commit_transaction(TIMEOUT_S)
    return {
        "committed": read_to_end(bootstrap, topic, "read_committed"),
        "uncommitted": read_to_end(bootstrap, topic, "read_uncommitted"),
    }


def txn_list_offsets(bootstrap: str) -> Result:
    topic = create_topic(bootstrap)
    producer = _producer(bootstrap, unique("tx"))
    producer.begin_transaction()
    producer.produce(topic, value=b"first", partition=0)
    producer.commit_transaction(TIMEOUT_S)
    producer.begin_transaction()
    producer.produce(topic, value=b"open", partition=0)
    producer.flush(TIMEOUT_S)
    open_ = [_latest(bootstrap, topic, i) for i in ("read_committed", "read_uncommitted")]
    open_read = read_to_end(bootstrap, topic, "read_committed")
    producer.commit_transaction(TIMEOUT_S)
    done = [_latest(bootstrap, topic, i) for i in ("read_committed", "read_uncommitted")]
    return {"open": open_, "open_read": open_read, "done": done}


TXN_SCENARIOS = {
    "txn_commit_abort": txn_commit_abort,
    "txn_fencing": txn_fencing,
    "txn_aborted_range": txn_aborted_range,
    "txn_list_offsets": txn_list_offsets,
}
