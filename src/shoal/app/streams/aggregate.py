"""Windowed aggregation on event time, sans-IO: events in, final window results out.

    bars = WindowedAggregator(Tumbling(1_000), OHLC, allowed_lateness_ms=2_000)
    step = bars.add("ACME", trade.ts_ms, trade)
    for result in step.closed: ...          # windows that can no longer change
    if step.late: ...                       # the event came too late: to a side topic

Time is the events' own (event time). The watermark is the newest event time seen minus the
allowed lateness: events may arrive out of order by up to ``allowed_lateness_ms`` and still
count; an event older than the watermark is *late* and counts nowhere (the caller hands it to a
side topic). A window is emitted once, when the watermark passes its end, so every result is
final (Flink's bounded-out-of-orderness watermark; Kafka Streams' ``suppress(untilWindowCloses)``).

The aggregator knows nothing of topics or tables: :mod:`shoal.app.streams.processor` persists
its state (:meth:`WindowedAggregator.snapshot`/:meth:`load`) in a table.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from shoal.app.streams.windows import Hopping, Session, Window
from shoal.invariant import invariant

V = TypeVar("V")
A = TypeVar("A")

WindowSpec = Hopping | Session


@dataclass(frozen=True, slots=True)
class Aggregation(Generic[V, A]):
    """How to fold events into an aggregate. ``merge`` joins two sessions that an event
    bridged (session windows only). ``encode``/``decode`` turn an aggregate into JSON-able data
    and back, for the changelog (default: the aggregate is JSON-able as it is)."""

    initial: Callable[[], A]
    add: Callable[[A, V, int], A]
    """(aggregate, event value, event time in ms) -> the new aggregate."""
    merge: Callable[[A, A], A] | None = None
    encode: Callable[[A], Any] = lambda agg: agg
    decode: Callable[[Any], A] = lambda data: data


@dataclass(frozen=True, slots=True)
class Result(Generic[A]):
    key: str
    window: Window
    value: A


@dataclass(slots=True)
class Step(Generic[A]):
    """What one event caused: the windows it closed (in close order) and whether it was late."""

    closed: list[Result[A]] = field(default_factory=list)
    late: bool = False


class WindowedAggregator(Generic[V, A]):
    def __init__(
        self,
        windows: WindowSpec,
        aggregation: Aggregation[V, A],
        *,
        allowed_lateness_ms: int = 0,
    ) -> None:
        if allowed_lateness_ms < 0:
            raise ValueError("allowed lateness cannot be negative")
        if isinstance(windows, Session) and aggregation.merge is None:
            raise ValueError("session windows need an aggregation with merge")
        self.windows = windows
        self.aggregation = aggregation
        self.allowed_lateness_ms = allowed_lateness_ms
        self.max_event_ms: int | None = None
        self._open: dict[str, dict[Window, A]] = {}
        # (close time, key, window) of every open window; entries of sessions merged away
        # stay behind and are skipped when popped (lazy deletion).
        self._closing: list[tuple[int, str, Window]] = []
        self._dirty: set[str] = set()

    @property
    def watermark_ms(self) -> int | None:
        """Events older than this are late; None before the first event."""
        if self.max_event_ms is None:
            return None
        return self.max_event_ms - self.allowed_lateness_ms

    def _close_ms(self, window: Window) -> int:
        """The watermark at which ``window`` can no longer receive an event."""
        if isinstance(self.windows, Session):
            # A later event extends the session only if less than a gap after its last one.
            return window.end_ms - 1 + self.windows.gap_ms
        return window.end_ms

    def add(self, key: str, ts_ms: int, value: V) -> Step[A]:
        if ts_ms < 0:
            raise ValueError(f"event time {ts_ms} ms is before the epoch: not an event time")
        watermark = self.watermark_ms
        if watermark is not None and ts_ms < watermark:
            return Step(late=True)
        if self.max_event_ms is None or ts_ms > self.max_event_ms:
            self.max_event_ms = ts_ms
        if isinstance(self.windows, Session):
            self._add_to_session(key, ts_ms, value)
        else:
            windows = self._open.setdefault(key, {})
            for window in self.windows.windows_of(ts_ms):
                agg = windows.get(window)
                if agg is None:
                    agg = self.aggregation.initial()
                    heapq.heappush(self._closing, (self._close_ms(window), key, window))
                windows[window] = self.aggregation.add(agg, value, ts_ms)
        self._dirty.add(key)
        return Step(closed=self._close_until(self.watermark_ms))

    def _add_to_session(self, key: str, ts_ms: int, value: V) -> None:
        assert isinstance(self.windows, Session)  # noqa: S101 - narrows the type for mypy
        merge = self.aggregation.merge
        invariant(merge is not None, "session windows without merge")
        assert merge is not None  # noqa: S101 - narrows the type for mypy
        gap = self.windows.gap_ms
        sessions = self._open.setdefault(key, {})
        touching = [
            w for w in sessions if w.start_ms - ts_ms < gap and ts_ms - (w.end_ms - 1) < gap
        ]
        merged = Window(ts_ms, ts_ms + 1)
        agg = self.aggregation.add(self.aggregation.initial(), value, ts_ms)
        for window in sorted(touching):
            agg = merge(sessions.pop(window), agg)
            merged = Window(
                min(merged.start_ms, window.start_ms), max(merged.end_ms, window.end_ms)
            )
        sessions[merged] = agg
        heapq.heappush(self._closing, (self._close_ms(merged), key, merged))

    def _close_until(self, watermark: int | None) -> list[Result[A]]:
        out: list[Result[A]] = []
        while self._closing and (watermark is None or self._closing[0][0] <= watermark):
            _, key, window = heapq.heappop(self._closing)
            windows = self._open.get(key)
            if windows is None or window not in windows:
                continue  # a session merged into a bigger one since
            out.append(Result(key, window, windows.pop(window)))
            if not windows:
                del self._open[key]
            self._dirty.add(key)
        return out

    def advance(self, ts_ms: int) -> list[Result[A]]:
        """Let an event time move the watermark without counting the event (a record replayed
        after a restart whose effect the restored state already holds)."""
        if self.max_event_ms is None or ts_ms > self.max_event_ms:
            self.max_event_ms = ts_ms
        return self._close_until(self.watermark_ms)

    def flush(self) -> list[Result[A]]:
        """Close every open window (the end of a finite stream), in close order."""
        return self._close_until(None)

    def open_windows(self, key: str) -> dict[Window, A]:
        """The windows of ``key`` still open, with their aggregates so far (a copy)."""
        return dict(self._open.get(key, {}))

    # -- persistence: the processor writes these to a table's changelog -----------------------

    def take_dirty(self) -> set[str]:
        """Keys whose open windows changed since the last call."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def snapshot(self, key: str) -> list[list[Any]] | None:
        """The open windows of ``key`` as JSON-able data (None: it has none)."""
        windows = self._open.get(key)
        if not windows:
            return None
        encode = self.aggregation.encode
        return [[w.start_ms, w.end_ms, encode(agg)] for w, agg in sorted(windows.items())]

    def load(self, key: str, snapshot: list[list[Any]] | None) -> None:
        """Put back what :meth:`snapshot` gave for ``key`` (restoring from a changelog)."""
        self._open.pop(key, None)
        if not snapshot:
            return
        decode = self.aggregation.decode
        windows = {Window(int(s), int(e)): decode(data) for s, e, data in snapshot}
        self._open[key] = windows
        for window in windows:
            heapq.heappush(self._closing, (self._close_ms(window), key, window))

    def forget(self, key: str) -> None:
        """Drop ``key``'s open windows (its partition moved to another instance)."""
        self._open.pop(key, None)
