"""The seeded scheduler: one random number generator decides every step of a run.

A run boots a broker (storage, group and transaction coordinators, through the Broker and its
handlers) on the fault-injecting filesystem with a fake clock, then takes steps: requests from
simulated clients, flusher rounds (fsyncs happen only then, for the logs and in the order the
seed picks), queued worker jobs, clock advances, retention, DeleteRecords and ListOffsets
(:mod:`tests.simulation.delete_steps`), topic admin on a second topic
(:mod:`tests.simulation.admin_steps`), injected ENOSPC and EIO, process crashes and power
losses followed by a restart from the same files. After each step
the invariants of :mod:`tests.simulation.model` are checked; a failure raises
:class:`Violation` with the seed and the trace of steps, and the same seed replays the same
run exactly.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from shoal.protocol import ApiKey, ErrorCode
from shoal.records import read_header
from shoal.storage import StorageError
from shoal.testing.clock import FakeClock
from shoal.testing.faultfs import FaultyFileSystem
from tests.simulation import consumers as cons
from tests.simulation import producers as prod
from tests.simulation import txns as tx
from tests.simulation.admin_steps import AdminModel, AdminSteps
from tests.simulation.compact_steps import (
    COMPACT_CONFIGS,
    COMPACT_TOPIC,
    CompactModel,
    CompactSteps,
)
from tests.simulation.delete_steps import DeleteSteps
from tests.simulation.group_steps import GroupSteps
from tests.simulation.model import PartitionModel, Violation, check_partition, stamped_body
from tests.simulation.next_gen_steps import NEXT_GEN_GROUP, NextGenSteps
from tests.simulation.node import InFlight, Node
from tests.simulation.share_steps import ShareSteps
from tests.simulation.topic import PARTITIONS, TOPIC
from tests.simulation.txn_steps import TxnSteps

FETCH_VERSION: Final = 12
FETCH_BYTES_MAX: Final = 1 << 20
FETCH_BELOW_START_RATIO: Final = 0.1
"""Fetches aimed below the log start (Kafka answers OFFSET_OUT_OF_RANGE)."""
CLOCK_STEPS_MS: Final = (1, 10, 100, 1_000, 7_000, 31_000, 700_000)
"""Clock advances: sub-tick, flusher ticks, session timeouts (6-45 s), produce timeouts (30 s)
and past retention.ms (600 s, see node.log_config)."""

FULL_ROUND_RATIO: Final = 0.5
"""Flusher rounds in which every log with work finishes it (in a shuffled order); in the
others a shuffled part of them does, and the rest wait for a later round."""

BOOT_ATTEMPTS_MAX: Final = 3
"""Starts tried after a crash: each armed fault fires once, and at most two are armed."""


@dataclass
class Stats:
    steps: int = 0
    power_losses: int = 0
    process_crashes: int = 0
    clean_restarts: int = 0
    cleans: int = 0
    compacted_writes: int = 0
    share_deliveries: int = 0
    share_acks: int = 0
    unretrieved: int = 0
    offsets_committed: int = 0
    txns_committed: int = 0
    txns_aborted_or_lost: int = 0
    acked_batches: int = 0
    enospc: int = 0
    eio: int = 0
    ops: dict[str, int] = field(default_factory=dict)


class ErrorCatcher(logging.Handler):
    """Keeps the exceptions shoal logged (a background task's failure is logged, not raised)
    that are not the I/O failures the simulation injects: each one is a bug."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.unexpected: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info is None or record.exc_info[1] is None:
            return
        exc = record.exc_info[1]
        if not isinstance(exc, EXPECTED_ERRORS):
            self.unexpected.append(f"{record.getMessage()}: {exc!r}")


EXPECTED_ERRORS: Final = (StorageError, OSError)


@contextlib.contextmanager
def caught_errors(catcher: ErrorCatcher) -> Iterator[None]:
    """Route shoal's log records to ``catcher`` only (a run's expected warnings, torn tails
    cut after each crash, would otherwise flood the output)."""
    logger = logging.getLogger("shoal")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    logger.setLevel(logging.ERROR)
    logger.propagate = False
    logger.handlers = [catcher]
    try:
        yield
    finally:
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        logger.handlers = saved[2]


@contextlib.contextmanager
def seeded_uuids(rng: random.Random) -> Iterator[None]:
    """uuid4 (member ids, topic ids) from the run's RNG: member ids decide assignments."""
    original = uuid.uuid4
    uuid.uuid4 = lambda: uuid.UUID(int=rng.getrandbits(128), version=4)
    try:
        yield
    finally:
        uuid.uuid4 = original


class Simulation(
    TxnSteps, GroupSteps, NextGenSteps, ShareSteps, DeleteSteps, AdminSteps, CompactSteps
):
    def __init__(self, seed: int, steps: int) -> None:
        self.seed = seed
        self.steps = steps
        self.rng = random.Random(seed)
        self.clock = FakeClock()
        self.fs = FaultyFileSystem(self.rng.getrandbits(32))
        self.node = Node(self.fs, self.clock, self.rng)
        self.trace: list[str] = []
        self.stats = Stats()
        self.models = {p: PartitionModel() for p in range(PARTITIONS)}
        self.producers = [
            prod.Producer("i0", idempotent=True),
            prod.Producer("i1", idempotent=True),
            prod.Producer("p0", idempotent=False),
        ]
        self.members = [
            cons.Member("c0", "g"),
            cons.Member("c1", "g"),
            cons.Member("c2", "g"),
            cons.Member("solo", "solo", standalone=True),
        ]
        self.commits = cons.CommitModel()
        self.txn_producers = [tx.TxnProducer("t0", "tx-0"), tx.TxnProducer("t1", "tx-1")]
        self.txns = tx.TxnModel()
        self.admin = AdminModel()
        self.compact = CompactModel()
        self.next_gen = self._next_gen_members()
        self.share = self._share_clients()
        self._flights: list[tuple[Callable[[InFlight], None], InFlight]] = []
        self._errors = ErrorCatcher()

    # -- running --------------------------------------------------------------------------

    def run(self) -> Stats:
        with seeded_uuids(self.rng), caught_errors(self._errors):
            try:
                self._boot()
                assert self.node.broker is not None
                self.node.broker.create_topic(TOPIC, PARTITIONS)
                self.node.broker.create_topic(COMPACT_TOPIC, 1, COMPACT_CONFIGS)
                for step in range(self.steps):
                    self._step(step)
            except Violation as exc:
                raise Violation(self._report(str(exc))) from None
            except Exception as exc:
                raise Violation(self._report(f"the simulation raised {exc!r}")) from exc
            finally:
                self.node.shutdown()
        self.stats.offsets_committed = sum(
            c.status == "acked" for commits in self.commits.commits.values() for c in commits
        )
        self.stats.txns_committed = sum(t.committed for t in self.txns.txns)
        self.stats.txns_aborted_or_lost = len(self.txns.txns) - self.stats.txns_committed
        self.stats.compacted_writes = sum(w.offset is not None for w in self.compact.writes)
        self.stats.share_deliveries = self.share.deliveries
        self.stats.share_acks = sum(self.share.acknowledged.values())
        return self.stats

    def _report(self, what: str) -> str:
        tail = "\n".join(self.trace[-60:])
        return (
            f"simulation seed {self.seed} failed at step {self.stats.steps}: {what}\n"
            f"replay: make simulate SEED={self.seed} STEPS={self.steps}\n"
            f"last steps:\n{tail}"
        )

    def _note(self, text: str) -> None:
        self.trace.append(f"{self.stats.steps:4d} t+{self.clock.monotonic_ms():>9.0f}ms {text}")

    def _step(self, step: int) -> None:
        self.stats.steps = step
        ops: list[tuple[int, Callable[[], None]]] = [
            (25, self._produce),
            (15, self._group),
            (10, self._next_gen),
            (20, self._share),
            (30, self._transact),
            (10, self._fetch),
            (4, self._delete_records),
            (2, self._list_earliest),
            (3, self._admin),
            (5, self._produce_admin_topic),
            (10, self._produce_compacted),
            (4, self._clean_logs),
            (25, self._flush),
            (5, self._run_job),
            (8, self._advance),
            (2, self._retention),
            (2, self._enospc),
            (1, self._eio),
            (2, self._power_loss),
            (1, self._process_crash),
            (1, self._clean_restart),
        ]
        assert self.node.logs is not None
        if self.node.logs.health.failure is not None:
            ops.append((10, self._process_crash))  # an operator restarts a failed broker
        op = self.rng.choices([o for _, o in ops], weights=[w for w, _ in ops])[0]
        name = op.__name__.lstrip("_")
        self.stats.ops[name] = self.stats.ops.get(name, 0) + 1
        op()
        self._collect()
        self._check()
        if self._errors.unexpected:
            raise Violation(f"the broker logged an exception: {self._errors.unexpected[0]}")
        assert self.node.loop is not None
        unhandled = self.node.loop.unhandled
        # A failed fsync's future that nobody awaited any more (its waiter timed out or gave
        # up) is only reported by asyncio, as "never retrieved": log noise, not a lost answer.
        self.stats.unretrieved += sum("never retrieved" in u for u in unhandled)
        unhandled[:] = [u for u in unhandled if "never retrieved" not in u]
        if unhandled:
            raise Violation(f"asyncio saw an unhandled exception: {unhandled[0]}")

    def _boot(self) -> None:
        for attempt in range(1, BOOT_ATTEMPTS_MAX + 1):
            try:
                self.node.boot()
                break
            except StorageError as exc:
                # A fault armed before the crash hit the recovery: the operator starts again.
                self._note(f"start {attempt} failed: {exc}")
                if attempt == BOOT_ATTEMPTS_MAX:
                    raise Violation(f"the broker did not start in {attempt} attempts") from exc
        assert self.node.logs is not None
        if self.node.logs.offline:
            raise Violation(f"partitions offline after a restart: {self.node.logs.offline}")

    # -- steps ----------------------------------------------------------------------------

    def _send(
        self, api: tuple[int, int], values: dict[str, Any], on_answer: Callable[[InFlight], None]
    ) -> InFlight:
        flight = self.node.send(api[0], api[1], values)
        self._flights.append((on_answer, flight))
        assert self.node.loop is not None
        self.node.loop.settle()
        return flight

    def _produce(self) -> None:
        producer = self.rng.choice(self.producers)
        if self._producer_busy(producer):
            return
        if producer.pending is None:
            acks = -1 if producer.idempotent else self.rng.choice((-1, 1))
            producer.pending = producer.new_batch(
                self.rng.randrange(PARTITIONS), self.clock.now_ms(), self.rng.randint(1, 5), acks
            )
            verb = "produce"
        else:
            verb = "retry"
        pending = producer.pending
        header = read_header(pending.batch)
        self._note(
            f"{producer.name}: {verb} p{pending.partition} acks={pending.acks} "
            f"pid={header.producer_id} seq={header.base_sequence} n={header.record_count}"
        )
        producer.flight = self._send(
            prod.PRODUCE,
            prod.produce_values(TOPIC, pending),
            lambda f: self._on_produce(producer, pending, f),
        )

    def _producer_busy(self, producer: prod.Producer) -> bool:
        """True when ``producer`` cannot send a batch in this step: its last request is still
        in flight, or it needs a producer id first (then it asks for one)."""
        if producer.flight is not None:
            self._note(f"{producer.name}: still waiting for its request")
            return True
        if not producer.ready:
            self._note(f"{producer.name}: InitProducerId")
            producer.flight = self._send(
                prod.INIT_PRODUCER_ID,
                prod.init_producer_id_values(),
                lambda f: self._on_init(producer, f),
            )
            return True
        return False

    def _on_init(self, producer: prod.Producer, flight: InFlight) -> None:
        producer.flight = None
        answer = self.node.answer(flight)
        if answer.error_code != ErrorCode.NONE:
            self._note(f"{producer.name}: InitProducerId -> {ErrorCode(answer.error_code).name}")
            return
        producer.producer_id = int(answer.producer_id)
        producer.epoch = int(answer.producer_epoch)
        producer.next_sequence.clear()
        producer.pending = None
        self._note(f"{producer.name}: pid {producer.producer_id} epoch {producer.epoch}")

    def _on_produce(self, producer: prod.Producer, pending: prod.Pending, flight: InFlight) -> None:
        producer.flight = None
        answer = self.node.answer(flight)
        part = answer.responses[0].partition_responses[0]
        error = ErrorCode(part.error_code)
        base = int(part.base_offset)
        self._note(f"{producer.name}: p{pending.partition} -> {error.name} at {base}")
        header = read_header(pending.batch)
        if error is ErrorCode.NONE:
            if pending.acks == -1:
                self._acked(pending, base)
            if producer.idempotent:
                producer.next_sequence[pending.partition] = (
                    header.base_sequence + header.record_count
                )
            producer.pending = None
        elif error in prod.RETRIABLE and producer.idempotent:
            pass  # resent as is, same sequence
        elif error in prod.RETRIABLE:
            producer.pending = None  # a plain producer moves on (a retry could duplicate)
        elif error in (
            ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
            ErrorCode.UNKNOWN_PRODUCER_ID,
            ErrorCode.INVALID_PRODUCER_EPOCH,
        ):
            # The client's session is over: a new producer id, sequences from 0.
            producer.producer_id = -1
            producer.pending = None
        else:
            raise Violation(
                f"{producer.name}: unexpected answer {error.name}: {part.error_message}"
            )

    def _acked(self, pending: prod.Pending, base: int) -> None:
        model = self.models[pending.partition]
        known = model.acked.get(base)
        if known is not None and known != stamped_body(pending.batch):
            raise Violation(f"offset {base} acknowledged for two different batches")
        model.acked[base] = stamped_body(pending.batch)
        self.stats.acked_batches += 1

    def _fetch(self) -> None:
        partition = self.rng.randrange(PARTITIONS)
        plog = self._plog(partition)
        start = plog.log_start_offset
        if start > 0 and self.rng.random() < FETCH_BELOW_START_RATIO:
            offset = self.rng.randrange(start)  # a consumer behind DeleteRecords or retention
        else:
            offset = self.rng.randint(start, plog.log_end_offset)
        isolation = self.rng.choice((0, 1))
        self._note(f"fetch p{partition} at {offset} isolation={isolation}")
        values = {
            "replica_id": -1,
            "max_wait": 0,
            "min_bytes": 0,
            "max_bytes": FETCH_BYTES_MAX,
            "isolation_level": isolation,
            "session_id": 0,
            "session_epoch": -1,
            "topics": [
                {
                    "topic": TOPIC,
                    "partitions": [
                        {
                            "partition": partition,
                            "current_leader_epoch": -1,
                            "fetch_offset": offset,
                            "last_fetched_epoch": -1,
                            "log_start_offset": -1,
                            "partition_max_bytes": FETCH_BYTES_MAX,
                        }
                    ],
                }
            ],
            "forgotten_topics_data": [],
            "rack_id": "",
        }
        self._send(
            (int(ApiKey.FETCH), FETCH_VERSION),
            values,
            lambda f: self._on_fetch(partition, isolation, offset, start, f),
        )

    def _on_fetch(
        self, partition: int, isolation: int, offset: int, start: int, flight: InFlight
    ) -> None:
        answer = self.node.answer(flight)
        part = answer.responses[0].partitions[0]
        error = ErrorCode(part.error_code)
        if error is ErrorCode.OFFSET_OUT_OF_RANGE:
            return  # below the start, or retention or DeleteRecords moved it meanwhile
        if error is ErrorCode.NONE and offset < start:
            # The start only moves forward while running: this offset was deleted already.
            raise Violation(f"fetch p{partition} at {offset}, below the log start {start}: NONE")
        if error is not ErrorCode.NONE:
            raise Violation(f"fetch p{partition}: unexpected answer {error.name}")
        data = memoryview(part.records or b"")
        model = self.models[partition]
        position, expected = 0, None
        while position < len(data):
            header = read_header(data[position:])
            if expected is not None and header.base_offset != expected:
                raise Violation(
                    f"fetch p{partition}: batch at {header.base_offset}, not {expected}"
                )
            known = model.acked.get(header.base_offset)
            body = stamped_body(bytes(data[position : position + header.size]))
            if known is not None and body != known:
                raise Violation(
                    f"fetch p{partition}: acknowledged batch {header.base_offset} differs"
                )
            expected = header.base_offset + header.last_offset_delta + 1
            if expected <= start:
                # A batch may straddle the log start (Kafka returns whole batches), but none
                # may lie wholly below the start the fetch was sent at.
                raise Violation(
                    f"fetch p{partition}: batch [{header.base_offset}, {expected}) below the "
                    f"log start {start}"
                )
            position += header.size
        if isolation == 1:
            aborted = [
                (int(a.producer_id), int(a.first_offset)) for a in part.aborted_transactions or ()
            ]
            for header in tx.read_committed_view(bytes(data), aborted):
                if header.is_transactional:
                    self._check_committed(partition, header)

    def _check_committed(self, partition: int, header: Any) -> None:
        key = (header.producer_id, header.producer_epoch, partition, header.base_sequence)
        txn = self.txns.batches.get(key)
        if txn is None:
            raise Violation(f"read_committed fetch p{partition}: unknown batch {key}")
        if not txn.commit_sent:
            raise Violation(
                f"read_committed fetch p{partition}: batch at {header.base_offset} of "
                f"transaction {txn.number} (pid {txn.producer_id}) that was never committed"
            )

    def _flush(self) -> None:
        self._note("flusher round")
        self.node.flush(self._choose_round)

    def _choose_round(self, logs: int) -> list[int]:
        """Which logs' fsyncs finish in this round, and in which order: the workers finish
        any of the logs in flight in any order, so half the rounds finish all of them
        shuffled and half a shuffled part, the others left for a later round."""
        order = list(range(logs))
        self.rng.shuffle(order)
        finishing = logs if self.rng.random() < FULL_ROUND_RATIO else self.rng.randint(1, logs)
        self._note(f"  logs finishing (of {logs}): {order[:finishing]}")
        return order[:finishing]

    def _run_job(self) -> None:
        name = self.node.run_job()
        self._note(f"worker job {name}")

    def _advance(self) -> None:
        ms = self.rng.choice(CLOCK_STEPS_MS)
        self._note(f"clock +{ms}ms")
        self.node.advance(ms)

    def _retention(self) -> None:
        assert self.node.logs is not None
        deleted = self.node.logs.apply_retention()
        self._note(f"retention deleted {deleted} segments")

    def _enospc(self) -> None:
        after = self.rng.randint(0, 200)
        self._note(f"arm ENOSPC after {after} bytes")
        self.stats.enospc += 1
        self.fs.fail_next_write(errno.ENOSPC, after_bytes=after)

    def _eio(self) -> None:
        self._note("arm EIO on the next fsync")
        self.stats.eio += 1
        self.fs.fail_next_fsync(errno.EIO)

    def _power_loss(self) -> None:
        keep = self.rng.random() < 0.5
        self._note(f"POWER LOSS (keep_unsynced={keep}), reboot")
        self.stats.power_losses += 1
        self.node.power_loss(keep_unsynced=keep)
        self._after_restart()

    def _process_crash(self) -> None:
        self._note("PROCESS CRASH (page cache survives), restart")
        self.stats.process_crashes += 1
        self.node.shutdown()
        # The operator who restarts a full or failing disk frees space or swaps it first.
        self.fs.clear_faults()
        self._after_restart()

    def _clean_restart(self) -> None:
        self._note("CLEAN SHUTDOWN, restart")
        self.stats.clean_restarts += 1
        try:
            self.node.clean_shutdown([f.task for _, f in self._flights])
        except StorageError as exc:
            self._note(f"shutdown: {exc}")  # a failed directory cannot be closed cleanly
        self.fs.clear_faults()
        self._after_restart()
        assert self.node.logs is not None
        if self.node.logs.health.failure is None and not self.node.logs.recovered_cleanly:
            self._note("(the previous shutdown was not clean)")

    def _after_restart(self) -> None:
        # Every request in flight died with the broker: its outcome is unknown.
        self._flights.clear()
        for producer in self.producers:
            producer.flight = None
            if not producer.idempotent:
                producer.pending = None
        for member in self.members:
            member.flight = None
        for producer in self.txn_producers:
            # The client reconnects and carries on where it was, retrying what was in flight
            # (Kafka's producer does): the broker must have kept its transaction, or answer
            # with an error after which the client starts over.
            producer.flight = None
        self.commits.lost_answers()
        self._admin_restarted()
        self._compact_restarted()
        self._next_gen_restarted()
        self._share_restarted()
        for model in self.models.values():
            # A DeleteRecords whose answer was lost may be undone, down to the answered floor.
            model.seen_start = model.start_floor
        self._boot()

    # -- answers and invariants -----------------------------------------------------------

    def _collect(self) -> None:
        """Hand every finished request to its client, in the order they were sent."""
        while True:
            done = [(h, f) for h, f in self._flights if f.task.done()]
            if not done:
                return
            for handler, flight in done:
                self._flights.remove((handler, flight))
                if flight.task.cancelled():
                    continue
                exc = flight.task.exception()
                if exc is not None:
                    raise Violation(f"the broker raised instead of answering: {exc!r}") from exc
                handler(flight)

    def _plog(self, partition: int) -> Any:
        assert self.node.broker is not None
        plog = self.node.broker.partition(TOPIC, partition)
        if plog is None:
            raise Violation(f"partition {TOPIC}-{partition} is missing")
        return plog

    def _check(self) -> None:
        for partition, model in self.models.items():
            check_partition(f"{TOPIC}-{partition}", self._plog(partition), model)
        self._check_admin_topic()
        self._check_compacted()
        self._check_next_gen()
        self._check_share()
        assert self.node.broker is not None
        committed: dict[tuple[str, int], int | None] = {}
        for group in sorted({m.group for m in self.members} | {NEXT_GEN_GROUP}):
            for (topic, partition), offset in self.node.broker.groups.fetch_offsets(
                group, None
            ).items():
                if topic == TOPIC:
                    committed[(group, partition)] = None if offset is None else offset.offset
        self.commits.check(committed)
        txn_committed = self.node.broker.groups.fetch_offsets(tx.TXN_GROUP, None)
        for partition in range(PARTITIONS):
            found = txn_committed.get((TOPIC, partition))
            value = None if found is None else found.offset
            allowed = self.txns.allowed_offsets(partition)
            if value not in allowed:
                raise Violation(
                    f"group {tx.TXN_GROUP} partition {partition}: committed offset {value} "
                    f"from no committed transaction (allowed {sorted(map(str, allowed))})"
                )
