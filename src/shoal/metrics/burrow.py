"""Burrow's consumer status: a verdict per group from a window of its offset commits.

LinkedIn's Burrow judges a consumer without lag thresholds. For each partition it keeps the
group's last ``WINDOW_COMMITS`` commits, each with its time and the lag at that moment, and
applies these rules in order (Burrow's ``calculatePartitionStatus``):

1. OK if the lag is zero now, or was zero at any commit in the window.
2. REWIND if a commit's offset is lower than the commit before it.
3. STOP if the time since the last commit is longer than the window spans (last minus first
   commit): the consumer stopped committing.
4. STALL if every commit in the window has the same offset (the lag is not zero, by rule 1):
   the consumer commits, but does not move.
5. WARNING if the lag never went down from one commit to the next: the consumer moves, but
   more slowly than the producers.
6. OK otherwise.

A group's status is its worst partition's, where STOP, STALL and REWIND count as ERROR (so a
group is OK, WARNING or ERROR; the partition statuses say which error). Burrow's storage
replaces the newest entry rather than adding one when commits come closer than its
``min-distance`` (1 s); :class:`CommitWindows` does the same.

Pure logic (no clock, no I/O): the caller says what it saw and when.
"""

from __future__ import annotations

import enum
import itertools
from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final


class Status(enum.IntEnum):
    """Burrow's status constants (protocol.StatusConstant), worse is higher."""

    OK = 1
    WARNING = 2
    ERROR = 3
    STOP = 4
    STALL = 5
    REWIND = 6


PARTITION_STATUSES: Final = (Status.OK, Status.WARNING, Status.STOP, Status.STALL, Status.REWIND)
GROUP_STATUSES: Final = (Status.OK, Status.WARNING, Status.ERROR)

WINDOW_COMMITS: Final = 10
"""Burrow's default ``intervals``: the commits a partition's verdict looks at."""
MIN_DISTANCE_MS: Final = 1000
"""Burrow's default ``min-distance``: commits closer than this replace the newest entry."""


@dataclass(frozen=True, slots=True)
class Commit:
    offset: int
    timestamp_ms: int
    lag: int
    """Records behind the log end when the commit was seen."""


def partition_status(window: Sequence[Commit], current_lag: int, now_ms: int) -> Status:
    """The verdict of one partition (rules 1-6 of the module docstring)."""
    if not window or current_lag <= 0:
        return Status.OK
    # One pass over the window (it is scraped for every partition of every group).
    rewound = False
    offsets_moved = False
    lag_went_down = False
    previous = None
    for commit in window:
        if commit.lag == 0:
            return Status.OK
        if previous is not None:
            if commit.offset < previous.offset:
                rewound = True
            if commit.offset != previous.offset:
                offsets_moved = True
            if commit.lag < previous.lag:
                lag_went_down = True
        previous = commit
    if rewound:
        return Status.REWIND
    first, last = window[0], window[-1]
    if now_ms - last.timestamp_ms > last.timestamp_ms - first.timestamp_ms:
        return Status.STOP
    if not offsets_moved:
        return Status.STALL
    if not lag_went_down:
        return Status.WARNING
    return Status.OK


def group_status(partitions: Iterable[Status]) -> Status:
    """The worst partition status, with the partition-level errors reported as ERROR."""
    worst = max(partitions, default=Status.OK)
    return Status.ERROR if worst > Status.ERROR else worst


class CommitWindows:
    """The last commits of every (group, topic, partition) the caller reports."""

    def __init__(self, size: int = WINDOW_COMMITS, min_distance_ms: int = MIN_DISTANCE_MS) -> None:
        self._size = size
        self._min_distance_ms = min_distance_ms
        self._windows: dict[Hashable, deque[Commit]] = {}
        self._seen: dict[Hashable, object] = {}
        """The commit object last recorded per key: the same object again is no new commit."""

    def record(self, key: Hashable, commit_token: object, commit: Commit) -> Sequence[Commit]:
        """Add ``commit`` unless ``commit_token`` (what identifies one commit, e.g. the stored
        offset record) was already recorded; returns the key's window."""
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = deque(maxlen=self._size)
        if self._seen.get(key) is not commit_token:
            self._seen[key] = commit_token
            if window and commit.timestamp_ms - window[-1].timestamp_ms < self._min_distance_ms:
                window[-1] = commit
            else:
                window.append(commit)
        return window

    def keep_only(self, keys: set[Hashable]) -> None:
        """Forget the windows of keys no longer reported (a group or its offsets deleted)."""
        for key in [k for k in self._windows if k not in keys]:
            del self._windows[key]
            self._seen.pop(key, None)


def explain(status: Status, window: Sequence[Commit], current_lag: int, now_ms: int) -> str:
    """Why ``partition_status`` gave ``status``, in words (the console's tooltip)."""
    if status is Status.REWIND:
        back = next((b, a) for a, b in itertools.pairwise(window) if b.offset < a.offset)
        return f"the committed offset went back from {back[1].offset} to {back[0].offset}"
    if status is Status.STOP:
        idle_s = (now_ms - window[-1].timestamp_ms) // 1000
        span_s = (window[-1].timestamp_ms - window[0].timestamp_ms) // 1000
        return (
            f"no commit for {idle_s} s, longer than its last {len(window)} commits span "
            f"({span_s} s); lag {current_lag}"
        )
    if status is Status.STALL:
        return (
            f"committed offset {window[-1].offset} in each of its last {len(window)} commits "
            f"while {current_lag} records wait"
        )
    if status is Status.WARNING:
        return f"lag never went down over its last {len(window)} commits (lag {current_lag})"
    if current_lag <= 0:
        return "caught up (lag 0)"
    return f"consuming (lag {current_lag}, down or zero within its last {len(window)} commits)"
