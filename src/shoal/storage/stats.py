"""Figures the storage layer keeps about its own work, read by the broker's metrics.

Written by one thread each (the thread running retention or the cleaner for theirs), or under
a lock by several (the flusher's workers for fsyncs), and read by the scrape: plain numbers,
no lock to read them (see :mod:`shoal.metrics`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Final

from shoal.metrics.core import Histogram, bucket_bounds

FSYNC_BUCKETS_S: Final = bucket_bounds(0.0001, 2.0, 16)
"""100 µs (a page-cache-only fsync on a fast disk) to about 3.3 s (a disk in trouble)."""

BATCHES_PER_FSYNC_BUCKETS: Final = bucket_bounds(1, 2.0, 12)
"""1 to 2,048 batches released by one fsync: how well group commit amortises it."""


@dataclass(slots=True)
class FlushStats:
    fsync_duration_s: Histogram = field(default_factory=lambda: Histogram(FSYNC_BUCKETS_S))
    """Time of each flush that fsynced something (data, and sealed segments' indexes)."""
    batches_per_fsync: Histogram = field(
        default_factory=lambda: Histogram(BATCHES_PER_FSYNC_BUCKETS)
    )
    """Batches appended since the previous flush of the same log, made durable by this one."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    """The flusher's workers observe at once (a bucket's ``+= 1`` is not atomic)."""

    def observe(self, duration_s: float, batches: int) -> None:
        with self._lock:
            self.fsync_duration_s.observe(duration_s)
            self.batches_per_fsync.observe(batches)


@dataclass(slots=True)
class RetentionStats:
    runs: int = 0
    """Retention passes over every log."""
    segments_deleted: int = 0
    duration_s: float = 0.0
    """Total time spent in retention passes."""


@dataclass(slots=True)
class StorageStats:
    """Everything a :class:`~shoal.storage.manager.LogManager` counts."""

    flush: FlushStats = field(default_factory=FlushStats)
    retention: RetentionStats = field(default_factory=RetentionStats)
