"""Exactly-once apps SIGKILLed, and the broker SIGKILLed, while they copy a keyed topic.

A feeder writes the source topic throughout (idempotent, acks=all): keys ``k00``.. spread over
the partitions, several per partition, each record ``<key>:<sequence>``. Two apps, each in its
own process (eos_apps.py), copy it: the framework's ``App`` with ``exactly_once=True`` to
output A, a raw confluent-kafka consume-transform-produce loop to output B. A killer SIGKILLs
the framework app, the raw app and the broker at seeded random moments, each restarted after a
short pause (the broker on its port, from the fork server; the apps as static group members).
After the last kill the feeder stops and the apps catch up.

Pass (eos_checker.py), of each output read with read_committed: every source record copied
exactly once, each key's outputs in source order, nothing of an aborted or never-committed
transaction, committed transactions whole. The same checks over a read_uncommitted read of the
outputs must object (the planted bug): aborted transactions are there to be seen.

Quick mode (``make test``): 54 kills. ``make eos-kills-full``: SHOAL_RELIABILITY_EOS_KILLS=500.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from tests.reliability.eos_checker import EosReport, Output, check_copy
from tests.support.broker import REPO, BrokerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600 * 4)]

KILLS: Final = int(os.environ.get("SHOAL_RELIABILITY_EOS_KILLS", "54"))
SEED: Final = int(os.environ.get("SHOAL_RELIABILITY_EOS_SEED", "20261208"))
PARTITIONS: Final = 3
KEYS: Final = 9
"""Three keys per source partition."""
FEED_PER_S: Final = 100
"""Source records a second: enough that a kill usually lands inside a transaction."""
UP_S: Final = (0.4, 1.6)
"""Service between two kills (seeded uniform)."""
DOWN_S: Final = (0.0, 0.3)
"""How long a killed process stays down."""
CATCH_UP_S: Final = 180.0
"""After the last kill: the apps must have copied everything by then."""
READ_TIMEOUT_S: Final = 30.0


class AppProcess:
    """One app (eos_apps.py) in its own process, restartable; its stderr kept in a log."""

    def __init__(self, kind: str, args: list[str], log: Path) -> None:
        self.kind, self.args, self.log = kind, args, log
        self.process: subprocess.Popen[bytes] | None = None
        self.exits: Counter[int] = Counter()
        """Exit codes of the times it ended on its own (not killed by the test)."""

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.reliability.eos_apps", self.kind, *self.args],
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=REPO,
            )

    def kill(self) -> bool:
        """SIGKILL the app; False if it had already ended (that is no kill)."""
        assert self.process is not None
        if self.process.poll() is not None:
            return False
        self.process.kill()
        self.process.wait(30)
        return True

    def restart_if_ended(self) -> None:
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            self.exits[code] += 1
            self.start()


class Feeder:
    """Writes ``<key>:<sequence>`` records round the keys until stopped; every one acked."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "message.timeout.ms": 300_000,  # outlives every broker kill of the run
                "reconnect.backoff.max.ms": 250,
                "linger.ms": 5,
                "log_level": 0,
            }
        )
        self.stop = threading.Event()
        self.sent = 0
        self.failed: list[str] = []
        self.thread = threading.Thread(target=self._run, name="eos-feeder")

    def _run(self) -> None:
        sequence = 0
        started = time.monotonic()
        while not self.stop.is_set():
            for k in range(KEYS):
                value = f"k{k:02d}:{sequence:06d}".encode()
                self.producer.produce(
                    self.topic,
                    value=value,
                    key=f"k{k:02d}".encode(),
                    partition=k % PARTITIONS,
                    on_delivery=self._delivered,
                )
                self.sent += 1
            sequence += 1
            self.producer.poll(0)
            ahead_s = started + self.sent / FEED_PER_S - time.monotonic()
            if ahead_s > 0:
                self.stop.wait(ahead_s)

    def _delivered(self, error: KafkaError | None, _message: Any) -> None:
        if error is not None:
            self.failed.append(str(error))

    def finish(self) -> None:
        self.stop.set()
        self.thread.join()
        assert self.producer.flush(120) == 0, "the source could not be written"
        assert not self.failed, self.failed[:5]


