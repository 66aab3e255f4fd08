"""A consume-transform-produce copier with a transactional producer, every wait bounded.

It copies a source topic to an output topic exactly once: each transaction holds the outputs
of one consumed batch and the source offsets after it (``send_offsets_to_transaction``); a
fifth of the transactions are aborted on purpose after their outputs reached the broker, so
there are aborted records for read_committed readers to (not) see. After any transaction that
did not commit, the copier rewinds its consumer to the group's committed offsets, as a Kafka
Streams task does.

Issue 14's first try at this workload hung inside ``send_offsets_to_transaction``/commit
after kills. Found here: after a broker SIGKILL, confluent-kafka's
``send_offsets_to_transaction(offsets, metadata, 15)`` can block for minutes, its timeout
ignored (a faulthandler dump after 200 s showed the copier's thread still in that call, the
broker serving metadata meanwhile); it happened in 3 of 4 quick runs. So that call runs in a
watchdog thread (:func:`_bounded`): given up on after :data:`STUCK_CALL_S`, the outcome is
unknown and the copier starts a new producer with the same transactional id, which fences the
stuck one. Every other call that can wait has a timeout too, the consumer reads with
``assign`` (no group membership, so no rebalance can stall it) and rewinds to the group's
committed offsets after any transaction that did not commit, and the whole run has a deadline.
Whether the broker's answers provoke the stuck call (rather than librdkafka alone) is not
known yet.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaException,
    Producer,
    TopicPartition,
)

from tests.reliability.txn_checker import (
    Committing,
    Ended,
    Observed,
    Produced,
    TxnHistory,
    output_value,
)

CALL_TIMEOUT_S: Final = 15.0
"""Each transactional or offset call: far above its time on a live broker (milliseconds), and
short enough that a call stuck on a killed broker is given up within the test's budget."""
STUCK_CALL_S: Final = 2 * CALL_TIMEOUT_S
"""A client call still blocked this long after its own timeout is abandoned (see _bounded)."""
RETRIES_MAX: Final = 3
"""Retries of a retriable commit or abort before the outcome is called unknown."""
BATCH_MAX: Final = 20
"""Source records per transaction."""
ABORT_EVERY: Final = 5
"""About one transaction in this many is aborted on purpose (seeded)."""
TRANSACTION_TIMEOUT_MS: Final = 10_000
"""The coordinator aborts a transaction its producer left open after this long."""


@dataclass
class Copier:
    bootstrap: str
    source: str
    output: str
    partitions: int
    history: TxnHistory
    seed: int
    errors: list[str] = field(default_factory=list)
    _rng: random.Random = field(init=False)
    _producer: Any = None
    _consumer: Any = None
    _txn: int = 0
    _abandoned: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def run(self, done: Callable[[], bool], deadline: float) -> None:
        """Copy until ``done()`` (checked between transactions) or the deadline passes."""
        self._consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"{self.output}-copier",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "reconnect.backoff.max.ms": 500,
                "log_level": 0,
            }
        )
        try:
            self._new_producer(deadline)
            self._rewind(deadline)
            while not done() and time.monotonic() < deadline:
                self._one_transaction(deadline)
        finally:
            self._consumer.close()

    def _new_producer(self, deadline: float) -> None:
        """A producer with the copier's transactional id, initialised (which fences the one
        before it). A timed-out ``init_transactions`` is called again on the same instance,
        as librdkafka asks: it goes on in the background, so a second instance started
        instead would compete with it, each bumping the epoch and fencing the other."""
        old, self._producer = self._producer, None
        if old is not None:
            # Kept, not destroyed: destroying an instance whose call is stuck could block too.
            # The new instance's init fences it.
            old.purge(blocking=False)
            self._abandoned.append(old)
        producer = self._make_producer()
        while time.monotonic() < deadline:
            try:
                _bounded(producer.init_transactions, CALL_TIMEOUT_S)
            except TimeoutError as exc:  # stuck past its own timeout: try a fresh instance
                self.history.fault(str(exc))
                self._abandoned.append(producer)
                producer = self._make_producer()
                continue
            except KafkaException as exc:
                self.history.fault(f"init_transactions: {exc}")
                if exc.args[0].fatal():
                    producer = self._make_producer()
                continue
            self._producer = producer
            return
        raise TimeoutError("the copier could not start a transactional producer")

    def _make_producer(self) -> Any:
        return Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "transactional.id": f"{self.output}-copier",
                "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                "reconnect.backoff.max.ms": 500,
                "log_level": 0,
            }
        )

    def _rewind(self, deadline: float) -> None:
        """Resume from the group's committed offsets (read_committed: stable ones only)."""
        wanted = [TopicPartition(self.source, p) for p in range(self.partitions)]
        while time.monotonic() < deadline:
            try:
                committed = self._consumer.committed(wanted, timeout=CALL_TIMEOUT_S)
            except KafkaException as exc:
                self.history.fault(f"committed: {exc}")
                continue
            starts = [tp.offset if tp.offset >= 0 else OFFSET_BEGINNING for tp in committed]
            self._consumer.assign(
                [
                    TopicPartition(self.source, tp.partition, start)
                    for tp, start in zip(committed, starts, strict=True)
                ]
            )
            return
        raise TimeoutError("the copier could not read its committed offsets")

    def _one_transaction(self, deadline: float) -> None:
        messages = [m for m in self._consumer.consume(BATCH_MAX, 1.0) if m.error() is None]
        if not messages:
            return
        txn = self._txn
        self._txn += 1
        values = tuple(output_value(txn, m.value().decode()) for m in messages)
        outcome = self._transact(txn, messages, values)
        self.history.record(Ended(txn, outcome))
        if outcome == "unknown":
            self._new_producer(deadline)
        if outcome != "committed":
            self._rewind(deadline)

    def _transact(self, txn: int, messages: list[Any], values: tuple[str, ...]) -> str:
        producer = self._producer
        self.history.record(Produced(txn, values))  # from here some may reach the log
        try:
            producer.begin_transaction()
            for message, value in zip(messages, values, strict=True):
                producer.produce(self.output, value=value.encode(), partition=message.partition())
            if producer.flush(CALL_TIMEOUT_S) > 0:
                raise TimeoutError("outputs not delivered")
            if self._rng.randrange(ABORT_EVERY) == 0:
                return "aborted" if _ending(producer.abort_transaction) == "done" else "unknown"
            offsets = _next_offsets(self.source, messages)
            metadata = self._consumer.consumer_group_metadata()
            _bounded(producer.send_offsets_to_transaction, offsets, metadata, CALL_TIMEOUT_S)
        except (KafkaException, TimeoutError) as exc:
            if isinstance(exc, KafkaException) and exc.args[0].fatal():
                return "unknown"
            if isinstance(exc, TimeoutError) and "did not return" in str(exc):
                self.history.fault(str(exc))
                return "unknown"  # the instance is stuck: fence it with a new one
            return "aborted" if _ending(producer.abort_transaction) == "done" else "unknown"
        self.history.record(Committing(txn))
        ended = _ending(producer.commit_transaction)
        if ended == "done":
            return "committed"
        if ended == "abort" and _ending(producer.abort_transaction) == "done":
            return "aborted"
        return "unknown"


