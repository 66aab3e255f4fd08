"""State stores of a stream processor: a table (latest value per key) and a windowed table
(the open windows of a :class:`WindowedAggregator` per key). Each lives in a dict and is backed
by a compacted changelog topic: every change is written there, and the state of a source
partition is rebuilt from it when the processor starts or is handed that partition.

Exactness without transactions. Each changelog record of a key carries the *next source
offset* its state reflects (``o``): every record of the key's source partition below ``o`` is
in it. After a crash the processor re-reads its source from the last committed offset; a
record below its key's ``o`` is already counted and is skipped, so nothing counts twice, and
nothing is lost because offsets are committed only after the changelog has the state. A
windowed table also writes, per partition and after its keys, the newest event time seen (its
watermark, with its own ``o``), so a replay decides lateness exactly as the first run did.

On restore the record with the highest ``o`` of a key wins, not the last written: an instance
that lost its partition in a rebalance and still writes (a zombie) cannot roll the new owner's
state back, since for the same ``o`` both computed the same state from the same records.

A key whose state emptied keeps a record (``null`` state with its ``o``) rather than a Kafka
tombstone: its ``o`` is what tells a replay that the records before it were counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from shoal.app.message import Headers, Message
from shoal.app.streams.aggregate import Aggregation, Step, WindowedAggregator
from shoal.app.streams.windows import Hopping, Session, Window

V = TypeVar("V")
A = TypeVar("A")

PARTITION_HEADER = "shoal.table.partition"
"""The source partition whose state a changelog record holds (restore filters on it)."""
WATERMARK_KEY_PREFIX = "__shoal.watermark__/"
"""Changelog key of a windowed table's per-partition watermark record."""


@dataclass(frozen=True, slots=True)
class ChangelogRecord:
    key: bytes
    value: bytes
    headers: Headers


class Store(Protocol):
    """What the processor needs of a state store."""

    @property
    def source(self) -> str:
        """The topic whose records change this store (offsets ``o`` refer to it)."""
        ...

    @property
    def changelog(self) -> str: ...

    def take_changes(self) -> tuple[list[ChangelogRecord], list[ChangelogRecord]]:
        """Records for every change since the last call: (key records, then records that may
        only be written once the key records are durable)."""
        ...

    def restore(self, records: list[Message], partitions: set[int]) -> None:
        """Rebuild the state of ``partitions`` from the changelog's records."""
        ...

    def forget(self, partitions: set[int]) -> None:
        """Drop the state of ``partitions`` (another instance owns them now)."""
        ...


def _record(key: str, partition: int, body: dict[str, Any]) -> ChangelogRecord:
    return ChangelogRecord(
        key.encode(),
        json.dumps(body, separators=(",", ":")).encode(),
        [(PARTITION_HEADER, str(partition).encode())],
    )


def _latest(records: list[Message], partitions: set[int]) -> dict[str, tuple[int, Any]]:
    """Per changelog key of ``partitions``: (partition, body) of its record with the highest
    ``o`` (the later one on a tie)."""
    best: dict[str, tuple[int, Any]] = {}
    for msg in records:
        raw_partition = msg.header(PARTITION_HEADER)
        if raw_partition is None or msg.key is None or not msg.value:
            continue  # not written by a store
        partition = int(raw_partition)
        if partition not in partitions:
            continue
        key = msg.key.decode()
        body = json.loads(msg.value)
        seen = best.get(key)
        if seen is None or body["o"] >= seen[1]["o"]:
            best[key] = (partition, body)
    return best


class _Source:
    """Checks that a store is only changed by records of its source topic."""

    def __init__(self, source: str) -> None:
        self._source = source

    @property
    def source(self) -> str:
        return self._source

    def _check(self, msg: Message, key: str, partition_of: dict[str, int]) -> None:
        if msg.topic != self._source:
            raise ValueError(
                f"a record of {msg.topic!r} cannot change a store fed by {self._source!r}: "
                "a store's offsets belong to one source topic"
            )
        known = partition_of.get(key)
        if known is not None and known != msg.partition:
            raise ValueError(
                f"key {key!r} came from partition {msg.partition} of {self._source!r} but the "
                f"store has it from partition {known}: a store needs its source keyed by the "
                "store's key (each key in one partition)"
            )


class Table(_Source):
    """The latest JSON-able value per key, fed by one source topic.

    quotes = Table("latest-quotes", source="quotes", changelog="quotes.latest")
    quotes.put(msg, symbol, {"bid": ..., "ask": ...})   # in the processor's handler
    quotes.get(symbol)
    """

    def __init__(self, name: str, *, source: str, changelog: str | None = None) -> None:
        super().__init__(source)
        self.name = name
        self._changelog = changelog or f"{name}-changelog"
        self._values: dict[str, Any] = {}
        self._next_offset: dict[str, int] = {}
        self._partition: dict[str, int] = {}
        self._dirty: set[str] = set()

    @property
    def changelog(self) -> str:
        return self._changelog

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(list(self._values.items()))

    def put(self, msg: Message, key: str, value: Any) -> bool:
        """Set ``key`` to ``value`` because of ``msg``; False (and no change) when ``msg`` is a
        replayed record whose effect the table already has. ``None`` deletes the key."""
        self._check(msg, key, self._partition)
        if msg.offset < self._next_offset.get(key, 0):
            return False
        if value is None:
            self._values.pop(key, None)
        else:
            self._values[key] = value
        self._next_offset[key] = msg.offset + 1
        self._partition[key] = msg.partition
        self._dirty.add(key)
        return True

    def state_of(self, partition: int) -> dict[str, tuple[Any, int]]:
        """Per key of source ``partition``: its value (None once deleted) and the next source
        offset that value reflects. Two instances with the same of a partition agree on it."""
        return {
            k: (self._values.get(k), self._next_offset[k])
            for k, p in self._partition.items()
            if p == partition
        }

    def take_changes(self) -> tuple[list[ChangelogRecord], list[ChangelogRecord]]:
        dirty, self._dirty = self._dirty, set()
        records = [
            _record(k, self._partition[k], {"o": self._next_offset[k], "v": self._values.get(k)})
            for k in sorted(dirty)
        ]
        return records, []

    def restore(self, records: list[Message], partitions: set[int]) -> None:
        self.forget(partitions)
        for key, (partition, body) in _latest(records, partitions).items():
            self._next_offset[key] = int(body["o"])
            self._partition[key] = partition
            if body["v"] is not None:
                self._values[key] = body["v"]

    def forget(self, partitions: set[int]) -> None:
        for key in [k for k, p in self._partition.items() if p in partitions]:
            self._values.pop(key, None)
            self._next_offset.pop(key, None)
            self._partition.pop(key, None)
            self._dirty.discard(key)


