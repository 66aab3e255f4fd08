"""The log cleaner's metrics in the Prometheus text format (log compaction, issue 15).

Kafka publishes its cleaner's state only as broker metrics (JMX: ``kafka.log:type=LogCleaner``
and ``LogCleanerManager``), never in a protocol API, so shoal publishes it on ``/metrics``:

- ``shoal_log_cleaner_dirty_ratio{topic,partition}``: dirty bytes over cleanable bytes of each
  compacted partition, as of the cleaner's last look (what ``min.cleanable.dirty.ratio`` is
  compared with); ``shoal topic describe`` shows it.
- ``shoal_log_cleaner_max_dirty_ratio``: the highest of those (Kafka's ``max-dirty-percent``,
  as a fraction).
- ``shoal_log_cleaner_uncleanable_partitions``: partitions left alone after a failed clean
  (Kafka's ``uncleanable-partitions-count``).
- ``shoal_log_cleaner_cleans_total``, ``shoal_log_cleaner_last_clean_timestamp_seconds``.

The cleaner thread writes :class:`~shoal.storage.cleaner_thread.CleanerMetrics`; this reads it
from the event loop. It only copies whole dicts (one C-level operation under the GIL) and
plain numbers, so it never sees a dict change size under it.
"""

from __future__ import annotations

from shoal.storage.cleaner_thread import LogCleaner

DIRTY_RATIO: str = "shoal_log_cleaner_dirty_ratio"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def split_log_name(name: str) -> tuple[str, int] | None:
    """``(topic, partition)`` of a partition directory name such as ``orders-3``."""
    topic, _, partition = name.rpartition("-")
    return (topic, int(partition)) if topic and partition.isdigit() else None


def render_cleaner_metrics(cleaner: LogCleaner | None) -> str:
    """The families above; empty when the cleaner is not running (log_cleaner_enable off)."""
    if cleaner is None:
        return ""
    metrics = cleaner.metrics
    ratios = dict(metrics.dirty_ratio)
    lines = [
        f"# HELP {DIRTY_RATIO} Dirty bytes over cleanable bytes of a compacted partition",
        f"# TYPE {DIRTY_RATIO} gauge",
    ]
    for name, ratio in sorted(ratios.items()):
        parsed = split_log_name(name)
        if parsed is None:
            continue
        topic, partition = parsed
        lines.append(f'{DIRTY_RATIO}{{topic="{_escape(topic)}",partition="{partition}"}} {ratio}')
    last_s = metrics.last_clean_time_ms / 1000 if metrics.last_clean_time_ms >= 0 else 0
    for name, kind, help_text, value in (
        (
            "shoal_log_cleaner_max_dirty_ratio",
            "gauge",
            "The highest dirty ratio of any compacted partition",
            max(ratios.values(), default=0.0),
        ),
        (
            "shoal_log_cleaner_uncleanable_partitions",
            "gauge",
            "Partitions the cleaner left alone after a failed clean",
            len(dict(metrics.uncleanable)),
        ),
        ("shoal_log_cleaner_cleans_total", "counter", "Cleans completed", metrics.cleans),
        (
            "shoal_log_cleaner_last_clean_timestamp_seconds",
            "gauge",
            "When the last clean finished (Unix time; 0 before the first)",
            last_s,
        ),
    ):
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
    return "\n".join(lines) + "\n"
