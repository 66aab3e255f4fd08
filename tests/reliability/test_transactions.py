"""Transactions under broker SIGKILLs: a consume-transform-produce copier, checked.

The source topic is filled first (acks=all, idempotent). Then the copier (copier.py) copies it
to the output topic in transactions, aborting some on purpose, while the broker is SIGKILLed
and restarted, and two observers read the output as it grows: one read_committed, one
read_uncommitted. The checker (txn_checker.py) then requires, of the read_committed observer
and of a final read_committed read: no aborted read, no uncommitted read, every committed
transaction wholly visible, an unknown one whole or not at all, and every source value copied
exactly once.

The read_uncommitted observer is the planted bug: a reader that ignores transactions must be
caught seeing aborted records, or the checks above could not fail.

Quick mode (``make test``): 3 kills. Full mode (``make reliability``): SHOAL_RELIABILITY_TXN_KILLS.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from typing import Final

import pytest
from confluent_kafka import Producer

from tests.broker.transactions.clients import read_all
from tests.reliability.copier import Copier, observe
from tests.reliability.txn_checker import (
    Ended,
    Produced,
    TxnHistory,
    check_transactions,
    parse_output,
)
from tests.support.broker import BrokerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]

KILLS: Final = int(os.environ.get("SHOAL_RELIABILITY_TXN_KILLS", "3"))
SEED: Final = 20261207
PARTITIONS: Final = 2
SOURCE_RECORDS: Final = int(os.environ.get("SHOAL_RELIABILITY_TXN_RECORDS", "600"))
UP_S: Final = (1.0, 3.0)
"""Service between kills (seeded uniform): long enough for transactions to finish between."""
DOWN_S: Final = (0.0, 0.5)
RUN_BUDGET_S: Final = 120.0 + KILLS * 15.0
"""The copier's deadline: it must have copied everything by then."""
FLUSH_TIMEOUT_S: Final = 30.0


def _fill_source(bootstrap: str, topic: str) -> list[str]:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    values = [f"s-{n:06d}" for n in range(SOURCE_RECORDS)]
    for n, value in enumerate(values):
        producer.produce(topic, value=value.encode(), partition=n % PARTITIONS)
    assert producer.flush(FLUSH_TIMEOUT_S) == 0, "the source topic could not be filled"
    return values


def test_read_committed_sees_no_aborted_or_open_transaction_under_broker_kills(
    broker_process: Callable[..., BrokerProcess],
) -> None:
    process = broker_process(num_partitions=PARTITIONS)
    bootstrap = process.bootstrap_servers
    sources = _fill_source(bootstrap, "txn-source")
    history = TxnHistory()
    stop_observing = threading.Event()
    observers = [
        threading.Thread(
            target=observe,
            args=(bootstrap, "txn-output", PARTITIONS, isolation, history, stop_observing),
        )
        for isolation in ("read_committed", "read_uncommitted")
    ]
    for thread in observers:
        thread.start()

    rng = random.Random(SEED)
    kills_done = threading.Event()

    def killer() -> None:
        port = process.kafka_port
        for _ in range(KILLS):
            time.sleep(rng.uniform(*UP_S))
            process.kill()
            history.fault(f"SIGKILL at {time.time():.3f}")
            time.sleep(rng.uniform(*DOWN_S))
            process.start(kafka_port=port)
        kills_done.set()

    copier = Copier(bootstrap, "txn-source", "txn-output", PARTITIONS, history, SEED)
    thread = threading.Thread(target=killer, name="txn-killer")
    thread.start()
    copied: set[str] = set()

    def done() -> bool:
        """Every kill made, and the copier's committed outputs cover the source."""
        if not kills_done.is_set():
            return False
        copied.update(parse_output(v)[1] for v in _committed_outputs(history))
        return len(copied) >= len(sources)

    try:
        copier.run(done, deadline=time.monotonic() + RUN_BUDGET_S)
    except TimeoutError as exc:
        # What the copier saw and what the broker logged: a stuck transaction shows in both.
        raise AssertionError(
            f"{exc}; last client errors: {history.faults[-8:]}\n"
            f"broker log tail:\n{process.log_text()[-4000:]}"
        ) from exc
    finally:
        thread.join()
        final = [v.decode() for v in read_all(process, "txn-output", "read_committed", 0)]
        stop_observing.set()
        for observer in observers:
            observer.join()

    report = check_transactions(history, final, sources)
    print(f"transactions under {KILLS} kills: {report.summary()}")
    assert report.valid, f"{report.summary()}\n{report.anomalies}"
    assert report.outcomes["committed"] > 0 and report.outcomes["aborted"] > 0
    assert report.observed > 0

    planted = check_transactions(history, final, sources, observer="read_uncommitted")
    assert planted.aborted_reads, f"a read_uncommitted reader went unnoticed: {planted.summary()}"


def _committed_outputs(history: TxnHistory) -> list[str]:
    committed = {
        e.txn for e in list(history.events) if isinstance(e, Ended) and e.outcome == "committed"
    }
    return [
        value
        for event in list(history.events)
        if isinstance(event, Produced) and event.txn in committed
        for value in event.values
    ]
