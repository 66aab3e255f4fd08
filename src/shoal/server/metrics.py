"""Consumer group metrics in the Prometheus text format, under kafka_exporter's names.

Dashboards and alerts written for kafka_exporter (danielqsj/kafka_exporter) work unchanged:
``kafka_consumergroup_current_offset`` and ``kafka_consumergroup_lag`` per group, topic and
partition, ``kafka_consumergroup_lag_sum`` per group and topic, ``kafka_consumergroup_members``
per group. Lag is the log end offset (the high watermark on a single node) minus the committed
offset, never below zero.

Computed at scrape time from the broker's own state, so :func:`render_group_metrics` must run on
the broker's event loop thread (the HTTP face does: it shares the loop). The format is small
enough to write directly (exposition format 0.0.4) rather than keep a metrics registry in step
with groups that come and go.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Final

from shoal.broker.broker import Broker

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

_Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(
    name: str, help_text: str, samples: Iterable[tuple[_Labels, int]], kind: str = "gauge"
) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        rendered = ",".join(f'{key}="{_escape(text)}"' for key, text in labels)
        lines.append(f"{name}{{{rendered}}} {value}" if rendered else f"{name} {value}")
    return lines


def render_group_metrics(broker: Broker) -> str:
    current: list[tuple[_Labels, int]] = []
    lag: list[tuple[_Labels, int]] = []
    lag_sum: dict[tuple[str, str], int] = defaultdict(int)
    for group_id, offsets in sorted(broker.groups.committed_offsets().items()):
        for (topic, partition), committed in sorted(offsets.items()):
            labels = (("consumergroup", group_id), ("topic", topic), ("partition", str(partition)))
            current.append((labels, committed.offset))
            plog = broker.partition(topic, partition)
            if plog is None:  # the topic was deleted; its offsets linger until expiry
                continue
            partition_lag = max(0, plog.log_end_offset - committed.offset)
            lag.append((labels, partition_lag))
            lag_sum[(group_id, topic)] += partition_lag
    members = [
        ((("consumergroup", group.group_id),), len(group.members)) for group in broker.groups.list()
    ]
    lines = [
        *_family(
            "kafka_consumergroup_current_offset",
            "Current Offset of a ConsumerGroup at Topic/Partition",
            current,
        ),
        *_family(
            "kafka_consumergroup_lag",
            "Current Approximate Lag of a ConsumerGroup at Topic/Partition",
            lag,
        ),
        *_family(
            "kafka_consumergroup_lag_sum",
            "Current Approximate Lag of a ConsumerGroup at Topic for all partitions",
            (
                ((("consumergroup", group_id), ("topic", topic)), value)
                for (group_id, topic), value in sorted(lag_sum.items())
            ),
        ),
        *_family(
            "kafka_consumergroup_members",
            "Amount of members in a consumer group",
            members,
        ),
        *_family(
            "shoal_fetch_reads_off_loop_total",
            "Fetches whose records were not in the page cache and were read on a worker thread",
            [((), broker.stats.fetch_reads_off_loop)],
            kind="counter",
        ),
    ]
    return "\n".join(lines) + "\n"
