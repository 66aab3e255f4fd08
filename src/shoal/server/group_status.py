"""Burrow's status of each consumer group (:mod:`shoal.metrics.burrow`), sampled on the
broker's event loop whether or not anyone scrapes ``/metrics``.

A timer (:func:`sample_forever`, started by the server) samples every
``SAMPLE_INTERVAL_MS``, so the windows advance on their own; every reader (a scrape, an
admin-API read) samples first too, so what it shows includes the latest commit. Sampling is
idempotent (a commit already recorded is not recorded again; commits closer than Burrow's
min-distance fold into one entry), so extra samples change no verdict. One tracker per broker
(:func:`tracker_for`), shared by the metrics and the admin API so both say the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from weakref import WeakKeyDictionary

from shoal.broker.broker import Broker
from shoal.metrics.burrow import (
    Commit,
    CommitWindows,
    Status,
    explain,
    group_status,
    partition_status,
)
from shoal.storage import PartitionLog

SAMPLE_INTERVAL_MS: Final = 1000
"""The timer's period: Burrow's min-distance (commits closer than this fold into one entry
anyway, so a faster timer would change no window)."""

_Key = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class PartitionVerdict:
    topic: str
    partition: int
    status: Status
    reason: str


@dataclass(frozen=True, slots=True)
class GroupVerdict:
    status: Status
    """OK, WARNING or ERROR (the partition-level errors count as ERROR)."""
    worst: Status
    """The worst partition's status: which error (STOP, STALL, REWIND) an ERROR is."""
    reason: str
    partitions: tuple[PartitionVerdict, ...]


class GroupStatusTracker:
    """Burrow's commit windows of every (group, topic, partition) with a committed offset on a
    live topic, and the lag seen at the last sample. Used on the broker's event loop only."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._windows = CommitWindows()
        self._current: dict[_Key, tuple[Sequence[Commit], int]] = {}
        """(window, lag at the last sample) per key."""

    def sample(self, logs: Mapping[tuple[str, int], PartitionLog] | None = None) -> None:
        """Record the commits not seen yet and the lag now. ``logs``: the online partition
        logs by (topic, partition), if the caller has them at hand (else each is looked up)."""
        broker = self._broker
        now_ms = broker.clock.now_ms()
        current: dict[_Key, tuple[Sequence[Commit], int]] = {}
        for group_id, offsets in broker.groups.committed_offsets().items():
            for (topic, partition), committed in offsets.items():
                plog = (
                    broker.partition(topic, partition)
                    if logs is None
                    else logs.get((topic, partition))
                )
                if plog is None:  # the topic was deleted; its offsets linger until expiry
                    continue
                key = (group_id, topic, partition)
                lag = max(0, plog.log_end_offset - committed.offset)
                stamp = committed.commit_timestamp_ms
                commit = Commit(committed.offset, stamp if stamp >= 0 else now_ms, lag)
                current[key] = (self._windows.record(key, committed, commit), lag)
        self._windows.keep_only(set[Hashable](current))
        self._current = current

    def statuses(self) -> dict[str, list[Status]]:
        """Each group's partition statuses, without the reasons :meth:`verdicts` writes: what
        a scrape needs, for a thousand partitions on the event loop."""
        now_ms = self._broker.clock.now_ms()
        by_group: dict[str, list[Status]] = {}
        for (group_id, _topic, _partition), (window, lag) in self._current.items():
            by_group.setdefault(group_id, []).append(partition_status(window, lag, now_ms))
        return by_group

    def verdicts(
        self, topic_visible: Callable[[str], bool] = lambda _: True
    ) -> dict[str, GroupVerdict]:
        """Each group with a committed offset on a live topic, judged on the partitions of
        the topics ``topic_visible`` accepts (the caller may describe)."""
        now_ms = self._broker.clock.now_ms()
        by_group: dict[str, list[PartitionVerdict]] = {}
        for (group_id, topic, partition), (window, lag) in sorted(self._current.items()):
            if not topic_visible(topic):
                continue
            status = partition_status(window, lag, now_ms)
            reason = explain(status, window, lag, now_ms)
            by_group.setdefault(group_id, []).append(
                PartitionVerdict(topic, partition, status, reason)
            )
        return {group_id: _judge(partitions) for group_id, partitions in by_group.items()}


def _judge(partitions: list[PartitionVerdict]) -> GroupVerdict:
    worst = max(partitions, key=lambda p: p.status)
    troubled = [p for p in partitions if p.status is not Status.OK]
    if not troubled:
        reason = f"all {len(partitions)} partition(s) OK"
    else:
        reason = f"{worst.topic}-{worst.partition} {worst.status.name}: {worst.reason}"
        if len(troubled) > 1:
            reason += f" (and {len(troubled) - 1} more partition(s) not OK)"
    return GroupVerdict(
        group_status(p.status for p in partitions), worst.status, reason, tuple(partitions)
    )


log = logging.getLogger(__name__)

_TRACKERS: WeakKeyDictionary[Broker, GroupStatusTracker] = WeakKeyDictionary()


def tracker_for(broker: Broker) -> GroupStatusTracker:
    """The broker's one tracker (made on first use)."""
    tracker = _TRACKERS.get(broker)
    if tracker is None:
        tracker = _TRACKERS[broker] = GroupStatusTracker(broker)
    return tracker


async def sample_forever(broker: Broker) -> None:
    """The timer: sample every interval until cancelled (when the server stops)."""
    tracker = tracker_for(broker)
    while True:
        try:
            tracker.sample()
        except Exception:  # one bad round (a failed log directory...) must not end the timer
            log.exception("group status: sampling the committed offsets failed")
        await asyncio.sleep(SAMPLE_INTERVAL_MS / 1000)
