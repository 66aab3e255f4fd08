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
    def __init__(self) -> None:
        self._next: dict[TopicPartition, int] = {}  # first offset not yet known completed
        self._done: dict[TopicPartition, set[int]] = {}
        self._dirty: set[TopicPartition] = set()

    def track(self, tp: TopicPartition, offset: int) -> None:
        """Note a fetched record; the first one of a partition sets where contiguity starts."""
        if tp not in self._next:
            self._next[tp] = offset
            self._done[tp] = set()

    def track_all(self, records: Iterable[Message]) -> None:
        """:meth:`track` for each record of a fetch (one call per fetch, not per record)."""
        nxt, done = self._next, self._done
        for msg in records:
            tp = (msg.topic, msg.partition)
            if tp not in nxt:
                nxt[tp] = msg.offset
                done[tp] = set()

    def complete(self, tp: TopicPartition, offset: int) -> None:
        nxt = self._next.get(tp)
        if nxt is None:
            invariant(False, "completing a record that was never tracked")
            return
        done = self._done[tp]
        if offset != nxt:
            done.add(offset)  # out of order: held back until the ones before it complete
            return
        # The common case, in order: the run grows by one, plus whatever finished ahead of it.
        nxt += 1
        while nxt in done:
            done.remove(nxt)
            nxt += 1
        self._next[tp] = nxt
        self._dirty.add(tp)

    def committable(self) -> dict[TopicPartition, int]:
        """Next-offsets that advanced since the last call."""
        ready = {tp: self._next[tp] for tp in self._dirty}
        self._dirty.clear()
        return ready
