"""Settings of one partition log, named after the Kafka topic configs they mirror."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

from shoal.invariant import invariant

MAX_SEGMENT_BYTES: Final = 2**31 - 1
"""Index entries hold a u32 position; Kafka caps segment.bytes at Int.MaxValue too."""


class FlushPolicy(Enum):
    """When appended bytes are fsynced, and so when an acks=all append counts as durable.

    - ``SYNC`` (default): an append awaiting durability is released only after an fsync that
      covers it; concurrent appenders share one fsync (group commit).
    - ``INTERVAL``: fsync every ``flush_interval_ms``; appends are acknowledged before that, so
      a power loss may take the last interval's acknowledged records. Weaker, and named so.
    - ``NONE``: never fsync except on segment roll and clean shutdown, leaving it to the OS like
      Kafka's default. A power loss may take an unbounded acknowledged suffix (never a hole).
    """

    SYNC = "sync"
    INTERVAL = "interval"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class LogConfig:
    segment_bytes: int = 1024 * 1024 * 1024
    """segment.bytes: roll to a new segment before the active one would pass this size."""
    segment_ms: int = 7 * 24 * 3600 * 1000
    """segment.ms: roll a segment this old, so time retention can delete whole segments."""
    index_interval_bytes: int = 4096
    """index.interval.bytes: bytes of log between sparse offset-index entries."""
    retention_bytes: int = -1
    """retention.bytes: delete oldest segments while the log is bigger (-1: no limit)."""
    retention_ms: int = 7 * 24 * 3600 * 1000
    """retention.ms: delete segments whose newest record is older (-1: keep forever)."""
    flush_policy: FlushPolicy = FlushPolicy.SYNC
    flush_interval_ms: int = 1000
    """flush.ms when ``flush_policy`` is INTERVAL."""
    checkpoint_interval_ms: int = 1000
    """How often the recovery point is saved: bounds what an unclean restart re-checks."""
    # -- compaction (the log cleaner: shoal.storage.cleaner) -------------------------------
    compact: bool = False
    """cleanup.policy contains 'compact': the cleaner keeps the latest record of each key."""
    delete_retention_ms: int = 24 * 3600 * 1000
    """delete.retention.ms: how long a cleaned tombstone stays readable (its delete horizon)."""
    min_compaction_lag_ms: int = 0
    """min.compaction.lag.ms: a segment with a record younger than this is not cleaned yet."""
    max_compaction_lag_ms: int = 2**63 - 1
    """max.compaction.lag.ms: a dirty segment older than this is cleaned whatever the ratio;
    it also bounds how long the active segment stays open (see :attr:`roll_ms`)."""
    min_cleanable_dirty_ratio: float = 0.5
    """min.cleanable.dirty.ratio: dirty bytes / all cleanable bytes before a clean is due."""

    def __post_init__(self) -> None:
        invariant(0 < self.segment_bytes <= MAX_SEGMENT_BYTES, "segment_bytes must be 1..2^31-1")
        invariant(self.segment_ms > 0, "segment_ms must be positive")
        invariant(self.index_interval_bytes > 0, "index_interval_bytes must be positive")
        invariant(self.flush_interval_ms > 0, "flush_interval_ms must be positive")
        invariant(self.checkpoint_interval_ms >= 0, "checkpoint_interval_ms must be >= 0")
        invariant(self.delete_retention_ms >= 0, "delete_retention_ms must be >= 0")
        invariant(
            0 <= self.min_compaction_lag_ms <= self.max_compaction_lag_ms,
            "compaction lags must satisfy 0 <= min <= max",
        )
        invariant(0 <= self.min_cleanable_dirty_ratio <= 1, "dirty ratio must be in [0, 1]")

    @property
    def roll_ms(self) -> int:
        """How old the active segment may grow before a roll: segment.ms, and for a compacted
        log no more than max.compaction.lag.ms, since the active segment is never cleaned
        (Kafka's LogConfig.maxSegmentMs)."""
        if self.compact:
            return min(self.segment_ms, self.max_compaction_lag_ms)
        return self.segment_ms
