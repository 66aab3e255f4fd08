"""Transactions as one partition sees them: which are open, where each began, and which were
aborted (the ranges read_committed consumers must skip).

- An open transaction of a producer starts at its first transactional batch on the partition
  and ends at the COMMIT or ABORT marker the coordinator writes there.
- The last stable offset (LSO) is the first offset of the oldest open transaction, or the high
  watermark when none is open: read_committed consumers read no further, and ListOffsets
  (latest, read_committed) answers it.
- Every aborted transaction is kept as ``(producer id, first offset, marker offset)`` (Kafka's
  ``AbortedTxn`` in its per-segment ``.txnindex``) until retention moves the log start past its
  marker. Fetch returns those overlapping the fetched range, and the consumer drops that
  producer's batches from ``first offset`` until it meets the ABORT marker.

Pure: the producer-state code (:mod:`shoal.coordinator.producers`) feeds it every appended or
replayed batch, and saves it with the producer snapshot.

This is also the hook the log cleaner uses (compaction slice): :meth:`PartitionTxns.is_aborted`
says whether a producer's batch at an offset belongs to an aborted transaction, and
:meth:`PartitionTxns.aborted_overlapping` lists the aborted ranges of a span of the log; a
marker batch is recognised by :func:`shoal.records.control.transaction_marker`.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Final

from shoal.invariant import invariant

ABORTED_MAX: Final = 1_000_000
"""Aborted transactions remembered per partition (24 bytes each in a snapshot, so 24 MB at
most). Past it the oldest are forgotten, and a read_committed consumer reading that far back
could see their records; Kafka bounds the same index only by retention. A million aborts
within one partition's retention is far beyond what any workload we know of does."""


@dataclass(frozen=True, slots=True)
class AbortedTxn:
    producer_id: int
    first_offset: int
    last_offset: int
    """The offset of the ABORT marker."""


class PartitionTxns:
    def __init__(self) -> None:
        self.ongoing: dict[int, int] = {}
        """Producer id -> first offset of its open transaction, oldest first."""
        self.aborted: list[AbortedTxn] = []
        """By marker offset (the order they were appended in)."""

    def on_transactional_batch(self, producer_id: int, base_offset: int) -> None:
        self.ongoing.setdefault(producer_id, base_offset)

    def on_marker(self, producer_id: int, commit: bool, marker_offset: int) -> AbortedTxn | None:
        """A COMMIT or ABORT marker of ``producer_id`` was appended at ``marker_offset``.

        A marker with no open transaction (a second write of the same markers after a
        restart, or a partition that got no data) ends nothing and records nothing.
        """
        first = self.ongoing.pop(producer_id, None)
        if first is None or commit:
            return None
        invariant(first <= marker_offset, "a transaction ends after it begins")
        aborted = AbortedTxn(producer_id, first, marker_offset)
        self.aborted.append(aborted)
        if len(self.aborted) > ABORTED_MAX:
            del self.aborted[0]
        return aborted

    def first_unstable_offset(self) -> int | None:
        """The first offset of the oldest open transaction, or None."""
        return min(self.ongoing.values(), default=None)

    def last_stable_offset(self, high_watermark: int, log_start_offset: int) -> int:
        """The first offset of the oldest open transaction, never below the log start (as
        Kafka's UnifiedLog clamps it: DeleteRecords, or a snapshot of ``__consumer_offsets``,
        may delete the start of a transaction still open) nor past ``high_watermark``."""
        first = self.first_unstable_offset()
        if first is None:
            return high_watermark
        return min(max(first, log_start_offset), high_watermark)

    def aborted_overlapping(self, start: int, end: int) -> list[AbortedTxn]:
        """Aborted transactions with records in ``[start, end)``: those whose marker is at or
        after ``start`` and whose first offset is before ``end``."""
        keys = [a.last_offset for a in self.aborted]
        i = bisect_left(keys, start)
        return [a for a in self.aborted[i:] if a.first_offset < end]

    def is_aborted(self, producer_id: int, offset: int) -> bool:
        """Whether the producer's batch at ``offset`` is part of an aborted transaction."""
        return any(
            a.producer_id == producer_id and a.first_offset <= offset < a.last_offset
            for a in self.aborted_overlapping(offset, offset + 1)
        )

    def trim(self, log_start_offset: int) -> None:
        """Forget aborted transactions whose marker retention has deleted."""
        keys = [a.last_offset for a in self.aborted]
        i = bisect_left(keys, log_start_offset)
        if i:
            del self.aborted[:i]
