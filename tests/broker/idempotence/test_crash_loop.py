"""SIGKILL the ``shoal broker`` process again and again under an idempotent acks=all producer.

The broker runs as the real command (``shoal broker --data-dir ... --kafka-listen ...``) on fixed
ports, so the client finds it again after each restart. One confluent-kafka producer
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
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Final

import pytest
from confluent_kafka import Producer

from tests.broker.idempotence.checks import (
    assert_exactly_once_in_order,
    delivery_recorder,
    log_ends,
    read_partitions,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a SIGKILL loop: out of make unit

SHOAL: Final = Path(sys.executable).with_name("shoal")
KILLS: Final = int(os.environ.get("SHOAL_IDEMPOTENCE_KILLS", "4"))
"""Each kill costs a broker start (about 2 s): `make crash-full` runs 50."""
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
READY_TIMEOUT_S: Final = 60.0
FLUSH_TIMEOUT_S: Final = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BrokerCommand:
    def __init__(self, data_dir: Path, log: IO[bytes]) -> None:
        self.data_dir = data_dir
        self.kafka_port = free_port()
        self.http_port = free_port()
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "SHOAL_NUM_PARTITIONS": str(PARTITIONS)}

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                str(SHOAL),
                "broker",
                "--data-dir",
                str(self.data_dir),
                "--kafka-listen",
                self.bootstrap,
                "--http-listen",
                f"127.0.0.1:{self.http_port}",
                "--log-level",
                "info",
            ],
            stdout=self.log,
            stderr=self.log,
            env=self.env,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._ready():
            if self.process.poll() is not None:
                raise AssertionError(f"the broker exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise AssertionError("the broker did not become ready")
            time.sleep(0.02)

    def _ready(self) -> bool:
        url = f"http://127.0.0.1:{self.http_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            finally:
                self.kill()


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
    with open(tmp_path / "broker.log", "wb") as broker_log:
        broker = BrokerCommand(tmp_path / "data", broker_log)
        acked: dict[int, dict[bytes, int]] = {p: {} for p in range(PARTITIONS)}
        failed: list[Any] = []
        producer = Producer(
            {
                "bootstrap.servers": broker.bootstrap,
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
            broker.start()
            for _ in range(KILLS):
                # The client needs a moment to reconnect (and, the first time, to get its
                # producer id): kill only once acknowledgements flow again, so that every kill
                # lands amid appends.
                workload.run_until(lambda: acked_total() > workload.acked_before_start)
                workload.run_for(rng.uniform(0.0, RUN_S_MAX))
                broker.kill()
                workload.acked_before_start = acked_total()
                workload.run_for(rng.uniform(0.0, DOWN_S_MAX))
                broker.start()
            workload.run_for(0.3)
            assert producer.flush(FLUSH_TIMEOUT_S) == 0, "values still unacknowledged"
            assert failed == [], f"{len(failed)} values failed, first: {failed[:3]}"
            acked_count = sum(len(a) for a in acked.values())
            assert acked_count == workload.count
            ends = log_ends(broker.bootstrap, TOPIC, range(PARTITIONS))
            assert sum(ends.values()) == workload.count, "the log holds copies or lost values"
            stored = read_partitions(broker.bootstrap, TOPIC, ends)
            assert_exactly_once_in_order(stored, workload.sent, acked, all_acked=True)
        finally:
            broker.stop()
