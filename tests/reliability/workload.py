"""The workload: producers and a consumer group on real clients, recording into a History.

Producers (confluent-kafka, acks=all; some idempotent, one not) write unique values across the
partitions of one topic for as long as the run lasts, through every fault: their delivery
timeout outlasts any outage, so a write the broker accepted is either acknowledged or reported
failed, never silently dropped. Consumers in one group read and commit synchronously. At the
end every partition is read back from offset 0: what the broker holds, for the checker.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.reliability.checker import Log
from tests.reliability.history import Commit, History, Read, Resume, Write, value_of

DELIVERY_TIMEOUT_MS: Final = 45_000
"""Several times the longest outage the faults cause (a pause of the session timeout plus two
seconds): a write fails only if the broker refused it, or broke so that it cannot succeed."""
SESSION_TIMEOUT_MS: Final = 6_000
"""The group's session timeout: pauses longer than this expire the group's members."""
PRODUCE_INTERVAL_S: Final = 0.002
"""Between one producer's writes: about 500 per second each, so a long run's log stays small."""
DRAIN_STALL_S: Final = 10.0
"""At the end, the group stops catching up once it has read nothing new for this long."""
COMMIT_EVERY: Final = 50
"""A consumer commits after this many records (and when its poll comes back empty)."""


@dataclass
class WorkloadSettings:
    topic: str = "reliability"
    partitions: int = 3
    idempotent_producers: int = 2
    plain_producers: int = 1
    consumers: int = 2
    session_timeout_ms: int = SESSION_TIMEOUT_MS
    topic_configs: dict[str, str] = field(default_factory=dict)


@dataclass
class Workload:
    bootstrap: str
    settings: WorkloadSettings
    history: History = field(default_factory=History)
    fatal_errors: list[str] = field(default_factory=list)
    timestamps: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    """(partition, offset) -> (timestamp type, timestamp) of each record :meth:`read_back` saw."""
    _stop_producing: threading.Event = field(default_factory=threading.Event)
    _producing: threading.Event = field(default_factory=threading.Event)
    _stop_consuming: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def create_topic(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics(
            [
                NewTopic(
                    self.settings.topic,
                    self.settings.partitions,
                    1,
                    config=self.settings.topic_configs,
                )
            ],
            operation_timeout=30,
        )
        for future in futures.values():
            future.result(timeout=60)

    def quiet(self) -> None:
        """Producers stop writing until :meth:`loud`: the group catches up and commits, so a
        fault then hits a quiet broker (the window where only commits are in flight)."""
        self._producing.clear()

    def loud(self) -> None:
        self._producing.set()

    def start(self) -> None:
        self._producing.set()
        names = [(f"i{n}", True) for n in range(self.settings.idempotent_producers)] + [
            (f"n{n}", False) for n in range(self.settings.plain_producers)
        ]
        for name, idempotent in names:
            self._spawn(self._produce, name, idempotent)
        for n in range(self.settings.consumers):
            self._spawn(self._consume, f"c{n}")

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"workload-{args[0]}")
        thread.start()
        self._threads.append(thread)

    def stop(self, drain_s: float = 60.0) -> None:
        """Stop writing, wait for every outcome, let the group catch up (up to ``drain_s``),
        stop it."""
        self._stop_producing.set()
        self._producing.set()
        for thread in self._threads:
            if thread.name.startswith(("workload-i", "workload-n")):
                thread.join()
        acknowledged = sum(1 for w in self.history.writes if w.acked)
        deadline = time.monotonic() + drain_s
        seen, last_progress = -1, time.monotonic()
        while time.monotonic() < deadline:
            now_seen = len({r.value for r in self.history.reads})
            if now_seen >= acknowledged:
                break
            if now_seen > seen:
                seen, last_progress = now_seen, time.monotonic()
            elif time.monotonic() - last_progress > DRAIN_STALL_S:
                break  # the group has read what it can (a broken broker lost the rest)
            time.sleep(0.5)
        self._stop_consuming.set()
        for thread in self._threads:
            thread.join()

    # -- producers -----------------------------------------------------------------------

    def _produce(self, name: str, idempotent: bool) -> None:
        config = {
            "bootstrap.servers": self.bootstrap,
            "acks": "all",
            "enable.idempotence": idempotent,
            "delivery.timeout.ms": DELIVERY_TIMEOUT_MS,
            "linger.ms": 2,
            "reconnect.backoff.max.ms": 500,
            "log_level": 0,  # every refused reconnect during a kill would be a log line
            "error_cb": lambda error: self._on_error(name, error),
        }
        if not idempotent:
            config["max.in.flight.requests.per.connection"] = 5
            config["retries"] = 1_000_000
        producer = Producer(config)

        def delivered(value: str) -> Any:
            def on_delivery(error: KafkaError | None, message: Any) -> None:
                acked = error is None
                self.history.record(
                    Write(
                        producer=name,
                        idempotent=idempotent,
                        value=value,
                        partition=message.partition(),
                        acked=acked,
                        offset=message.offset() if acked else None,
                    )
                )

            return on_delivery

        for sequence in itertools.count():
            if self._stop_producing.is_set() or self.fatal_errors:
                break
            while not self._producing.wait(0.1):
                producer.poll(0)
                if self._stop_producing.is_set():
                    break
            value = value_of(name, sequence)
            while True:
                try:
                    producer.produce(
                        self.settings.topic,
                        value=value.encode(),
                        key=f"k{sequence % 16}".encode(),
                        on_delivery=delivered(value),
                    )
                    break
                except BufferError:
                    producer.poll(0.1)  # the local queue is full while the broker is away
                except KafkaException as exc:  # fatal: this producer can send no more
                    self.fatal_errors.append(f"{name}: {exc}")
                    break
            producer.poll(0)
            time.sleep(PRODUCE_INTERVAL_S)
        try:
            remaining = producer.flush(DELIVERY_TIMEOUT_MS / 1000)
        except Exception as exc:
            self.fatal_errors.append(f"{name}: flush failed: {exc!r}")
            return
        if remaining:
            self.fatal_errors.append(f"{name}: {remaining} writes without an outcome")

    def _on_error(self, name: str, error: KafkaError) -> None:
        if error.fatal():
            self.fatal_errors.append(f"{name}: {error.str()}")

    # -- consumers -----------------------------------------------------------------------

    def stop_consuming(self) -> None:
        self._stop_consuming.set()

    def consume(self, name: str) -> None:
        """One group consumer's loop, until :meth:`stop_consuming` (also run alone, in a
        child process: consumer_child.py)."""
        self._consume(name)

    def _consume(self, name: str) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"{self.settings.topic}-group",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": self.settings.session_timeout_ms,
                "heartbeat.interval.ms": 1_000,
                "reconnect.backoff.max.ms": 500,
                "log_level": 0,
            }
        )
        assignment = 0

        def on_assign(client: Any, partitions: list[TopicPartition]) -> None:
            nonlocal assignment
            assignment += 1
            try:
                committed = client.committed(partitions, timeout=30)
            except Exception:  # the broker went away mid-rebalance: no resume check this time
                return
            for tp in committed:
                self.history.record(
                    Resume(
                        consumer=name,
                        assignment=assignment,
                        partition=tp.partition,
                        committed=tp.offset if tp.offset >= 0 else None,
                    )
                )

        consumer.subscribe([self.settings.topic], on_assign=on_assign)
        uncommitted = 0
        try:
            while not self._stop_consuming.is_set():
                message = consumer.poll(0.5)
                if message is not None and message.error() is None:
                    self.history.record(
                        Read(
                            consumer=name,
                            assignment=assignment,
                            partition=message.partition(),
                            offset=message.offset(),
                            value=message.value().decode(),
                        )
                    )
                    uncommitted += 1
                    if uncommitted < COMMIT_EVERY:
                        continue
                if uncommitted:
                    self._commit(consumer, name)
                    uncommitted = 0
        finally:
            consumer.close()

    def _commit(self, consumer: Consumer, name: str) -> None:
        try:
            done = consumer.commit(asynchronous=False)
        except Exception:  # broker away, rebalance in progress: the next commit covers it
            return
        for tp in done or []:
            if tp.error is None and tp.offset >= 0:
                self.history.record(Commit(consumer=name, partition=tp.partition, offset=tp.offset))

    # -- the log's contents --------------------------------------------------------------

    def read_back(self, timeout_s: float = 120.0) -> Log:
        """Every partition from offset 0 to its high watermark."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"{self.settings.topic}-checker",
                "enable.auto.commit": False,
            }
        )
        try:
            ends: dict[int, int] = {}
            for partition in range(self.settings.partitions):
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.settings.topic, partition), timeout=30
                )
                ends[partition] = high
            consumer.assign(
                [TopicPartition(self.settings.topic, p, 0) for p in range(self.settings.partitions)]
            )
            log: Log = {p: [] for p in range(self.settings.partitions)}
            done = {p for p, end in ends.items() if end == 0}
            deadline = time.monotonic() + timeout_s
            while len(done) < len(ends):
                if time.monotonic() > deadline:
                    raise AssertionError(f"read back stopped short of {ends}: {_lengths(log)}")
                message = consumer.poll(1.0)
                if message is None or message.error() is not None:
                    continue
                partition, offset = message.partition(), message.offset()
                log[partition].append((offset, message.value().decode()))
                self.timestamps[(partition, offset)] = message.timestamp()
                if offset + 1 >= ends[partition]:
                    done.add(partition)
            return log
        finally:
            with contextlib.suppress(Exception):
                consumer.close()


def _lengths(log: Log) -> dict[int, int]:
    return {p: len(records) for p, records in log.items()}