def _bounded(call: Callable[..., None], *args: Any) -> None:
    """``call(*args)`` in a daemon thread, given up on (TimeoutError) after
    :data:`STUCK_CALL_S` even if it never returns. Seen here: after a broker SIGKILL,
    ``send_offsets_to_transaction(..., 15)`` blocked for over 200 s, its timeout ignored
    (issue 14's hang). The instance is then abandoned: the copier starts a new producer with
    the same transactional id, which fences it."""
    outcome: list[BaseException | None] = []
    thread = threading.Thread(
        target=_capture, args=(call, args, outcome), name="copier-call", daemon=True
    )
    thread.start()
    thread.join(STUCK_CALL_S)
    if not outcome:
        raise TimeoutError(f"{getattr(call, '__name__', call)} did not return in {STUCK_CALL_S} s")
    if outcome[0] is not None:
        raise outcome[0]


def _capture(
    call: Callable[..., None], args: tuple[Any, ...], out: list[BaseException | None]
) -> None:
    try:
        call(*args)
    except BaseException as exc:  # handed to the caller's thread
        out.append(exc)
    else:
        out.append(None)


def _ending(call: Callable[[float], None]) -> str | None:
    """commit or abort with retries: "done", "abort" (must abort instead) or None (unknown)."""
    for _ in range(RETRIES_MAX):
        try:
            _bounded(call, CALL_TIMEOUT_S)
            return "done"
        except TimeoutError:
            return None  # stuck past its own timeout: the instance is abandoned and fenced
        except KafkaException as exc:
            error = exc.args[0]
            if error.fatal():
                return None
            if error.txn_requires_abort():
                return "abort"
            if not error.retriable():
                return None
    return None


def _next_offsets(topic: str, messages: list[Any]) -> list[TopicPartition]:
    last: dict[int, int] = {}
    for message in messages:
        last[message.partition()] = max(last.get(message.partition(), -1), message.offset())
    return [TopicPartition(topic, p, offset + 1) for p, offset in sorted(last.items())]


def observe(
    bootstrap: str,
    topic: str,
    partitions: int,
    isolation: str,
    history: TxnHistory,
    stop: threading.Event,
) -> None:
    """Read ``topic`` from the beginning with ``isolation`` until ``stop``, recording values."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-observer-{isolation}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "reconnect.backoff.max.ms": 500,
            "log_level": 0,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    try:
        while not stop.is_set():
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                history.record(Observed(isolation, isolation, message.value().decode()))
    finally:
        with contextlib.suppress(Exception):
            consumer.close()
