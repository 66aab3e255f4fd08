"""The transaction coordinator: one :class:`TxnMetadata` per transactional id, and the rules of
InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and the timeouts (Kafka's
``TransactionCoordinator``), for the classic protocol ("transactions V1") and for transactions
V2 (KIP-890 part 2: every EndTxn v5 bumps the epoch, see :meth:`TransactionCoordinator.
_end_txn_v2`; partitions are added implicitly by the broker's Produce and TxnOffsetCommit,
which call :meth:`TransactionCoordinator.add_partitions` with client transaction version 2).

Pure: no I/O, time from the injected clock. A request that is accepted changes the metadata
here and may hand back :class:`MarkerWork` (the COMMIT or ABORT markers to write to every
partition of the transaction). The caller writes the markers, waits for their fsync and then
calls :meth:`TransactionCoordinator.complete`; until then the transaction sits in a prepare
state and requests that would change it are answered CONCURRENT_TRANSACTIONS (retriable), as
Kafka answers while its markers are in flight. Every accepted change is also reported by
:meth:`TransactionCoordinator.take_changed`, for the caller to log durably before it answers.

Epochs, as Kafka's classic protocol bumps them: InitProducerId gives epoch 0 to a new id and
bumps the epoch of a known one (so the previous instance, still on the old epoch, is fenced:
PRODUCER_FENCED from the coordinator, INVALID_PRODUCER_EPOCH from the partitions once a marker
with the new epoch is there). If the previous instance left a transaction open, InitProducerId
bumps the epoch, aborts that transaction with the new epoch (PrepareEpochFence, then
PrepareAbort) and answers CONCURRENT_TRANSACTIONS; the client retries and gets the next epoch
once the abort is complete. A transaction open longer than its timeout is aborted the same
way, which fences its producer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from shoal.clock import Clock
from shoal.coordinator.producer_state import EPOCH_MAX
from shoal.coordinator.txn_state import (
    OPEN_STATES,
    PREPARE_STATES,
    TxnEvent,
    TxnState,
    next_state,
)
from shoal.invariant import invariant
from shoal.protocol import ErrorCode
from shoal.topic_partition import TopicPartition

TRANSACTION_MAX_TIMEOUT_MS: Final = 900_000
"""Kafka's transaction.max.timeout.ms default (15 minutes): a client's transaction.timeout.ms
above it is refused with INVALID_TRANSACTION_TIMEOUT."""
TRANSACTIONAL_ID_EXPIRATION_MS: Final = 604_800_000
"""Kafka's transactional.id.expiration.ms default (7 days): an id with no transaction open and
no request for this long is forgotten (Dead)."""
CLIENT_TRANSACTION_VERSION_2: Final = 2
"""ClientTransactionVersion of a transactions V2 producer (KIP-890 part 2)."""
NO_PRODUCER_ID: Final = -1
NO_PRODUCER_EPOCH: Final = -1


@dataclass
class TxnMetadata:
    """What the coordinator knows of one transactional id (Kafka's TransactionMetadata)."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState = TxnState.EMPTY
    last_producer_epoch: int = NO_PRODUCER_EPOCH
    """The epoch before the last bump: a retried InitProducerId (KIP-360) may present it."""
    partitions: set[TopicPartition] = field(default_factory=set)
    txn_start_ms: int = -1
    """When the last transaction began (its first AddPartitions), -1 after InitProducerId.
    Kept once it completes, as Kafka keeps it (DescribeTransactions shows it)."""
    last_update_ms: int = 0
    client_transaction_version: int = 0
    """The transaction protocol of the producer's current transaction (Kafka's
    ClientTransactionVersion): 2 when it was opened by an implicit add (Produce v12+,
    TxnOffsetCommit v5+), 0 when by AddPartitionsToTxn or AddOffsetsToTxn."""
    previous_producer_id: int = NO_PRODUCER_ID
    """Kafka's PreviousProducerId: the producer id before the last transition, as every
    transition of Kafka's TransactionMetadata records it. So the current id, except right
    after a rotation (an exhausted epoch), when it is the id replaced, which a client retrying
    the EndTxn or InitProducerId of the rotation still presents; the next transition (the new
    id's first add) names the new id, and the old id is then fenced."""
    next_producer_id: int = NO_PRODUCER_ID
    """While a V2 transaction whose epoch is exhausted ends: the producer id that replaces
    the current one once its markers are written (Kafka's NextProducerId)."""


@dataclass(frozen=True, slots=True)
class MarkerWork:
    """Markers to write: one control batch per partition, then :meth:`complete`."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    commit: bool
    partitions: tuple[TopicPartition, ...]


@dataclass(frozen=True, slots=True)
class InitResult:
    error: ErrorCode
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    work: MarkerWork | None = None
    """The abort of the previous instance's open transaction (error is then
    CONCURRENT_TRANSACTIONS: the client asks again once it is done)."""


@dataclass(frozen=True, slots=True)
class EndResult:
    error: ErrorCode
    work: MarkerWork | None = None
    producer_id: int = NO_PRODUCER_ID
    """Transactions V2 (EndTxn v5): the producer id and epoch of the producer's next
    transaction, decided with the end (the answer once its markers are written)."""
    producer_epoch: int = NO_PRODUCER_EPOCH


class TransactionCoordinator:
    """Every transactional id's metadata. Not thread-safe: the broker's event loop calls it."""

    def __init__(
        self,
        clock: Clock,
        allocate_producer_id: Callable[[], int],
        *,
        max_timeout_ms: int = TRANSACTION_MAX_TIMEOUT_MS,
        expiration_ms: int = TRANSACTIONAL_ID_EXPIRATION_MS,
    ) -> None:
        invariant(max_timeout_ms > 0, "transaction.max.timeout.ms must be positive")
        invariant(expiration_ms > 0, "transactional.id.expiration.ms must be positive")
        self._clock = clock
        self._allocate = allocate_producer_id
        self.max_timeout_ms = max_timeout_ms
        self.expiration_ms = expiration_ms
        self._txns: dict[str, TxnMetadata] = {}
        self._by_producer_id: dict[int, str] = {}
        self._changed: dict[str, TxnMetadata] = {}
        self._logging: dict[str, int] = {}
        """Ids taken by :meth:`take_changed` whose log write is not yet known durable: how
        many writes of each are in flight (see :meth:`is_logged`)."""

    # -- reading ---------------------------------------------------------------------------

    def get(self, transactional_id: str) -> TxnMetadata | None:
        return self._txns.get(transactional_id)

    def by_producer_id(self, producer_id: int) -> TxnMetadata | None:
        txn_id = self._by_producer_id.get(producer_id)
        return None if txn_id is None else self._txns.get(txn_id)

    def __iter__(self) -> Iterator[TxnMetadata]:
        return iter(self._txns.values())

    def take_changed(self) -> list[TxnMetadata]:
        """The metadata changed since the last call, to be logged durably. The caller then
        says how the write ended: :meth:`logged` once it is durable, :meth:`requeue` if it
        failed; until then the ids count as not logged (:meth:`is_logged`)."""
        changed = list(self._changed.values())
        self._changed.clear()
        for meta in changed:
            txn_id = meta.transactional_id
            self._logging[txn_id] = self._logging.get(txn_id, 0) + 1
        return changed

    def logged(self, metas: Iterable[TxnMetadata]) -> None:
        """Changes taken by :meth:`take_changed` are durable now."""
        for meta in metas:
            self._settle(meta.transactional_id)

    def requeue(self, metas: Iterable[TxnMetadata]) -> None:
        """Changes taken by :meth:`take_changed` that could not be logged: take them again
        (unless a newer change of the same id is already queued)."""
        for meta in metas:
            self._settle(meta.transactional_id)
            self._changed.setdefault(meta.transactional_id, meta)

    def _settle(self, txn_id: str) -> None:
        left = self._logging.get(txn_id, 0) - 1
        invariant(left >= 0, f"transactional id {txn_id!r}: a log write settled twice")
        if left:
            self._logging[txn_id] = left
        else:
            del self._logging[txn_id]

    def is_queued(self, transactional_id: str) -> bool:
        """Has the id a change not yet handed to the log by :meth:`take_changed`?"""
        return transactional_id in self._changed

    def is_logged(self, transactional_id: str) -> bool:
        """Is every change of the id durable (none queued, none being written)? Markers are
        written only then: after a crash the log must never say less than the partitions."""
        return transactional_id not in self._changed and transactional_id not in self._logging

    def unfinished(self) -> list[MarkerWork]:
        """The markers of every transaction in a prepare state that is durable: after a
        restart (or a failed marker write) they are written again; a marker written twice is
        harmless, because the second finds no open transaction of its producer on the
        partition. A prepare whose log write is queued or in flight is left out: its markers
        wait until the log says the transaction ends (else a crash could leave markers of a
        transaction the replayed log still calls Ongoing)."""
        works = []
        for txn_id in self._txns:
            work = self.pending_work(txn_id)
            if work is not None:
                works.append(work)
        return works

    def pending_work(self, transactional_id: str) -> MarkerWork | None:
        """The markers the id's durable prepare state still needs written, None if none."""
        meta = self._txns.get(transactional_id)
        if meta is None or meta.state not in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
            return None
        if not self.is_logged(transactional_id):
            return None
        return _work(meta, commit=meta.state is TxnState.PREPARE_COMMIT)

    # -- InitProducerId ----------------------------------------------------------------------

    def init_producer_id(
        self,
        transactional_id: str,
        timeout_ms: int,
        producer_id: int = NO_PRODUCER_ID,
        producer_epoch: int = NO_PRODUCER_EPOCH,
    ) -> InitResult:
        if not 0 < timeout_ms <= self.max_timeout_ms:
            return InitResult(ErrorCode.INVALID_TRANSACTION_TIMEOUT)
        now = self._clock.now_ms()
        meta = self._txns.get(transactional_id)
        if meta is None or meta.state is TxnState.DEAD:
            meta = TxnMetadata(transactional_id, self._allocate(), 0, timeout_ms)
            meta.previous_producer_id = meta.producer_id  # as Kafka logs a first epoch
            meta.last_update_ms = now
            self._store(meta)
            return InitResult(ErrorCode.NONE, meta.producer_id, meta.producer_epoch)
        if meta.state in PREPARE_STATES:
            return InitResult(ErrorCode.CONCURRENT_TRANSACTIONS)
        if producer_id != NO_PRODUCER_ID:
            # KIP-360: a client recovering its own id presents it; any other id or an older
            # epoch means another instance took over meanwhile.
            if (
                producer_id == meta.previous_producer_id != meta.producer_id
                and producer_epoch >= EPOCH_MAX - 1
                and producer_epoch == meta.last_producer_epoch
                and meta.state is not TxnState.ONGOING
            ):
                # A retry from before a rotation (the exhausted epoch of the id it replaced,
                # which the rotation recorded as the last epoch, as Kafka accepts it): the
                # rotated id is the answer. Anyone else presenting the old id is fenced.
                return InitResult(ErrorCode.NONE, meta.producer_id, meta.producer_epoch)
            if producer_id != meta.producer_id:
                return InitResult(ErrorCode.PRODUCER_FENCED)
            if producer_epoch == meta.last_producer_epoch and meta.state is not TxnState.ONGOING:
                # A retry of the bump that already happened: the same answer again.
                return InitResult(ErrorCode.NONE, meta.producer_id, meta.producer_epoch)
            if producer_epoch != meta.producer_epoch:
                return InitResult(ErrorCode.PRODUCER_FENCED)
        if meta.state is TxnState.ONGOING:
            return InitResult(ErrorCode.CONCURRENT_TRANSACTIONS, work=self._fence(meta, now))
        self._bump_epoch(meta, now, requested=producer_id != NO_PRODUCER_ID)
        meta.state = next_state(transactional_id, meta.state, TxnEvent.INIT)
        meta.timeout_ms = timeout_ms
        meta.partitions = set()
        meta.txn_start_ms = -1
        self._store(meta)
        return InitResult(ErrorCode.NONE, meta.producer_id, meta.producer_epoch)

    def _bump_epoch(self, meta: TxnMetadata, now: int, *, requested: bool) -> None:
        """``requested``: the InitProducerId named the producer id and epoch (a client
        recovering its own id), not a new instance."""
        if meta.producer_epoch >= EPOCH_MAX - 1:
            # The epoch is exhausted: a new producer id starts again at 0 (Kafka does the same),
            # keeping one epoch in reserve for fencing. As Kafka's prepareProducerIdRotation,
            # the old epoch is kept as the last one only when the requester named it, so that
            # only its retry is answered with the new id, never a zombie's request.
            self._by_producer_id.pop(meta.producer_id, None)
            meta.previous_producer_id = meta.producer_id
            meta.producer_id = self._allocate()
            meta.last_producer_epoch = meta.producer_epoch if requested else NO_PRODUCER_EPOCH
            meta.producer_epoch = 0
        else:
            # Kafka's epoch bump names the id it bumps as the previous one too (its log
            # shows PreviousProducerId = ProducerId until a rotation).
            meta.previous_producer_id = meta.producer_id
            meta.last_producer_epoch = meta.producer_epoch
            meta.producer_epoch += 1
        meta.last_update_ms = now

    def _fence(self, meta: TxnMetadata, now: int) -> MarkerWork:
        """Bump the epoch of an open transaction and abort it with the new epoch."""
        if (
            meta.client_transaction_version >= CLIENT_TRANSACTION_VERSION_2
            and meta.producer_epoch >= EPOCH_MAX - 1
        ):
            # As Kafka fences a V2 transaction on the exhausted epoch: the producer id is
            # rotated once the abort's markers (epoch EPOCH_MAX) are written, see complete().
            meta.next_producer_id = self._allocate()
        meta.state = next_state(meta.transactional_id, meta.state, TxnEvent.FENCE)
        meta.previous_producer_id = meta.producer_id
        # As Kafka's prepareFenceProducerEpoch: no last epoch, so the fenced instance's
        # InitProducerId with its old epoch is PRODUCER_FENCED, not a "retry of the bump"
        # answered with the epoch that fenced it. When the id rotates after the markers, the
        # exhausted epoch stays the last one the client saw (Kafka's prepareComplete): its
        # InitProducerId gets the new id at 0, and any later instance a higher epoch.
        rotating = meta.next_producer_id != NO_PRODUCER_ID
        meta.last_producer_epoch = meta.producer_epoch if rotating else NO_PRODUCER_EPOCH
        # An Ongoing epoch is at most EPOCH_MAX - 1 (_bump_epoch and _prepare_end_v2 rotate
        # the id there), so the fenced epoch fits; a classic (V1) producer's id is rotated by
        # the InitProducerId that follows.
        meta.producer_epoch += 1
        meta.state = next_state(meta.transactional_id, meta.state, TxnEvent.PREPARE_ABORT)
        meta.last_update_ms = now
        self._store(meta)
        return _work(meta, commit=False)

    # -- AddPartitionsToTxn / AddOffsetsToTxn ------------------------------------------------

    def check_producer(
        self, transactional_id: str, producer_id: int, producer_epoch: int
    ) -> ErrorCode:
        """The error of a request naming this id, producer id and epoch, NONE if it may go on."""
        meta = self._txns.get(transactional_id)
        if meta is None or meta.state is TxnState.DEAD or meta.producer_id != producer_id:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING
        if producer_epoch != meta.producer_epoch:
            return ErrorCode.PRODUCER_FENCED
        if meta.state in PREPARE_STATES:
            return ErrorCode.CONCURRENT_TRANSACTIONS
        return ErrorCode.NONE

    def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Iterable[TopicPartition],
        client_transaction_version: int = 0,
    ) -> ErrorCode:
        """Add partitions to the open transaction (opening one if none is).
        ``client_transaction_version`` is 2 for the implicit adds of transactions V2."""
        error = self.check_producer(transactional_id, producer_id, producer_epoch)
        if error is not ErrorCode.NONE:
            return error
        meta = self._txns[transactional_id]
        wanted = set(partitions)
        if meta.state is TxnState.ONGOING and wanted <= meta.partitions:
            return ErrorCode.NONE  # nothing new: a retry, no state change to log
        now = self._clock.now_ms()
        if meta.state is not TxnState.ONGOING:
            meta.partitions = set()
            meta.txn_start_ms = now
            meta.client_transaction_version = client_transaction_version
        meta.state = next_state(transactional_id, meta.state, TxnEvent.ADD)
        meta.previous_producer_id = meta.producer_id
        meta.partitions |= wanted
        meta.last_update_ms = now
        self._store(meta)
        return ErrorCode.NONE

    def verify_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Iterable[TopicPartition],
    ) -> dict[TopicPartition, ErrorCode]:
        """AddPartitionsToTxn v4+ with verify_only: is each partition in the open
        transaction? Changes nothing."""
        error = self.check_producer(transactional_id, producer_id, producer_epoch)
        meta = self._txns.get(transactional_id)
        out: dict[TopicPartition, ErrorCode] = {}
        for tp in partitions:
            if error is not ErrorCode.NONE:
                out[tp] = error
            elif meta is None or meta.state is not TxnState.ONGOING or tp not in meta.partitions:
                out[tp] = ErrorCode.INVALID_TXN_STATE
            else:
                out[tp] = ErrorCode.NONE
        return out

    def verify_produce(
        self, producer_id: int, producer_epoch: int, tp: TopicPartition
    ) -> ErrorCode:
        """May a transactional batch of this producer go to ``tp``? Kafka (KIP-890 part 1)
        asks the coordinator the same before appending: only partitions added to the open
        transaction, only by its current epoch."""
        meta = self.by_producer_id(producer_id)
        if meta is None:
            return ErrorCode.INVALID_TXN_STATE
        if producer_epoch < meta.producer_epoch:
            return ErrorCode.INVALID_PRODUCER_EPOCH
        if meta.state is not TxnState.ONGOING or tp not in meta.partitions:
            return ErrorCode.INVALID_TXN_STATE
        if producer_epoch != meta.producer_epoch:
            return ErrorCode.INVALID_PRODUCER_EPOCH
        return ErrorCode.NONE

    # -- EndTxn ------------------------------------------------------------------------------

    def end_txn(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        *,
        bump_epoch: bool = False,
    ) -> EndResult:
        """EndTxn. ``bump_epoch``: transactions V2 (EndTxn v5+), see :meth:`_end_txn_v2`."""
        if bump_epoch:
            return self._end_txn_v2(transactional_id, producer_id, producer_epoch, commit)
        meta = self._txns.get(transactional_id)
        if meta is None or meta.state is TxnState.DEAD or meta.producer_id != producer_id:
            return EndResult(ErrorCode.INVALID_PRODUCER_ID_MAPPING)
        if producer_epoch != meta.producer_epoch:
            return EndResult(ErrorCode.PRODUCER_FENCED)
        state = meta.state
        if state is TxnState.ONGOING:
            event = TxnEvent.PREPARE_COMMIT if commit else TxnEvent.PREPARE_ABORT
            meta.state = next_state(transactional_id, state, event)
            meta.previous_producer_id = meta.producer_id
            meta.last_update_ms = self._clock.now_ms()
            self._store(meta)
            return EndResult(ErrorCode.NONE, _work(meta, commit=commit))
        done = TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
        preparing = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
        if state is done:
            return EndResult(ErrorCode.NONE)  # a retry of an EndTxn that completed
        if state is preparing or state is TxnState.PREPARE_EPOCH_FENCE:
            return EndResult(ErrorCode.CONCURRENT_TRANSACTIONS)
        return EndResult(ErrorCode.INVALID_TXN_STATE)

    def _end_txn_v2(
        self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool
    ) -> EndResult:
        """EndTxn v5+ (KIP-890 part 2), as Kafka 4.4's coordinator rules it: every end bumps
        the epoch (the markers carry the new one, and the answer names it), so a client's
        retry is recognised by its epoch being one behind, and an abort is accepted with no
        transaction open. For Empty and Complete* (R: a retry, the epoch one behind, or the
        exhausted epoch of the id a rotation replaced; C: the current epoch)::

                          abort R   abort C   commit R   commit C
            Empty         FENCED    bump      FENCED     INVALID_TXN_STATE
            CompleteAbort NONE      bump      ITS        ITS
            CompleteCommit ITS      bump      NONE       ITS
        """
        meta = self._txns.get(transactional_id)
        if meta is None or meta.state is TxnState.DEAD:
            return EndResult(ErrorCode.INVALID_PRODUCER_ID_MAPPING)
        state = meta.state
        retry_on_overflow = (
            meta.previous_producer_id == producer_id
            and producer_epoch == EPOCH_MAX - 1
            and meta.producer_epoch == 0
        )
        retry_on_bump = (
            meta.producer_id == producer_id and meta.producer_epoch == producer_epoch + 1
        )
        if meta.producer_id != producer_id and not retry_on_overflow:
            return EndResult(ErrorCode.INVALID_PRODUCER_ID_MAPPING)
        if state in (TxnState.ONGOING, TxnState.EMPTY):
            valid = producer_epoch == meta.producer_epoch
        elif state in PREPARE_STATES:
            valid = retry_on_bump
        else:
            valid = retry_on_bump or retry_on_overflow or producer_epoch == meta.producer_epoch
        if not valid:
            return EndResult(ErrorCode.PRODUCER_FENCED)
        retry = retry_on_bump or retry_on_overflow
        if state is TxnState.ONGOING:
            return self._prepare_end_v2(meta, commit)
        if state in PREPARE_STATES:
            preparing = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
            if state is preparing:
                return EndResult(ErrorCode.CONCURRENT_TRANSACTIONS)
            return EndResult(ErrorCode.INVALID_TXN_STATE)
        done = TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
        if retry:
            if state is done and meta.producer_epoch >= EPOCH_MAX:
                # The end was a fence's, on the exhausted epoch of a transaction opened the
                # classic way: no epoch is left to hand out, InitProducerId rotates the id.
                return EndResult(ErrorCode.PRODUCER_FENCED)
            if state is done:
                return EndResult(ErrorCode.NONE, None, meta.producer_id, meta.producer_epoch)
            return EndResult(ErrorCode.INVALID_TXN_STATE)
        if not commit:
            return self._prepare_end_v2(meta, commit)
        return EndResult(ErrorCode.INVALID_TXN_STATE)

    def _prepare_end_v2(self, meta: TxnMetadata, commit: bool) -> EndResult:
        if meta.producer_epoch >= EPOCH_MAX:
            # No epoch left for the markers (a transaction opened the classic way and fenced
            # on the exhausted epoch): the producer must ask InitProducerId for a new id.
            return EndResult(ErrorCode.PRODUCER_FENCED)
        # Kafka takes the client's transaction version from the EndTxn request.
        meta.client_transaction_version = CLIENT_TRANSACTION_VERSION_2
        if meta.producer_epoch >= EPOCH_MAX - 1:
            # The markers take the last epoch (EPOCH_MAX); the producer continues with a new
            # id at epoch 0 once they are written (see complete()).
            meta.next_producer_id = self._allocate()
        work = self._prepare_end(meta, commit, bump_epoch=True)
        # The answer is decided now, as Kafka's (the prepared metadata), never read back after
        # the markers: by then another instance's InitProducerId may have bumped the epoch,
        # and this (old) instance must not be handed the new one's epoch.
        if meta.next_producer_id != NO_PRODUCER_ID:
            return EndResult(ErrorCode.NONE, work, meta.next_producer_id, 0)
        return EndResult(ErrorCode.NONE, work, meta.producer_id, meta.producer_epoch)

    def complete(self, work: MarkerWork) -> None:
        """Every marker of ``work`` is written and durable: the transaction is complete."""
        meta = self._txns.get(work.transactional_id)
        if meta is None or meta.producer_id != work.producer_id:
            return
        wanted = TxnState.PREPARE_COMMIT if work.commit else TxnState.PREPARE_ABORT
        if meta.state is not wanted:
            return  # completed already (a second writer of the same markers)
        meta.state = next_state(meta.transactional_id, meta.state, TxnEvent.MARKERS_WRITTEN)
        meta.partitions = set()
        meta.last_update_ms = self._clock.now_ms()
        meta.previous_producer_id = meta.producer_id  # the rotation below names the old id too
        if meta.next_producer_id != NO_PRODUCER_ID:
            # A V2 transaction ended on the exhausted epoch: its markers carried EPOCH_MAX,
            # and the producer goes on with the id allocated for it, at epoch 0.
            self._by_producer_id.pop(meta.producer_id, None)
            meta.previous_producer_id = meta.producer_id
            meta.producer_id = meta.next_producer_id
            meta.next_producer_id = NO_PRODUCER_ID
            meta.producer_epoch = 0
        self._store(meta)

    # -- timers ------------------------------------------------------------------------------

    def abort_timed_out(self) -> list[MarkerWork]:
        """Fence and abort every transaction open longer than its timeout (Kafka's
        abortTimedOutTransactions): the producer's next request finds itself fenced."""
        now = self._clock.now_ms()
        return [
            self._fence(meta, now)
            for meta in list(self._txns.values())
            if meta.state is TxnState.ONGOING and now - meta.txn_start_ms > meta.timeout_ms
        ]

    def expire(self) -> list[str]:
        """Forget ids idle for transactional.id.expiration.ms with no transaction open."""
        now = self._clock.now_ms()
        doomed = [
            meta
            for meta in self._txns.values()
            if meta.state not in OPEN_STATES and now - meta.last_update_ms >= self.expiration_ms
        ]
        for meta in doomed:
            meta.state = next_state(meta.transactional_id, meta.state, TxnEvent.EXPIRE)
            meta.last_update_ms = now
            self._changed[meta.transactional_id] = meta
            del self._txns[meta.transactional_id]
            if self._by_producer_id.get(meta.producer_id) == meta.transactional_id:
                del self._by_producer_id[meta.producer_id]
        return [meta.transactional_id for meta in doomed]

    def next_deadline_ms(self) -> int | None:
        """The wall-clock time of the next timeout, None when no transaction is open."""
        deadlines = [_deadline_ms(meta) for meta in self._txns.values()]
        return min((d for d in deadlines if d is not None), default=None)

    def deadline_ms(self, transactional_id: str) -> int | None:
        """When the id's open transaction times out, None when it has none open. An add to
        a transaction already open leaves it as it was (the timeout runs from the start)."""
        meta = self._txns.get(transactional_id)
        return None if meta is None else _deadline_ms(meta)

    # -- replay --------------------------------------------------------------------------

    def restore(self, meta: TxnMetadata) -> None:
        """Put back metadata read from the durable log (the last record of each id wins)."""
        old = self._txns.pop(meta.transactional_id, None)
        if old is not None and self._by_producer_id.get(old.producer_id) == old.transactional_id:
            del self._by_producer_id[old.producer_id]
        if meta.state is TxnState.DEAD:
            return
        self._txns[meta.transactional_id] = meta
        self._by_producer_id[meta.producer_id] = meta.transactional_id

    def _prepare_end(self, meta: TxnMetadata, commit: bool, *, bump_epoch: bool) -> MarkerWork:
        """Move ``meta`` to PrepareCommit or PrepareAbort (bumping the epoch first, for
        transactions V2) and hand back the markers to write."""
        event = TxnEvent.PREPARE_COMMIT if commit else TxnEvent.PREPARE_ABORT
        was_open = meta.state is TxnState.ONGOING
        meta.state = next_state(meta.transactional_id, meta.state, event)
        meta.previous_producer_id = meta.producer_id
        now = self._clock.now_ms()
        if bump_epoch:
            meta.last_producer_epoch = meta.producer_epoch
            meta.producer_epoch += 1
        if not was_open:
            # An abort with no partition added (V2): Kafka takes the update time as the start.
            meta.txn_start_ms = now
        meta.last_update_ms = now
        self._store(meta)
        return _work(meta, commit=commit)

    def _store(self, meta: TxnMetadata) -> None:
        self._txns[meta.transactional_id] = meta
        self._by_producer_id[meta.producer_id] = meta.transactional_id
        self._changed[meta.transactional_id] = meta


def _deadline_ms(meta: TxnMetadata) -> int | None:
    if meta.state is not TxnState.ONGOING:
        return None
    return meta.txn_start_ms + meta.timeout_ms + 1  # the timeout is exclusive


def _work(meta: TxnMetadata, *, commit: bool) -> MarkerWork:
    return MarkerWork(
        meta.transactional_id,
        meta.producer_id,
        meta.producer_epoch,
        commit,
        tuple(sorted(meta.partitions)),
    )