def read_topic(bootstrap: str, topic: str, isolation: str) -> list[Output]:
    """Every record ``isolation`` shows, each partition in offset order, up to its end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"eos-reader-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "enable.partition.eof": True,
            "log_level": 0,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    out: list[Output] = []
    ended: set[int] = set()
    deadline = time.monotonic() + READ_TIMEOUT_S
    try:
        while len(ended) < PARTITIONS:
            assert time.monotonic() < deadline, f"{topic} could not be read to its end"
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error() is not None:
                if message.error().code() == KafkaError._PARTITION_EOF:
                    ended.add(message.partition())
                continue
            ended.discard(message.partition())
            key, value = message.key().decode(), message.value().decode()
            out.append(Output(message.partition(), key, value))
    finally:
        consumer.close()
    return out


def _copied_all(bootstrap: str, outputs: list[str], source: set[str]) -> bool:
    return all(
        source <= {o.source for o in read_topic(bootstrap, topic, "read_committed")}
        for topic in outputs
    )


def test_exactly_once_apps_and_broker_sigkilled(
    broker_process: Callable[..., BrokerProcess], tmp_path: Path
) -> None:
    broker = broker_process(
        num_partitions=PARTITIONS,
        group_initial_rebalance_delay_ms=0,
        group_min_session_timeout_ms=1000,
    )
    bootstrap, port = broker.bootstrap_servers, broker.kafka_port
    source, out_a, out_b = "eos-source", "eos-out-framework", "eos-out-raw"
    events = tmp_path / "raw-events.txt"
    feeder = Feeder(bootstrap, source)
    feeder.producer.produce(source, value=b"k00:-00001", key=b"k00", partition=0)  # creates it
    assert feeder.producer.flush(30) == 0
    apps = {
        "framework": AppProcess(
            "framework",
            [bootstrap, source, out_a, "eos-framework", "fw-0", str(events)],
            tmp_path / "framework.log",
        ),
        "raw": AppProcess(
            "raw", [bootstrap, source, out_b, "eos-raw", "raw-0", str(events)], tmp_path / "raw.log"
        ),
    }
    for app in apps.values():
        app.start()
    feeder.thread.start()

    rng = random.Random(SEED)
    kills: Counter[str] = Counter()

    def serve(seconds: float) -> None:
        """Wait, restarting an app that ended on its own."""
        until = time.monotonic() + seconds
        while True:
            for app in apps.values():
                app.restart_if_ended()
            left = until - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))

    started = time.monotonic()
    try:
        attempts = 0
        while sum(kills.values()) < KILLS:  # real kills: an app that had ended is no kill
            attempts += 1
            assert attempts <= 3 * KILLS, f"only {dict(kills)} kills in {attempts} attempts"
            serve(rng.uniform(*UP_S))
            target = rng.choice(["broker", "framework", "raw"])
            if target == "broker":
                broker.kill()
                kills[target] += 1
                time.sleep(rng.uniform(*DOWN_S))
                broker.start(kafka_port=port)
            else:
                if apps[target].kill():
                    kills[target] += 1
                time.sleep(rng.uniform(*DOWN_S))
                apps[target].start()
        killing_s = time.monotonic() - started
        caught_up = time.monotonic()
        feeder.finish()
        wanted = read_topic(bootstrap, source, "read_committed")
        # Every acknowledged source record is there, once (the first record created the topic):
        # a record the broker lost would otherwise be missing from both sides unnoticed.
        values = [o.value for o in wanted]
        assert len(values) == len(set(values)) == feeder.sent + 1, (
            f"the source holds {len(values)} records ({len(set(values))} distinct), "
            f"{feeder.sent + 1} were acknowledged"
        )
        deadline = time.monotonic() + CATCH_UP_S
        while not _copied_all(bootstrap, [out_a, out_b], {o.value for o in wanted}):
            assert time.monotonic() < deadline, (
                f"the apps did not catch up; exits {[a.exits for a in apps.values()]}\n"
                f"framework log: {apps['framework'].log.read_text()[-2000:]}\n"
                f"raw log: {apps['raw'].log.read_text()[-2000:]}"
            )
            serve(1.0)
        caught_up = time.monotonic() - caught_up
    finally:
        for app in apps.values():
            if app.process is not None and app.process.poll() is None:
                app.kill()
    source_records = [(o.key, o.value) for o in wanted]
    reports: list[EosReport] = [
        check_copy("framework", source_records, read_topic(bootstrap, out_a, "read_committed")),
        check_copy("raw", source_records, read_topic(bootstrap, out_b, "read_committed"), events),
    ]
    print(
        f"\n{KILLS} kills in {killing_s:.0f} s ({dict(kills)}), caught up {caught_up:.0f} s later; "
        f"{feeder.sent} source records; apps ended on their own: "
        f"{ {k: dict(a.exits) for k, a in apps.items()} }"
    )
    for report in reports:
        print(report.summary())
    for report in reports:
        assert report.valid, f"{report.summary()}\n" + "\n".join(
            f"{name}: {items[:10]}" for name, items in report.anomalies.items()
        )

    planted = [
        check_copy("framework", source_records, read_topic(bootstrap, out_a, "read_uncommitted")),
        check_copy("raw", source_records, read_topic(bootstrap, out_b, "read_uncommitted"), events),
    ]
    for report in planted:
        print(f"planted read_uncommitted reader: {report.summary()}")
    # Kills land inside transactions (the feeder keeps both apps busy), and a fifth of the raw
    # loop's transactions abort on purpose: their records are there for this reader to see.
    assert "duplicates" in planted[0].anomalies, "planted reader unnoticed (framework)"
    assert "aborted reads" in planted[1].anomalies, "planted reader unnoticed (raw loop)"
