"""Which offsets may be committed: only contiguous runs of completed records, per partition.

A record that finished out of order (another key's record in the same partition) is held back
until every earlier one has finished, so a crash never skips an unfinished record.
"""

from __future__ import annotations

from collections.abc import Iterable

from shoal.app.message import Message
from shoal.app.transport import TopicPartition
from shoal.invariant import invariant


class OffsetTracker:
    """Per partition, the offsets fetched and not yet completed, in fetch (= offset) order.

    The committable next-offset is the first of them still unfinished, or one past the last
    fetched when all are done. Offsets are not assumed contiguous: transaction markers and
    compaction leave gaps a consumer never sees, and a commit must pass over them.
    """

    def __init__(self) -> None:
        self._pending: dict[TopicPartition, dict[int, None]] = {}  # an ordered set each
        self._last: dict[TopicPartition, int] = {}  # the last offset fetched
        self._next: dict[TopicPartition, int] = {}
        self._dirty: set[TopicPartition] = set()

    def track(self, tp: TopicPartition, offset: int) -> None:
        """Note a fetched record (in the order the partition's records were fetched)."""
        last = self._last.get(tp)
        pending = self._pending.setdefault(tp, {})
        if last is not None and offset <= last:
            # Read again from an earlier offset: the partition went to another member and
            # came back, or the consumer was sent back. What was pending of it is not this
            # reading's to commit: contiguity starts again here.
            pending.clear()
        pending[offset] = None
        self._last[tp] = offset

    def track_all(self, records: Iterable[Message]) -> None:
        """:meth:`track` for each record of a fetch (one call per fetch, not per record)."""
        track = self.track
        for msg in records:
            track((msg.topic, msg.partition), msg.offset)

    def complete(self, tp: TopicPartition, offset: int) -> None:
        pending = self._pending.get(tp)
        if pending is None:
            invariant(False, "completing a record that was never tracked")
            return
        if offset not in pending:
            return  # of a reading that was started again since (see track)
        first = next(iter(pending))
        del pending[offset]
        if offset != first:
            return  # out of order: held back until the ones before it complete
        # Everything fetched before the first unfinished record is done (or never existed).
        self._next[tp] = next(iter(pending)) if pending else self._last[tp] + 1
        self._dirty.add(tp)

    def committable(self) -> dict[TopicPartition, int]:
        """Next-offsets that advanced since the last call."""
        ready = {tp: self._next[tp] for tp in self._dirty}
        self._dirty.clear()
        return ready
