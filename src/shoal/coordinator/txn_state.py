"""The states of a transactional id and the one table of transitions between them.

::

    Empty ──add──▶ Ongoing ──EndTxn(commit)──▶ PrepareCommit ──markers──▶ CompleteCommit
      ▲              │ │                                                       │
      │              │ └──EndTxn(abort)──▶ PrepareAbort ──markers──▶ CompleteAbort
      │              │                          ▲                         │    │
      │              └─InitProducerId/timeout─▶ PrepareEpochFence          │    │
      │                                        (bump epoch, then abort)    │    │
      └──────────────────── InitProducerId ◀───────────────────────────────┴────┘

    Complete* ──add──▶ Ongoing (the next transaction of the same producer)
    Empty/Complete* ──EndTxn v5 (abort)──▶ PrepareAbort (transactions V2: nothing to abort but
    the epoch, which is bumped)
    Dead: an id idle for transactional.id.expiration.ms (from Empty, CompleteCommit,
    CompleteAbort); its metadata is then forgotten.

The names are Kafka's (``TransactionState``), as DescribeTransactions and ListTransactions
report them. Which state follows which is decided by :data:`TRANSITIONS`, keyed by the state
and the event; an event a state does not accept is a bug in the caller (the coordinator checks
the request against the state first and answers an error code instead).
"""

from __future__ import annotations

from enum import Enum
from typing import Final


class TxnState(Enum):
    EMPTY = "Empty"
    ONGOING = "Ongoing"
    PREPARE_COMMIT = "PrepareCommit"
    PREPARE_ABORT = "PrepareAbort"
    COMPLETE_COMMIT = "CompleteCommit"
    COMPLETE_ABORT = "CompleteAbort"
    PREPARE_EPOCH_FENCE = "PrepareEpochFence"
    DEAD = "Dead"


class TxnEvent(Enum):
    INIT = "init producer id"
    """InitProducerId on an id with no open transaction: a new epoch, nothing in flight."""
    ADD = "add partitions or offsets"
    PREPARE_COMMIT = "end transaction: commit"
    PREPARE_ABORT = "end transaction: abort"
    FENCE = "fence the producer's epoch"
    """InitProducerId or a timeout met an open transaction: bump the epoch, then abort it."""
    MARKERS_WRITTEN = "markers written"
    EXPIRE = "transactional id expired"


_S = TxnState
_E = TxnEvent
TRANSITIONS: Final[dict[tuple[TxnState, TxnEvent], TxnState]] = {
    (_S.EMPTY, _E.INIT): _S.EMPTY,
    (_S.COMPLETE_COMMIT, _E.INIT): _S.EMPTY,
    (_S.COMPLETE_ABORT, _E.INIT): _S.EMPTY,
    (_S.EMPTY, _E.ADD): _S.ONGOING,
    (_S.ONGOING, _E.ADD): _S.ONGOING,
    (_S.COMPLETE_COMMIT, _E.ADD): _S.ONGOING,
    (_S.COMPLETE_ABORT, _E.ADD): _S.ONGOING,
    (_S.ONGOING, _E.PREPARE_COMMIT): _S.PREPARE_COMMIT,
    (_S.ONGOING, _E.PREPARE_ABORT): _S.PREPARE_ABORT,
    (_S.PREPARE_EPOCH_FENCE, _E.PREPARE_ABORT): _S.PREPARE_ABORT,
    # Transactions V2 (KIP-890 part 2): EndTxn v5 may abort with no transaction open, to bump
    # the epoch past batches the producer sent but never saw added (the abort has no partitions).
    (_S.EMPTY, _E.PREPARE_ABORT): _S.PREPARE_ABORT,
    (_S.COMPLETE_COMMIT, _E.PREPARE_ABORT): _S.PREPARE_ABORT,
    (_S.COMPLETE_ABORT, _E.PREPARE_ABORT): _S.PREPARE_ABORT,
    (_S.ONGOING, _E.FENCE): _S.PREPARE_EPOCH_FENCE,
    (_S.PREPARE_COMMIT, _E.MARKERS_WRITTEN): _S.COMPLETE_COMMIT,
    (_S.PREPARE_ABORT, _E.MARKERS_WRITTEN): _S.COMPLETE_ABORT,
    (_S.EMPTY, _E.EXPIRE): _S.DEAD,
    (_S.COMPLETE_COMMIT, _E.EXPIRE): _S.DEAD,
    (_S.COMPLETE_ABORT, _E.EXPIRE): _S.DEAD,
}
"""(state, event) -> the next state. A pair not in the table is a programmer error."""

OPEN_STATES: Final = frozenset(
    {_S.ONGOING, _S.PREPARE_COMMIT, _S.PREPARE_ABORT, _S.PREPARE_EPOCH_FENCE}
)
"""States in which the transaction's partitions may still hold unresolved records."""
PREPARE_STATES: Final = frozenset({_S.PREPARE_COMMIT, _S.PREPARE_ABORT, _S.PREPARE_EPOCH_FENCE})
"""States waiting for markers: requests that would change the transaction get
CONCURRENT_TRANSACTIONS (retriable) until the markers are written."""


class IllegalTxnTransitionError(RuntimeError):
    """An event :data:`TRANSITIONS` does not allow in the current state: a programmer error."""


def next_state(transactional_id: str, current: TxnState, event: TxnEvent) -> TxnState:
    """The state after ``event``, looked up in the table."""
    target = TRANSITIONS.get((current, event))
    if target is None:
        raise IllegalTxnTransitionError(
            f"transactional id {transactional_id!r}: {event.value} is not allowed in state "
            f"{current.value}"
        )
    return target


def parse_txn_state(name: str) -> TxnState | None:
    """The state Kafka names ``name`` (ListTransactions state filters), or None."""
    for state in TxnState:
        if state.value == name:
            return state
    return None
