"""SIGKILL the broker process again and again under an idempotent acks=all producer.

The broker runs in a child process (``BrokerProcess``, forked from the tests' fork server: a
restart takes a tenth of a second where ``shoal broker`` took 1.5-2 s of imports), restarted on
its port, so the client finds it again after each restart. One confluent-kafka producer
(``enable.idempotence``, ``acks=all``, a message timeout longer than the test) keeps sending
unique values to three partitions the whole time, including while the broker is down; librdkafka
retries every unacknowledged batch with its original sequence numbers after each restart.

Kills land at seeded random moments after the broker is ready, so some hit a batch between its
append and its acknowledgement: it is in the log (the page cache survives SIGKILL) but the client
never heard so. Only producer state rebuilt from the log turns that retry into a duplicate
answered with the original offsets.

Pass criterion, after the last restart and a flush: every value was acknowledged, and reading the
partitions back finds each acknowledged value exactly once, at the offset its acknowledgement
gave, with offsets gap-free and values in the order they were sent.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pytest
from confluent_kafka import Producer

from tests.broker.idempotence.checks import (
    assert_exactly_once_in_order,
    delivery_recorder,
    log_ends,
    read_partitions,
)
from tests.support.broker import BrokerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a SIGKILL loop: out of make unit

SHOAL: Final = Path(sys.executable).with_name("shoal")
KILLS: Final = int(os.environ.get("SHOAL_IDEMPOTENCE_KILLS", "4"))
"""Each kill costs a broker start (about 0.15 s from the fork server; 2 s as a command)."""
SEED: Final = 20240917
PARTITIONS: Final = 3
TOPIC: Final = "crash-idempotent"
RUN_S_MAX: Final = 0.5
"""How long the broker serves, once acknowledgements flow, before a kill: up to this, seeded."""
RESUME_TIMEOUT_S: Final = 30.0
"""librdkafka reconnects within about a second (its backoffs are set low below)."""
DOWN_S_MAX: Final = 0.3
"""How long it stays dead while the producer keeps queueing."""
RATE_PER_S: Final = 20_000
"""Values sent per second: enough for many batches in flight at every kill, little enough
that reading everything back stays quick."""
FLUSH_TIMEOUT_S: Final = 120.0


class Workload:
    """Unique values, round-robin over the partitions, at a steady rate."""

    def __init__(self, producer: Any, on_delivery: Any) -> None:
        self.producer = producer
        self.on_delivery = on_delivery
        self.sent: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
        self.count = 0
        self.acked_before_start = 0

    def run_until(self, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + RESUME_TIMEOUT_S
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"no acknowledgement within {RESUME_TIMEOUT_S} s of a start")
            self.run_for(0.02)

    def run_for(self, seconds: float) -> None:
        start, base = time.monotonic(), self.count
        while (elapsed := time.monotonic() - start) < seconds:
            while self.count - base < int(elapsed * RATE_PER_S):
                self._send_one()
            self.producer.poll(0.005)

    def _send_one(self) -> None:
        partition = self.count % PARTITIONS
        value = b"%d:%09d" % (partition, self.count)
        self.producer.produce(TOPIC, value, partition=partition, on_delivery=self.on_delivery)
        self.sent[partition].append(value)
        self.count += 1


def test_sigkill_loop_keeps_every_acknowledged_value_exactly_once(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    broker = BrokerProcess(tmp_path / "data", num_partitions=PARTITIONS).start()
    port = broker.kafka_port
    acked: dict[int, dict[bytes, int]] = {p: {} for p in range(PARTITIONS)}
    failed: list[Any] = []
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "message.timeout.ms": int(FLUSH_TIMEOUT_S * 1000 * 2),
            "retry.backoff.ms": 20,
            "retry.backoff.max.ms": 200,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 200,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    workload = Workload(producer, delivery_recorder(acked, failed))

    def acked_total() -> int:
        return sum(len(a) for a in acked.values())

    try:
        for _ in range(KILLS):
            # The client needs a moment to reconnect (and, the first time, to get its
            # producer id): kill only once acknowledgements flow again, so that every kill
            # lands amid appends.
            workload.run_until(lambda: acked_total() > workload.acked_before_start)
            workload.run_for(rng.uniform(0.0, RUN_S_MAX))
            broker.kill()
            workload.acked_before_start = acked_total()
            workload.run_for(rng.uniform(0.0, DOWN_S_MAX))
            broker.start(kafka_port=port)
        workload.run_for(0.3)
        assert producer.flush(FLUSH_TIMEOUT_S) == 0, "values still unacknowledged"
        assert failed == [], f"{len(failed)} values failed, first: {failed[:3]}"
        acked_count = sum(len(a) for a in acked.values())
        assert acked_count == workload.count
        ends = log_ends(broker.bootstrap_servers, TOPIC, range(PARTITIONS))
        assert sum(ends.values()) == workload.count, "the log holds copies or lost values"
        stored = read_partitions(broker.bootstrap_servers, TOPIC, ends)
        assert_exactly_once_in_order(stored, workload.sent, acked, all_acked=True)
    finally:
        broker.kill()
