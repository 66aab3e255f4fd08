"""Which offsets may be committed: only contiguous runs of completed records, per partition.

A record that finished out of order (another key's record in the same partition) is held back
until every earlier one has finished, so a crash never skips an unfinished record.
"""

from __future__ import annotations

from shoal.app.transport import TopicPartition
from shoal.invariant import invariant


class OffsetTracker:
    def __init__(self) -> None:
        self._next: dict[TopicPartition, int] = {}  # first offset not yet known completed
        self._done: dict[TopicPartition, set[int]] = {}
        self._dirty: set[TopicPartition] = set()

    def track(self, tp: TopicPartition, offset: int) -> None:
        """Note a fetched record; the first one of a partition sets where contiguity starts."""
        self._next.setdefault(tp, offset)
        self._done.setdefault(tp, set())

    def complete(self, tp: TopicPartition, offset: int) -> None:
        invariant(tp in self._next, "completing a record that was never tracked")
        done = self._done[tp]
        done.add(offset)
        nxt = self._next[tp]
        while nxt in done:
            done.remove(nxt)
            nxt += 1
        if nxt != self._next[tp]:
            self._next[tp] = nxt
            self._dirty.add(tp)

    def committable(self) -> dict[TopicPartition, int]:
        """Next-offsets that advanced since the last call."""
        ready = {tp: self._next[tp] for tp in self._dirty}
        self._dirty.clear()
        return ready
