"""The two exactly-once apps test_eos_app_kills.py SIGKILLs, each run in its own process.

``python -m tests.reliability.eos_apps KIND BOOTSTRAP SOURCE OUTPUT GROUP INSTANCE EVENTS``

- ``framework``: a shoal ``App`` subscriber with ``exactly_once=True`` (and ``concurrency``, so
  records of different keys run in parallel while each key keeps its order) writes
  ``<source value>|fw`` to OUTPUT, keyed like its input.
- ``raw``: a confluent-kafka consume-transform-produce loop, as the Kafka documentation writes
  it: one transaction per polled batch with ``send_offsets_to_transaction``; the
  transactional.id is the instance's, so a restarted instance fences its predecessor and the
  coordinator aborts what it left open. It writes ``<source value>|<tag>`` (tag: this process
  and its transaction number) and appends to EVENTS what it was told of each transaction:
  ``P tag n`` (n records sent, commit about to be asked), ``C tag`` (committed), ``A tag``
  (aborted). About one transaction in five is aborted on purpose after its records reached the
  broker, so read_committed readers have aborted records to (not) see.

Both are static members (``group.instance.id``): a restarted instance takes its predecessor's
place in the group at once, without waiting out a session timeout. An error the loop cannot
handle ends the process (exit code 3); the test restarts it as it restarts a killed one.
"""

from __future__ import annotations

import os
import random
import sys
import uuid
from typing import Any, Final

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

BATCH_MAX: Final = 50
"""Source records per raw transaction, at most."""
ABORT_EVERY: Final = 5
CALL_TIMEOUT_S: Final = 10.0
TRANSACTION_TIMEOUT_MS: Final = 10_000
"""An instance killed mid-transaction is fenced by its restart; this bounds the rest."""
CLIENT: Final = {
    "reconnect.backoff.ms": 20,
    "reconnect.backoff.max.ms": 250,
    "retry.backoff.ms": 20,
    "retry.backoff.max.ms": 250,
    "log_level": 0,
}
"""Reconnects within a quarter second of a restarted broker, not librdkafka's 10 s at most."""
SESSION_TIMEOUT_MS: Final = 6_000


def framework(bootstrap: str, source: str, output: str, group: str, instance: str) -> None:
    from shoal import App

    query = "&".join(
        f"{k}={v}"
        for k, v in {
            **CLIENT,
            "group.instance.id": instance,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
        }.items()
    )
    app = App(f"kafka://{bootstrap}?{query}")

    @app.subscriber(source, group=group, output=output, exactly_once=True, concurrency=4)
    async def copy(value: str) -> str:
        return f"{value}|fw"

    app.run()


def raw(bootstrap: str, source: str, output: str, group: str, instance: str, events: str) -> None:
    log = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def note(line: str) -> None:
        os.write(log, f"{line}\n".encode())  # one write each: whole lines, even if killed

    consumer = Consumer(
        {
            **CLIENT,
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.instance.id": instance,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    producer = Producer(
        {
            **CLIENT,
            "bootstrap.servers": bootstrap,
            "transactional.id": f"{group}-{instance}",
            "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
        }
    )
    producer.init_transactions(CALL_TIMEOUT_S * 3)
    consumer.subscribe([source])
    rng = random.Random(os.getpid())
    # Unique per start: a restarted app may get a pid an earlier one had (pid_max is small).
    start_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    txn = 0
    while True:
        messages = [m for m in consumer.consume(BATCH_MAX, 0.5) if m.error() is None]
        if not messages:
            continue
        tag = f"{start_id}.{txn}"
        txn += 1
        try:
            producer.begin_transaction()
            for message in messages:
                value = f"{message.value().decode()}|{tag}".encode()
                producer.produce(output, value=value, key=message.key())
            if rng.randrange(ABORT_EVERY) == 0:
                if producer.flush(CALL_TIMEOUT_S) > 0:
                    raise KafkaException("outputs not delivered before the planned abort")
                producer.abort_transaction(CALL_TIMEOUT_S)
                note(f"A {tag}")
                _rewind(consumer)
                continue
            offsets = consumer.position(consumer.assignment())
            producer.send_offsets_to_transaction(
                offsets, consumer.consumer_group_metadata(), CALL_TIMEOUT_S
            )
            note(f"P {tag} {len(messages)}")
            producer.commit_transaction(CALL_TIMEOUT_S)
            note(f"C {tag}")
        except KafkaException as exc:
            error: Any = exc.args[0]
            if not hasattr(error, "txn_requires_abort") or not error.txn_requires_abort():
                raise  # fatal, fenced or unknown: the process ends, and the test restarts it
            producer.abort_transaction(CALL_TIMEOUT_S)
            note(f"A {tag}")
            _rewind(consumer)


def _rewind(consumer: Any) -> None:
    """Back to the group's committed offsets: the aborted batch is read again."""
    assignment = consumer.assignment()
    for tp in consumer.committed(assignment, timeout=CALL_TIMEOUT_S):
        offset = tp.offset if tp.offset >= 0 else 0
        consumer.seek(TopicPartition(tp.topic, tp.partition, offset))


def main(argv: list[str]) -> int:
    kind, bootstrap, source, output, group, instance, events = argv
    try:
        if kind == "framework":
            framework(bootstrap, source, output, group, instance)
        else:
            raw(bootstrap, source, output, group, instance, events)
    except KafkaException as exc:
        print(f"{kind} {instance}: {exc}", file=sys.stderr, flush=True)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
