"""Consumer group families: kafka_exporter's ``kafka_consumergroup_*`` (unchanged names and
labels, so Grafana dashboard 7589 and kafka_exporter's alerts work as they are), lag in
seconds, and Burrow's status per group (:mod:`shoal.metrics.burrow`).

Lag is the log end offset (the high watermark on a single node) minus the committed offset,
never below zero. Lag in seconds is how old the first record the group has not consumed is: now
minus the timestamp of the batch holding the committed offset (its first record's timestamp,
or the append time under LogAppendTime), zero when the group is caught up. That timestamp is
read once per commit (one batch header from the index), not at every scrape.

Burrow's windows are kept by :mod:`shoal.server.group_status`, sampled on a timer and by
each reader (a scrape too), so they advance whether or not anyone scrapes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from shoal.broker.broker import Broker
from shoal.metrics.burrow import GROUP_STATUSES, PARTITION_STATUSES, Status, group_status
from shoal.metrics.exposition import Exposition, label_text
from shoal.records.header import TimestampType
from shoal.server.group_status import tracker_for
from shoal.storage import PartitionLog, StorageError

_Key = tuple[str, str, int]


class GroupMetrics:
    """State kept between scrapes: the timestamps of committed offsets. Used on the broker's
    event loop only."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._timestamps: dict[_Key, tuple[int, int]] = {}
        """(committed offset, timestamp of its batch) per (group, topic, partition)."""
        self._labels: dict[_Key, str] = {}
        """The rendered labels per (group, topic, partition), kept between scrapes."""

    def write(self, out: Exposition, logs: Mapping[tuple[str, int], PartitionLog]) -> None:
        """``logs``: the online partition logs of the registered topics, by (topic, partition)."""
        broker = self._broker
        now_ms = broker.clock.now_ms()
        current: list[str] = []
        lag: list[str] = []
        lag_seconds: list[str] = []
        lag_sum: dict[tuple[str, str], int] = defaultdict(int)
        live: set[_Key] = set()
        for group_id, offsets in sorted(broker.groups.committed_offsets().items()):
            for (topic, partition), committed in sorted(offsets.items()):
                key = (group_id, topic, partition)
                labels = self._labels.get(key)
                if labels is None:
                    labels = self._labels[key] = label_text(
                        (
                            ("consumergroup", group_id),
                            ("topic", topic),
                            ("partition", str(partition)),
                        )
                    )
                current.append(f"kafka_consumergroup_current_offset{labels} {committed.offset}")
                plog = logs.get((topic, partition))
                if plog is None:  # the topic was deleted; its offsets linger until expiry
                    continue
                live.add(key)
                partition_lag = max(0, plog.log_end_offset - committed.offset)
                lag.append(f"kafka_consumergroup_lag{labels} {partition_lag}")
                lag_sum[(group_id, topic)] += partition_lag
                seconds = self._lag_seconds(key, plog, committed.offset, partition_lag, now_ms)
                lag_seconds.append(f"shoal_consumergroup_lag_seconds{labels} {seconds}")
        tracker = tracker_for(broker)
        tracker.sample(logs)
        statuses = tracker.statuses()
        for key in [k for k in self._timestamps if k not in live]:
            del self._timestamps[key]
        for key in [k for k in self._labels if k not in live]:
            del self._labels[key]

        out.family(
            "kafka_consumergroup_current_offset",
            "gauge",
            "Current Offset of a ConsumerGroup at Topic/Partition",
        )
        out.extend(current)
        out.family(
            "kafka_consumergroup_lag",
            "gauge",
            "Current Approximate Lag of a ConsumerGroup at Topic/Partition",
        )
        out.extend(lag)
        out.family(
            "kafka_consumergroup_lag_sum",
            "gauge",
            "Current Approximate Lag of a ConsumerGroup at Topic for all partitions",
        )
        for (group_id, topic), value in sorted(lag_sum.items()):
            labels = label_text((("consumergroup", group_id), ("topic", topic)))
            out.sample("kafka_consumergroup_lag_sum", labels, value)
        out.family("kafka_consumergroup_members", "gauge", "Amount of members in a consumer group")
        for group in broker.groups.list():
            labels = label_text((("consumergroup", group.group_id),))
            out.sample("kafka_consumergroup_members", labels, len(group.members))
        out.family(
            "shoal_consumergroup_lag_seconds",
            "gauge",
            "Age of the oldest record the group has not consumed (0 when caught up)",
        )
        out.extend(lag_seconds)
        self._write_statuses(out, statuses)

    def _write_statuses(self, out: Exposition, statuses: dict[str, list[Status]]) -> None:
        out.family(
            "shoal_consumergroup_status",
            "gauge",
            "Burrow's status of the group: 1 for the status it is in (OK, WARNING or ERROR)",
        )
        for group_id, partitions in sorted(statuses.items()):
            verdict = group_status(partitions)
            for status in GROUP_STATUSES:
                labels = label_text((("consumergroup", group_id), ("status", status.name)))
                out.sample("shoal_consumergroup_status", labels, int(status is verdict))
        out.family(
            "shoal_consumergroup_partitions_by_status",
            "gauge",
            "The group's partitions in each of Burrow's partition statuses "
            "(OK, WARNING, STOP, STALL, REWIND)",
        )
        for group_id, partitions in sorted(statuses.items()):
            for status in PARTITION_STATUSES:
                labels = label_text((("consumergroup", group_id), ("status", status.name)))
                count = sum(1 for s in partitions if s is status)
                out.sample("shoal_consumergroup_partitions_by_status", labels, count)

    def _lag_seconds(
        self, key: _Key, plog: PartitionLog, offset: int, lag: int, now_ms: int
    ) -> float:
        if lag <= 0:
            return 0.0
        cached = self._timestamps.get(key)
        if cached is None or cached[0] != offset:
            timestamp = batch_timestamp(plog, offset)
            if timestamp is None:
                return 0.0
            cached = self._timestamps[key] = (offset, timestamp)
        return max(0, now_ms - cached[1]) / 1000


def batch_timestamp(plog: PartitionLog, offset: int) -> int | None:
    """The timestamp of the batch holding ``offset`` (or the first one after it), or None."""
    try:
        for header in plog.headers_from(offset):
            if header.timestamp_type is TimestampType.LOG_APPEND_TIME:
                timestamp = header.max_timestamp
            else:
                timestamp = header.base_timestamp
            return timestamp if timestamp >= 0 else None  # -1: a client that set none
    except StorageError:
        return None  # deleted by retention meanwhile: the next scrape reads again
    return None
