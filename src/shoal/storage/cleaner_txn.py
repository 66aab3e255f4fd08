"""What the log cleaner knows about transactions, read from the log it cleans.

Kafka's cleaner (``LogCleaner.CleanedTransactionMetadata`` and ``firstUncleanableOffset``)
treats transactional data apart, and so does shoal's:

* nothing at or past the *last stable offset* (the first offset of a still-open transaction) is
  cleaned: an open transaction's records are not yet the latest value of their key (if it
  aborts, the committed value before it must still be there);
* records of an *aborted* transaction are never put in the offset map and are removed when
  their segment is cleaned (read_committed readers never see them anyway);
* a *transaction marker* (control batch) stays while any batch of its transaction remains in
  the log; once none does it gets a delete horizon like a tombstone and goes after
  ``delete.retention.ms``.

Where the facts come from: storage knows no coordinator (import-linter), so the cleaner derives
them from the log itself, as Kafka's cleaner does from the log's own aborted-transaction index
and markers. A walk of the batch headers (record bytes are read only for control batches, to
tell COMMIT from ABORT) finds each producer's transactions: a transaction begins at the
producer's first transactional batch and ends at its next marker. This is chosen over asking the
coordinator's per-partition ``PartitionTxns`` because the cleaner runs on its own thread while
that state changes on the event loop, because it is loaded lazily and forgets its oldest aborted
ranges past a bound, and because the log is the truth the clean rewrites: what the walk sees is
exactly what the clean will find, whoever started it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from shoal.records.control import transaction_marker
from shoal.records.errors import RecordsError
from shoal.records.header import BatchHeader
from shoal.storage.errors import StorageError
from shoal.storage.log import PartitionLog


class TransactionCleaning(Protocol):
    """What the cleaner asks about transactions while it maps and cleans one log."""

    def is_aborted(self, header: BatchHeader) -> bool:
        """Whether this (transactional, non-control) batch belongs to an aborted transaction:
        its records are left out of the map and removed by the clean."""
        ...

    def can_discard_marker(self, header: BatchHeader) -> bool:
        """Whether this control batch's transaction has no batch left, so the marker may get
        a delete horizon and later be removed."""
        ...


class NoTransactionCleaning:
    """Nothing aborted, every marker kept: for a log known to hold no transactions."""

    def is_aborted(self, header: BatchHeader) -> bool:
        del header
        return False

    def can_discard_marker(self, header: BatchHeader) -> bool:
        del header
        return False


def _note_open(open_first: dict[int, int], header: BatchHeader) -> None:
    if not (header.is_transactional and header.has_producer_id):
        return
    if header.is_control:
        open_first.pop(header.producer_id, None)
    else:
        open_first.setdefault(header.producer_id, header.base_offset)


class OpenTransactionScan:
    """The first offset of the oldest transaction still open in a log, from a start offset,
    kept up to date by walking only the batches appended since the last call.

    Only batch headers are needed: any marker of a producer ends its open transaction, whether
    it commits or aborts. The start may be anywhere at or before the oldest open transaction's
    first batch (the cleaner starts at its first dirty offset: nothing before it was cleaned
    past a then-open transaction, and a transaction cannot begin in the past).

    The cleaner asks at every look (every ``log.cleaner.backoff.ms`` while nothing is due); a
    walk of the whole dirty part each time cost the broker's process a pass over every batch
    header of a large log, again and again. Appends only add batches at the end, and the log
    below the end changes only by a clean (which moves the start: the first dirty offset) or
    by the log start moving (which moves it too), so the fold can continue where it stopped.
    """

    __slots__ = ("_next", "_open_first", "_start")

    def __init__(self) -> None:
        self._start = -1
        self._next = -1
        self._open_first: dict[int, int] = {}

    def first_unstable_offset(
        self, headers_from: Callable[[int], Iterable[BatchHeader]], start: int
    ) -> int | None:
        """The first offset of the oldest transaction open in ``headers_from(start)``. A clean
        cut short does not disturb it: it rewrites nothing at or past that offset, and below
        it every transaction is closed whatever the clean removed."""
        if start != self._start:
            self._start = self._next = start
            self._open_first = {}
        for header in headers_from(self._next):
            _note_open(self._open_first, header)
            self._next = header.last_offset + 1
        return min(self._open_first.values(), default=None)


@dataclass
class _Open:
    first_offset: int
    batches: int = 0


@dataclass
class LogTransactions:
    """The transactions of one log as one walk found them (see the module doc)."""

    aborted: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    """Producer id -> its aborted transactions ``(first offset, marker offset)``, in order."""
    empty_markers: set[int] = field(default_factory=set)
    """Base offsets of the markers whose transaction has no batch left in the log."""
    open_first: dict[int, int] = field(default_factory=dict)
    """Producer id -> first offset of its transaction still open at the walk's end."""

    def is_aborted(self, header: BatchHeader) -> bool:
        if not (header.is_transactional and header.has_producer_id) or header.is_control:
            return False
        ranges = self.aborted.get(header.producer_id)
        if not ranges:
            return False
        i = bisect_right(ranges, (header.base_offset, 2**63)) - 1
        return i >= 0 and ranges[i][0] <= header.base_offset < ranges[i][1]

    def can_discard_marker(self, header: BatchHeader) -> bool:
        return header.is_control and header.base_offset in self.empty_markers

    def first_unstable_offset(self) -> int | None:
        return min(self.open_first.values(), default=None)


def read_log_transactions(
    plog: PartitionLog,
    start: int,
    *,
    each: Callable[[BatchHeader], None] | None = None,
) -> LogTransactions:
    """Walk ``plog`` from ``start`` (the log start, for a clean) to its end as of now.

    ``each`` is called with every header of the walk too: what else needs a pass over the
    whole log's headers (the cleaner's producers) folds in this one, not in a second walk.

    Raises :class:`StorageError` for a damaged marker (the partition is left uncleaned).
    """
    found = LogTransactions()
    open_txns: dict[int, _Open] = {}
    for header in plog.headers_from(start):
        if each is not None:
            each(header)
        if not (header.is_transactional and header.has_producer_id):
            continue
        pid = header.producer_id
        if not header.is_control:
            open_txns.setdefault(pid, _Open(header.base_offset)).batches += 1
            continue
        txn = open_txns.pop(pid, None)
        if txn is None or txn.batches == 0:
            found.empty_markers.add(header.base_offset)
        if txn is not None and not _commits(plog, header):
            found.aborted.setdefault(pid, []).append((txn.first_offset, header.base_offset))
    found.open_first = {pid: txn.first_offset for pid, txn in open_txns.items()}
    return found


def _commits(plog: PartitionLog, header: BatchHeader) -> bool:
    """Whether the marker batch at ``header`` commits; a control batch that is not a
    transaction marker is read as the end of nothing aborted."""
    result = plog.read(header.base_offset, header.size, max_offset=header.last_offset + 1)
    batch = bytes(result.data[: header.size])
    try:
        marker = transaction_marker(batch)
    except RecordsError as exc:
        raise StorageError(
            f"{plog.name}: damaged transaction marker at offset {header.base_offset}: {exc}"
        ) from exc
    return marker is None or marker.commit
