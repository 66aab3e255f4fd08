"""Event-time windows: which windows an event belongs to (tumbling and hopping), and the
session windows of a set of event times. Pure functions of integers (milliseconds).

A window is the half-open interval ``[start_ms, end_ms)``: an event at exactly ``end_ms``
belongs to the next window, as in Kafka Streams and Flink.
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOWS_PER_EVENT_MAX = 1_000
"""A hopping window whose size is more than this many advances would copy each event into
that many aggregates: almost certainly a unit mistake (seconds given as milliseconds)."""


@dataclass(frozen=True, slots=True, order=True)
class Window:
    start_ms: int
    end_ms: int

    def __contains__(self, ts_ms: object) -> bool:
        return isinstance(ts_ms, int) and self.start_ms <= ts_ms < self.end_ms


@dataclass(frozen=True, slots=True)
class Hopping:
    """Windows of ``size_ms`` starting every ``advance_ms`` (aligned to the epoch); an event
    belongs to ``size_ms / advance_ms`` of them. ``Tumbling`` is the case advance = size."""

    size_ms: int
    advance_ms: int

    def __post_init__(self) -> None:
        if self.size_ms <= 0 or self.advance_ms <= 0:
            raise ValueError("window size and advance must be positive milliseconds")
        if self.advance_ms > self.size_ms:
            raise ValueError("a hopping window's advance cannot exceed its size (gaps)")
        if self.size_ms // self.advance_ms > WINDOWS_PER_EVENT_MAX:
            raise ValueError(
                f"size/advance over {WINDOWS_PER_EVENT_MAX}: each event would be counted in "
                "that many windows"
            )

    def windows_of(self, ts_ms: int) -> list[Window]:
        """Every window holding ``ts_ms``, oldest first. Windows start at or after the epoch
        (as in Kafka Streams): none begins before time 0."""
        last_start = ts_ms - ts_ms % self.advance_ms
        out = []
        start = last_start
        while start > ts_ms - self.size_ms and start >= 0:
            out.append(Window(start, start + self.size_ms))
            start -= self.advance_ms
        out.reverse()
        return out

    @property
    def name(self) -> str:
        if self.advance_ms == self.size_ms:
            return f"tumbling-{self.size_ms}ms"
        return f"hopping-{self.size_ms}ms-{self.advance_ms}ms"


def Tumbling(size_ms: int) -> Hopping:
    """Back-to-back windows of ``size_ms``: each event in exactly one."""
    return Hopping(size_ms, size_ms)


@dataclass(frozen=True, slots=True)
class Session:
    """Per key, events less than ``gap_ms`` apart share a window ``[first, last + 1)``; a
    quiet gap of at least ``gap_ms`` starts a new one."""

    gap_ms: int

    def __post_init__(self) -> None:
        if self.gap_ms <= 0:
            raise ValueError("a session gap must be positive milliseconds")

    @property
    def name(self) -> str:
        return f"session-{self.gap_ms}ms"

    def sessions(self, times_ms: list[int]) -> list[Window]:
        """The sessions of a key whose events happened at ``times_ms`` (any order)."""
        out: list[Window] = []
        for ts in sorted(times_ms):
            if out and ts - (out[-1].end_ms - 1) < self.gap_ms:
                out[-1] = Window(out[-1].start_ms, ts + 1)
            else:
                out.append(Window(ts, ts + 1))
        return out
