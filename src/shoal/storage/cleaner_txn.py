"""Where the log cleaner will apply Kafka's rules for transactions: the hook, not the rules.

Kafka's cleaner (``LogCleaner.CleanedTransactionMetadata``) treats transactional data apart:

* records of an *aborted* transaction are never put in the offset map and are removed when
  their segment is cleaned (read_committed readers never see them anyway);
* a *transaction marker* (control batch) stays while any record of its transaction remains in
  the log; once none does it gets a delete horizon like a tombstone and goes after
  ``delete.retention.ms``;
* nothing at or past the *last stable offset* (the first offset of a still-open transaction) is
  cleaned.

shoal's transaction coordinator is built separately (issue 14). Until it plugs in here, the
cleaner uses :class:`NoTransactionCleaning`: no batch counts as aborted, every marker is kept,
and the log's end bounds the cleanable range. The cleaner calls exactly these methods at exactly
the points where Kafka applies the rules above, so the transaction work replaces the class and
touches nothing else.
"""

from __future__ import annotations

from typing import Protocol

from shoal.records.header import BatchHeader


class TransactionCleaning(Protocol):
    """What the cleaner asks about transactions while it maps and cleans one log."""

    def last_stable_offset(self, log_end_offset: int) -> int:
        """The first offset the cleaner must not clean past (an open transaction's first)."""
        ...

    def on_batch(self, header: BatchHeader) -> None:
        """Called for every batch, in offset order, as a pass (mapping or cleaning) reads it:
        lets the implementation follow which transactions are open, committed or aborted."""
        ...

    def is_aborted(self, header: BatchHeader) -> bool:
        """Whether this (transactional, non-control) batch belongs to an aborted transaction:
        its records are left out of the map and removed by the clean."""
        ...

    def can_discard_marker(self, header: BatchHeader) -> bool:
        """Whether this control batch's transaction has no record left, so the marker may get
        a delete horizon and later be removed."""
        ...


class NoTransactionCleaning:
    """The rules while shoal has no transactions: nothing aborted, every marker kept."""

    def last_stable_offset(self, log_end_offset: int) -> int:
        return log_end_offset

    def on_batch(self, header: BatchHeader) -> None:
        del header

    def is_aborted(self, header: BatchHeader) -> bool:
        del header
        return False

    def can_discard_marker(self, header: BatchHeader) -> bool:
        del header
        return False
