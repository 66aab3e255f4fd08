"""SIGKILL the broker again and again under a transactional producer, then check atomicity.

One confluent-kafka transactional producer runs transactions of a few values over two
partitions, back to back, while a second thread kills the broker process (SIGKILL) at seeded
random moments and starts it again on the same port. Each transaction's outcome is what the
client was told: committed (commit_transaction returned), aborted (abort_transaction returned),
or unknown (the client gave up: a fatal error, after which a new producer instance with the same
transactional id fences the old one and the coordinator aborts what it left open).

Pass criterion, read back with read_committed: every committed transaction's values are there
exactly once, no aborted one's value is, and an unknown one is there whole or not at all. The
quick mode kills 3 times;
``make txn-crash-full`` kills 50 times.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import pytest
from confluent_kafka import KafkaException, Producer

from tests.broker.transactions.clients import read_all
from tests.support.broker import BrokerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KILLS: Final = int(os.environ.get("SHOAL_TXN_CRASH_KILLS", "3"))
SEED: Final = 20261207
TOPIC: Final = "txn-crash"
VALUES_PER_TXN: Final = 6
UP_S: Final = (0.3, 1.5)
"""How long the broker serves between kills (seeded uniform)."""
DOWN_S: Final = (0.0, 0.3)
CALL_TIMEOUT_S: Final = 30.0
RETRIES_MAX: Final = 5
"""Retries of a retriable commit or abort before the outcome is called unknown."""


def _producer(bootstrap: str) -> Producer:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": "txn-crash",
            "transaction.timeout.ms": 10_000,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 200,
            "retry.backoff.ms": 20,
            "retry.backoff.max.ms": 200,
        }
    )
    producer.init_transactions(CALL_TIMEOUT_S * 2)
    return producer


def _ending(call: Callable[[float], None]) -> str | None:
    """Run commit or abort, retrying what the client calls retriable: "done", "abort" (the
    transaction must be aborted instead) or None (fatal, or retries exhausted)."""
    for _ in range(RETRIES_MAX):
        try:
            call(CALL_TIMEOUT_S)
            return "done"
        except KafkaException as exc:
            error = exc.args[0]
            if error.fatal():
                return None
            if error.txn_requires_abort():
                return "abort"
            if not error.retriable():
                return None
    return None


def _run_one(producer: Producer, number: int) -> tuple[str, list[tuple[int, bytes]]]:
    sent = [(i % 2, f"{number}:{i}".encode()) for i in range(VALUES_PER_TXN)]
    try:
        producer.begin_transaction()
        for partition, value in sent:
            producer.produce(TOPIC, value=value, partition=partition)
    except KafkaException as exc:
        if exc.args[0].fatal():
            return "unknown", sent
        ended = _ending(producer.abort_transaction)
        return ("aborted" if ended == "done" else "unknown"), sent
    committed = _ending(producer.commit_transaction)
    if committed == "done":
        return "committed", sent
    if committed == "abort" and _ending(producer.abort_transaction) == "done":
        return "aborted", sent
    return "unknown", sent


def test_transactions_stay_atomic_across_broker_sigkills(
    broker_process: Callable[..., BrokerProcess],
) -> None:
    broker = broker_process(num_partitions=2)
    port = broker.kafka_port
    rng = random.Random(SEED)
    stop = threading.Event()
    killed: list[int] = []

    def killer() -> None:
        for _ in range(KILLS):
            time.sleep(rng.uniform(*UP_S))
            broker.kill()
            time.sleep(rng.uniform(*DOWN_S))
            broker.start(kafka_port=port)
            killed.append(1)
        stop.set()

    outcomes: dict[int, tuple[str, list[tuple[int, bytes]]]] = {}
    producer: Any = _producer(broker.bootstrap_servers)
    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    number = 0
    while not stop.is_set() or number < 3:
        outcome = _run_one(producer, number)
        outcomes[number] = outcome
        if outcome[0] == "unknown":
            producer = _producer(broker.bootstrap_servers)  # fences the old instance
        number += 1
    thread.join(60)
    assert len(killed) == KILLS
    # One more transaction after the last restart must commit.
    final = _run_one(producer, number)
    outcomes[number] = final
    assert final[0] == "committed"

    seen = read_all(broker, TOPIC, "read_committed", 0, partitions=2)
    assert len(seen) == len(set(seen)), "a value is visible twice"
    by_txn: dict[int, set[bytes]] = {}
    for value in seen:
        by_txn.setdefault(int(value.split(b":")[0]), set()).add(value)
    for txn, (outcome, sent) in outcomes.items():
        values = {v for _p, v in sent}
        got = by_txn.get(txn, set())
        if outcome == "committed":
            assert got == values, f"transaction {txn} committed but {len(got)} values visible"
        elif outcome == "aborted":
            assert got == set(), f"transaction {txn} aborted but {len(got)} values visible"
        else:
            assert got in (set(), values), f"transaction {txn} is partly visible"
    assert sum(1 for o, _ in outcomes.values() if o == "committed") >= 2
