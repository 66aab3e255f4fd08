"""The transaction service: the broker's face of the transaction coordinator.

Handlers ask it to do a thing (init a transactional producer, add partitions, end a
transaction); it asks the pure coordinator (:mod:`shoal.coordinator.txn_coordinator`) for the
decision, logs every changed transaction durably, writes the COMMIT/ABORT markers to every
partition of a finished transaction through the broker's one append operation, and waits for
their fsync before it tells the coordinator (and the client) that the transaction is complete.

Durability: a transaction state change is answered only after its record in
``__transaction_state`` is fsynced, and an EndTxn only after every marker is fsynced too, as
acks=all produce is answered (ARCHITECTURE.md). If a marker cannot be written, the transaction
stays in its prepare state and the timer writes the markers again later; the client gets a
retriable error meanwhile.

The timer task aborts transactions that outlive their timeout and forgets transactional ids
idle for ``transactional.id.expiration.ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Final

from shoal.broker.durable import awaitable_durable, settled_quietly
from shoal.broker.groups import AppendOperation
from shoal.clock import Clock
from shoal.coordinator.offsets_log import OFFSETS_TOPIC, BatchRefused
from shoal.coordinator.producer_state import Rejected
from shoal.coordinator.txn_coordinator import (
    EndResult,
    InitResult,
    MarkerWork,
    TransactionCoordinator,
    TxnMetadata,
)
from shoal.coordinator.txn_log import TXN_STATE_TOPIC, TxnLog
from shoal.protocol import ErrorCode
from shoal.records.control import build_control_batch
from shoal.records.header import read_header
from shoal.storage import AppendInfo, LogConfig, LogManager, StorageError
from shoal.topic_partition import TopicPartition

log = logging.getLogger(__name__)

TIMER_SLEEP_S_MAX: Final = 10.0
"""The timer wakes at least this often, to expire idle ids and retry what failed (logging a
change, writing markers). A failure does not wake it sooner: a broken disk must not turn the
timer into a busy loop."""
DURABLE_WAIT_S_MAX: Final = 30.0
"""How long a request waits for the fsync of its markers or state before it answers
REQUEST_TIMED_OUT-like errors (the markers are then written again by the timer)."""
FENCING_ERRORS: Final = frozenset(
    {ErrorCode.TRANSACTION_COORDINATOR_FENCED, ErrorCode.INVALID_PRODUCER_EPOCH}
)
"""A partition's answers to a marker that mean someone newer ended the producer's transaction
there: Kafka's coordinator stops sending that transaction's markers on them."""

OffsetsMarkerHook = Callable[[int, int, int, bool], "asyncio.Future[None] | None"]
"""(producer id, producer epoch, coordinator epoch, commit) -> the fsync to wait for: the
group coordinator writes the marker to ``__consumer_offsets`` through the broker's append
(checked as every partition's marker; :class:`BatchRefused` when refused), and the
transaction's offset commits become committed or are dropped."""


class TransactionService:
    def __init__(
        self,
        coordinator: TransactionCoordinator,
        clock: Clock,
        logs: LogManager,
        append: AppendOperation,
        state_log_config: LogConfig,
    ) -> None:
        self.coordinator = coordinator
        self._clock = clock
        self._logs = logs
        self._append = append
        plog = logs.get(TXN_STATE_TOPIC, 0)
        if plog is None:
            plog = logs.create(TXN_STATE_TOPIC, 0, state_log_config)
        else:
            plog.update_config(state_log_config)
        state_plog = plog

        def write(batch: bytes) -> AppendInfo:
            result = append(TXN_STATE_TOPIC, 0, state_plog, batch, read_header(batch))
            if not isinstance(result, AppendInfo):  # these batches have no producer id
                raise StorageError(f"{TXN_STATE_TOPIC}: the batch was refused: {result}")
            return result

        self.state_log = TxnLog(plog, write, clock.now_ms)
        restored = self.state_log.replay()
        for meta in restored.values():
            coordinator.restore(meta)
        if restored:
            log.info(
                "loaded %d transactional ids from %s (%d with markers to write)",
                len(restored),
                TXN_STATE_TOPIC,
                len(coordinator.unfinished()),
            )
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._stopping = False
        """Set by :meth:`stop`: the timer ends even if its cancellation was lost (see there)."""
        self._offsets_marker: OffsetsMarkerHook | None = None
        self._abandoned: set[str] = set()
        """Transactional ids whose markers a partition refused as from an older coordinator
        or producer epoch (:meth:`_fenced`): left prepared for the rest of this run."""
        self._finishing: set[str] = set()
        """Transactional ids whose markers a task is writing now (the timer leaves them)."""
        self._snapshot_in_flight = False
        self._writes: dict[str, asyncio.Future[None]] = {}
        """Per transactional id, the fsync of the last log write that holds its change, until
        it settles: a request whose answer rests on that change (a retried add answered "already
        added", a retried InitProducerId) waits for it (:meth:`_await_logged`)."""
        self._timer_wake_ms: int | None = None
        """When the sleeping timer wakes by itself (None while it is awake or not started): a
        request kicks it only to move that earlier (:meth:`_kick_for`)."""

    def on_offsets_marker(self, hook: OffsetsMarkerHook) -> None:
        self._offsets_marker = hook

    # -- requests --------------------------------------------------------------------------

    async def init_producer_id(
        self, transactional_id: str, timeout_ms: int, producer_id: int, producer_epoch: int
    ) -> InitResult:
        try:
            result = self.coordinator.init_producer_id(
                transactional_id, timeout_ms, producer_id, producer_epoch
            )
        except StorageError as exc:
            log.error("could not allocate a producer id: %s", exc)
            return InitResult(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        if result.work is not None:
            # The previous instance's open transaction is aborted now; the client's retry
            # (it got CONCURRENT_TRANSACTIONS) then finds it complete.
            await self._prepare_and_finish(result.work)
            return result
        if result.error is not ErrorCode.NONE:
            return result
        # A retry of a bump another connection made is answered once that bump is durable.
        error = await self._await_logged(transactional_id)
        if error is not ErrorCode.NONE:
            return InitResult(error)
        return result

    async def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Iterable[TopicPartition],
        client_transaction_version: int = 0,
    ) -> ErrorCode:
        """AddPartitionsToTxn, AddOffsetsToTxn, and (``client_transaction_version`` 2) the
        implicit adds of transactions V2 by Produce v12+ and TxnOffsetCommit v5+."""
        error = self.coordinator.add_partitions(
            transactional_id, producer_id, producer_epoch, partitions, client_transaction_version
        )
        if error is not ErrorCode.NONE:
            return error
        # Partitions already in the transaction change nothing, but the add that put them
        # there may be another connection's, still being logged: answered once it is durable
        # (else a crash could forget a partition the producer was told it may write to).
        error = await self._await_logged(transactional_id)
        # Only the add that opens a transaction sets a deadline; later adds keep it.
        self._kick_for(self.coordinator.deadline_ms(transactional_id))
        return error

    async def end_txn(
        self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool
    ) -> ErrorCode:
        result: EndResult = self.coordinator.end_txn(
            transactional_id, producer_id, producer_epoch, commit
        )
        if result.work is None:
            return result.error
        return await self._prepare_and_finish(result.work)

    async def end_txn_bumping(
        self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool
    ) -> tuple[ErrorCode, int, int]:
        """EndTxn v5+ (transactions V2): the epoch is bumped by every end. Returns the error
        and, on success, the producer id and epoch the producer's next transaction uses."""
        try:
            result = self.coordinator.end_txn(
                transactional_id, producer_id, producer_epoch, commit, bump_epoch=True
            )
        except StorageError as exc:  # the id for a rotation could not be allocated
            log.error("could not allocate a producer id: %s", exc)
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, -1, -1
        if result.work is not None:
            error = await self._prepare_and_finish(result.work)
            if error is not ErrorCode.NONE:
                return error, -1, -1
        return result.error, result.producer_id, result.producer_epoch

    # -- markers ---------------------------------------------------------------------------

    async def _prepare_and_finish(self, work: MarkerWork) -> ErrorCode:
        """Log the prepare state of ``work`` (just decided), then write its markers. The id is
        held from the decision on, so the timer cannot write markers of a prepare that is not
        yet durable: after a crash the log must never say less than the partitions do."""
        self._finishing.add(work.transactional_id)
        try:
            error = await self._await_logged(work.transactional_id)
            if error is not ErrorCode.NONE:
                return error  # the timer writes the markers once the state is logged
            return await self._write_markers(work)
        finally:
            self._finishing.discard(work.transactional_id)

    async def _finish(self, work: MarkerWork) -> ErrorCode:
        """Write the markers of ``work``, wait for their fsync, complete the transaction."""
        if work.transactional_id in self._finishing:
            return ErrorCode.CONCURRENT_TRANSACTIONS
        self._finishing.add(work.transactional_id)
        try:
            return await self._write_markers(work)
        finally:
            self._finishing.discard(work.transactional_id)

    @property
    def coordinator_epoch(self) -> int:
        """The coordinator epoch written into this coordinator's markers: as in Kafka, the
        leader epoch of the ``__transaction_state`` partition that holds the transactional id
        (shoal's one partition), which rises at every broker start. A partition refuses a
        marker whose coordinator epoch is older than the last one it took for the producer."""
        return self.state_log.plog.leader_epoch

    async def _write_markers(self, work: MarkerWork) -> ErrorCode:
        waits = []
        fenced: list[tuple[TopicPartition, Rejected]] = []
        timestamp = self._clock.now_ms()
        coordinator_epoch = self.coordinator_epoch
        try:
            for topic, partition in work.partitions:
                if topic == OFFSETS_TOPIC:
                    if self._offsets_marker is None:
                        continue
                    try:
                        ended = self._offsets_marker(
                            work.producer_id, work.producer_epoch, coordinator_epoch, work.commit
                        )
                    except BatchRefused as exc:
                        if exc.refused.error_code not in FENCING_ERRORS:
                            raise
                        fenced.append(((topic, partition), exc.refused))
                        continue
                    if ended is not None:
                        waits.append(ended)
                    continue
                plog = self._logs.get(topic, partition)
                if plog is None:
                    continue  # deleted since it joined the transaction: nothing to end there
                batch = build_control_batch(
                    work.producer_id,
                    work.producer_epoch,
                    commit=work.commit,
                    coordinator_epoch=coordinator_epoch,
                    timestamp=timestamp,
                )
                result = self._append(topic, partition, plog, batch, read_header(batch))
                if isinstance(result, Rejected) and result.error_code in FENCING_ERRORS:
                    fenced.append(((topic, partition), result))
                    continue
                if not isinstance(result, AppendInfo):
                    raise StorageError(f"the marker for {topic}-{partition} was refused: {result}")
                waits.append(awaitable_durable(plog.wait_durable(result.last_offset)))
            if waits:
                await asyncio.wait_for(
                    asyncio.shield(settled_quietly(asyncio.gather(*waits))), DURABLE_WAIT_S_MAX
                )
        except (StorageError, TimeoutError) as exc:
            log.error(
                "markers of transactional id %r not written yet (retried by the timer): %s",
                work.transactional_id,
                exc,
            )
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if fenced:
            self._fenced(work, coordinator_epoch, fenced)
            return ErrorCode.NONE
        self.coordinator.complete(work)
        return await self._log_changes()

    def _fenced(
        self,
        work: MarkerWork,
        coordinator_epoch: int,
        fenced: list[tuple[TopicPartition, Rejected]],
    ) -> None:
        """A partition refused the marker: it took one for the producer from a newer
        coordinator (an operator's ``kafka-transactions abort`` with a higher coordinator
        epoch) or with a newer producer epoch. Kafka's coordinator then stops sending the
        transaction's markers ("this txn can now be ignored": the newer coordinator ends it)
        and leaves it prepared; so does this one. A start whose coordinator epoch is above the
        partition's writes the markers again; a newer producer epoch refuses them at every start
        (the marker keeps the producer epoch the transaction was logged with), as in Kafka.
        The other partitions' markers are written, as Kafka's are (each partition of a
        WriteTxnMarkers request stands alone), and the EndTxn, whose decision is durable, is
        answered as Kafka answers it once the prepare is logged."""
        self._abandoned.add(work.transactional_id)
        for (topic, partition), refused in fenced:
            if refused.error_code is ErrorCode.TRANSACTION_COORDINATOR_FENCED:
                until = (
                    "until a broker start whose coordinator epoch is above the partition's "
                    f"(now {coordinator_epoch})"
                )
            else:
                # The marker keeps the producer epoch logged with the transaction, so no later
                # start gets past a newer producer epoch: prepared for good, as in Kafka.
                until = (
                    "for good: the partition holds a newer producer epoch, and the "
                    "transactional id answers CONCURRENT_TRANSACTIONS from now on"
                )
            log.error(
                "transactional id %r: the %s marker for %s-%d was refused (%s: %s); the "
                "transaction stays %s %s",
                work.transactional_id,
                "COMMIT" if work.commit else "ABORT",
                topic,
                partition,
                refused.error_code.name,
                refused.message,
                "PrepareCommit" if work.commit else "PrepareAbort",
                until,
            )

    async def _log_changes(self) -> ErrorCode:
        """Log every changed transaction to ``__transaction_state`` and wait for the fsync."""
        changed = self.coordinator.take_changed()
        if not changed:
            return ErrorCode.NONE
        try:
            durable = self.state_log.append(changed)
        except StorageError as exc:
            self._not_logged(changed, exc)
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if durable is None:  # pragma: no cover - a non-empty change always writes a record
            self.coordinator.logged(changed)
            return ErrorCode.NONE
        fsync = awaitable_durable(durable)
        # The coordinator hears how the write ended from the fsync itself, not from this
        # waiter: a waiter that times out or is cancelled (its client gone) must not leave
        # the ids "being logged" forever, nor call durable a write that may still fail.
        fsync.add_done_callback(lambda done: self._settled(changed, done))
        for meta in changed:
            self._writes[meta.transactional_id] = fsync
        error = await self._wait_fsync(fsync)
        if error is ErrorCode.NONE:
            await self._maybe_snapshot()
        return error

    def _settled(self, changed: list[TxnMetadata], fsync: asyncio.Future[None]) -> None:
        for meta in changed:
            if self._writes.get(meta.transactional_id) is fsync:
                del self._writes[meta.transactional_id]
        if fsync.cancelled() or fsync.exception() is not None:
            self._not_logged(changed, fsync.exception() if not fsync.cancelled() else None)
        else:
            self.coordinator.logged(changed)

    def _not_logged(self, changed: list[TxnMetadata], exc: BaseException | None) -> None:
        # The change stays in memory and queued: the client is told to retry, and the next
        # round of the timer logs it again before writing any marker.
        log.error("transaction state not logged: %s", exc)
        self.coordinator.requeue(changed)

    async def _wait_fsync(self, fsync: asyncio.Future[None]) -> ErrorCode:
        try:
            await asyncio.wait_for(asyncio.shield(fsync), DURABLE_WAIT_S_MAX)
        except (StorageError, TimeoutError) as exc:
            log.error("transaction state not logged yet: %s", exc)
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        return ErrorCode.NONE

    async def _await_logged(self, transactional_id: str) -> ErrorCode:
        """Wait until every change of the id is durable: log what is queued (a change just
        made, or one whose write failed), or wait for the write in flight that holds it."""
        if self.coordinator.is_queued(transactional_id):
            return await self._log_changes()
        fsync = self._writes.get(transactional_id)
        if fsync is None:
            return ErrorCode.NONE
        return await self._wait_fsync(fsync)

    async def _maybe_snapshot(self) -> None:
        """Rewrite the state and delete the older records once the log has grown enough."""
        if self._snapshot_in_flight or not self.state_log.snapshot_due():
            return
        self._snapshot_in_flight = True
        plog = self.state_log.plog
        try:
            written = self.state_log.write_snapshot(list(self.coordinator))
            if written is None:
                first = plog.log_end_offset
            else:
                durable, first = written
                await awaitable_durable(durable)
            await asyncio.to_thread(plog.delete_records, first)
        except StorageError as exc:
            # Not fatal: the older records still say everything; the next change tries again.
            log.error("could not snapshot %s: %s", TXN_STATE_TOPIC, exc)
        finally:
            self._snapshot_in_flight = False

    # -- the timer -------------------------------------------------------------------------

    def start(self) -> None:
        """Finish what a previous run left half done (markers of prepared transactions)."""
        self._kick()

    def _kick_for(self, deadline_ms: int | None) -> None:
        """Wake the timer if ``deadline_ms`` comes before it would wake by itself (a timer
        awake now reads every deadline before it sleeps again)."""
        if deadline_ms is None:
            return
        if self._task is None or self._task.done():
            self._kick()
        elif self._timer_wake_ms is not None and deadline_ms < self._timer_wake_ms:
            self._kick()

    def _kick(self) -> None:
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = asyncio.ensure_future(self._run_timer())
        if self._wakeup is not None:
            self._wakeup.set()

    async def tick(self) -> None:
        """One round of the timer's work (tests call it with a fake clock)."""
        for work in self.coordinator.abort_timed_out():
            log.info(
                "transactional id %r: transaction timed out, aborting it (epoch now %d)",
                work.transactional_id,
                work.producer_epoch,
            )
        self.coordinator.expire()
        if await self._log_changes() is not ErrorCode.NONE:
            return  # markers only once their prepare state is logged: next round
        for work in self.coordinator.unfinished():
            # Asked again at each turn: while an earlier id's markers were written, this one
            # may have completed, or begun a new transaction whose prepare is not durable.
            current = self.coordinator.pending_work(work.transactional_id)
            if current is not None and work.transactional_id not in self._abandoned:
                await self._finish(current)

    async def _run_timer(self) -> None:
        wakeup = self._wakeup
        if wakeup is None:  # pragma: no cover - _kick() sets it first
            return
        while not self._stop_requested():
            try:
                await self.tick()
            except Exception:
                # A bug here must not stop every transaction's timeout.
                log.exception("transaction coordinator timer failed")
            if self._stop_requested():
                return
            deadline = self.coordinator.next_deadline_ms()
            timeout = TIMER_SLEEP_S_MAX
            if deadline is not None:
                wait_ms = deadline - self._clock.now_ms()
                timeout = min(timeout, max(0.0, wait_ms / 1000))
            self._timer_wake_ms = self._clock.now_ms() + int(timeout * 1000)
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await wakeup.wait()
            finally:
                self._timer_wake_ms = None
            wakeup.clear()

    def _stop_requested(self) -> bool:
        # A method, not the attribute: it changes while the timer awaits.
        return self._stopping

    async def stop(self) -> None:
        # The flag, and not only the cancellation: a cancel that arrives as the future a
        # wait_for awaits completes is lost on Python 3.11 (wait_for returns the result), and
        # the timer then looped on while stop() waited for it forever. Found by the
        # deterministic simulation (tests/simulation: a clean shutdown that never ended).
        self._stopping = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