class WindowedTable(_Source, Generic[V, A]):
    """Windowed aggregates per key, fed by one source topic: one
    :class:`WindowedAggregator` per source partition (event time, and so the watermark,
    advances per partition, as in Kafka Streams)."""

    def __init__(
        self,
        name: str,
        *,
        source: str,
        windows: Hopping | Session,
        aggregation: Aggregation[V, A],
        allowed_lateness_ms: int = 0,
        changelog: str | None = None,
    ) -> None:
        super().__init__(source)
        self.name = name
        self.windows = windows
        self.aggregation = aggregation
        self.allowed_lateness_ms = allowed_lateness_ms
        self._changelog = changelog or f"{name}-changelog"
        self._aggregators: dict[int, WindowedAggregator[V, A]] = {}
        self._next_offset: dict[str, int] = {}
        self._partition: dict[str, int] = {}
        self._watermark_next: dict[int, int] = {}
        self._dirty: set[str] = set()
        self._dirty_partitions: set[int] = set()
        # A checker of the aggregator's arguments, before any record arrives.
        self._new_aggregator()

    @property
    def changelog(self) -> str:
        return self._changelog

    def _new_aggregator(self) -> WindowedAggregator[V, A]:
        return WindowedAggregator(
            self.windows, self.aggregation, allowed_lateness_ms=self.allowed_lateness_ms
        )

    def _aggregator(self, partition: int) -> WindowedAggregator[V, A]:
        agg = self._aggregators.get(partition)
        if agg is None:
            agg = self._aggregators[partition] = self._new_aggregator()
        return agg

    def add(self, msg: Message, key: str, ts_ms: int, value: V) -> Step[A]:
        """Count ``value`` at event time ``ts_ms`` in ``key``'s windows because of ``msg``;
        the step holds the windows this closed (on any key of the partition) and whether the
        event was late. A replayed record already counted only moves the watermark."""
        self._check(msg, key, self._partition)
        agg = self._aggregator(msg.partition)
        if msg.offset < self._next_offset.get(key, 0):
            step: Step[A] = Step(closed=agg.advance(ts_ms))
        else:
            step = agg.add(key, ts_ms, value)
        for changed in agg.take_dirty():
            self._next_offset[changed] = msg.offset + 1
            self._partition[changed] = msg.partition
            self._dirty.add(changed)
        self._watermark_next[msg.partition] = msg.offset + 1
        self._dirty_partitions.add(msg.partition)
        return step

    def open_windows(self, key: str) -> dict[Window, A]:
        partition = self._partition.get(key)
        if partition is None or partition not in self._aggregators:
            return {}
        return self._aggregators[partition].open_windows(key)

    def keys(self) -> list[str]:
        return sorted(self._partition)

    def watermark_ms(self, partition: int) -> int | None:
        agg = self._aggregators.get(partition)
        return None if agg is None else agg.watermark_ms

    def take_changes(self) -> tuple[list[ChangelogRecord], list[ChangelogRecord]]:
        dirty, self._dirty = self._dirty, set()
        partitions, self._dirty_partitions = self._dirty_partitions, set()
        keys = [
            _record(
                k,
                self._partition[k],
                {
                    "o": self._next_offset[k],
                    "w": self._aggregators[self._partition[k]].snapshot(k),
                },
            )
            for k in sorted(dirty)
        ]
        watermarks = [
            _record(
                f"{WATERMARK_KEY_PREFIX}{p}",
                p,
                {"o": self._watermark_next[p], "max": self._aggregators[p].max_event_ms},
            )
            for p in sorted(partitions)
        ]
        return keys, watermarks

    def restore(self, records: list[Message], partitions: set[int]) -> None:
        self.forget(partitions)
        for key, (partition, body) in _latest(records, partitions).items():
            agg = self._aggregator(partition)
            if key.startswith(WATERMARK_KEY_PREFIX):
                agg.max_event_ms = body["max"]
                self._watermark_next[partition] = int(body["o"])
                continue
            agg.load(key, body["w"])
            self._next_offset[key] = int(body["o"])
            self._partition[key] = partition

    def forget(self, partitions: set[int]) -> None:
        for key in [k for k, p in self._partition.items() if p in partitions]:
            self._next_offset.pop(key, None)
            self._partition.pop(key, None)
            self._dirty.discard(key)
        for partition in partitions:
            self._aggregators.pop(partition, None)
            self._watermark_next.pop(partition, None)
            self._dirty_partitions.discard(partition)
