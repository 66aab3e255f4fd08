"""The broker's ``/metrics``: every family, written at scrape time in the Prometheus text format.

kafka_exporter's families keep their names and labels (``kafka_brokers``, ``kafka_topic_*``,
``kafka_consumergroup_*``), so dashboards and alerts written for it (Grafana dashboard 7589)
work unchanged; shoal's own are ``shoal_*``, and the process's ``process_*``. docs/metrics.md
lists each with its labels and meaning.

The figures themselves are plain numbers kept where the work happens (see
:mod:`shoal.metrics.core` for why): requests and listeners in the server
(:mod:`shoal.server.request_metrics`), topic traffic in the broker (:mod:`shoal.broker.stats`),
fsyncs and retention in storage (:mod:`shoal.storage.stats`), cleaner work in the cleaner thread
(:class:`shoal.storage.cleaner_thread.CleanerMetrics`). This module only
reads them, so :meth:`BrokerMetrics.render` must run on the broker's event loop thread (the
HTTP face does: it shares the loop).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from shoal.broker.broker import Broker
from shoal.metrics.exposition import CONTENT_TYPE, Exposition, label_text
from shoal.protocol import ApiKey, ErrorCode
from shoal.server.group_metrics import GroupMetrics
from shoal.server.kafka import KafkaServer
from shoal.server.process_metrics import write_disk, write_process
from shoal.server.registry_metrics import RegistryMetrics
from shoal.server.request_metrics import RequestMetrics
from shoal.storage import PartitionLog
from shoal.storage.cleaner_thread import CleanerMetrics

DIRTY_RATIO_FAMILY = "shoal_log_cleaner_dirty_ratio"
"""Read back by ``shoal topic describe`` (shoal.cli.dirty_ratio names it too: the CLI is a
client and imports nothing of the server)."""

__all__ = ["CONTENT_TYPE", "BrokerMetrics", "api_name"]


def api_name(api_key: int) -> str:
    """Kafka's request name (``OffsetCommit``), as its RequestMetrics label ``request``."""
    try:
        return "".join(word.capitalize() for word in ApiKey(api_key).name.split("_"))
    except ValueError:
        return str(api_key)


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


class BrokerMetrics:
    def __init__(
        self,
        broker: Broker,
        listeners: Mapping[str, KafkaServer],
        requests: RequestMetrics,
        registry: RegistryMetrics,
        readiness: Callable[[], tuple[bool, str]],
    ) -> None:
        self._broker = broker
        self._listeners = listeners
        self._requests = requests
        self._registry = registry
        self._readiness = readiness
        self._groups = GroupMetrics(broker)
        self._partition_labels: dict[tuple[str, int], str] = {}
        """``{topic="t",partition="0"}`` per partition, kept between scrapes (the labels
        of a thousand partitions are the bulk of a scrape's text)."""

    def render(self) -> str:
        out = Exposition()
        self.write(out)
        return out.text()

    def write(self, out: Exposition) -> None:
        ready, _detail = self._readiness()
        out.family("shoal_broker_ready", "gauge", "1 when the broker serves (see /readyz)")
        out.sample("shoal_broker_ready", "", int(ready))
        out.family("kafka_brokers", "gauge", "Number of Brokers in the Kafka Cluster.")
        out.sample("kafka_brokers", "", 1)
        logs = self._partition_logs()
        self._write_topics(out, logs)
        self._groups.write(out, logs)
        self._write_requests(out)
        self._write_listeners(out)
        self._write_traffic(out)
        self._write_storage(out)
        self._write_registry(out)
        write_process(out)
        write_disk(out, self._broker.logs.path)

    # -- topics and partitions ----------------------------------------------------------

    def _partition_logs(self) -> dict[tuple[str, int], PartitionLog]:
        """The logs of every registered topic's partitions that are online, by (topic,
        partition): one pass over the manager's map rather than a lookup per partition."""
        registered = {topic.name for topic in self._broker.topics}
        return {
            (tp.topic, tp.partition): plog
            for tp, plog in self._broker.logs.partitions().items()
            if tp.topic in registered
        }

    def _labels(self, topic: str, partition: int) -> str:
        key = (topic, partition)
        labels = self._partition_labels.get(key)
        if labels is None:
            labels = label_text((("topic", topic), ("partition", str(partition))))
            self._partition_labels[key] = labels
        return labels

    def _write_topics(self, out: Exposition, logs: dict[tuple[str, int], PartitionLog]) -> None:
        broker = self._broker
        partitions: list[str] = []
        current: list[str] = []
        oldest: list[str] = []
        sizes: list[str] = []
        segments: list[str] = []
        for topic in sorted(broker.topics, key=lambda t: t.name):
            partitions.append(
                f"kafka_topic_partitions{label_text((('topic', topic.name),))} {topic.partitions}"
            )
            for index in range(topic.partitions):
                plog = logs.get((topic.name, index))
                if plog is None:  # offline: recovery refused it
                    continue
                labels = self._labels(topic.name, index)
                current.append(
                    f"kafka_topic_partition_current_offset{labels} {plog.log_end_offset}"
                )
                oldest.append(
                    f"kafka_topic_partition_oldest_offset{labels} {plog.log_start_offset}"
                )
                sizes.append(f"shoal_log_size_bytes{labels} {plog.size_bytes}")
                segments.append(f"shoal_log_segments{labels} {plog.segment_count}")
        out.family("kafka_topic_partitions", "gauge", "Number of partitions for this Topic")
        out.extend(partitions)
        out.family(
            "kafka_topic_partition_current_offset",
            "gauge",
            "Current Offset of a Broker at Topic/Partition",
        )
        out.extend(current)
        out.family(
            "kafka_topic_partition_oldest_offset",
            "gauge",
            "Oldest Offset of a Broker at Topic/Partition",
        )
        out.extend(oldest)
        out.family("shoal_log_size_bytes", "gauge", "Bytes of the partition's log segments")
        out.extend(sizes)
        out.family("shoal_log_segments", "gauge", "Segments of the partition's log")
        out.extend(segments)
        if len(self._partition_labels) > len(logs):  # topics were deleted: forget their labels
            self._partition_labels = {k: v for k, v in self._partition_labels.items() if k in logs}

    # -- requests, listeners ------------------------------------------------------------

    def _write_requests(self, out: Exposition) -> None:
        requests = self._requests
        keyed = sorted(
            (
                (api_name(key), version, histogram)
                for key, by_version in requests.durations.items()
                for version, histogram in by_version.items()
            ),
            key=lambda item: (item[0], item[1]),
        )
        out.family("shoal_requests_total", "counter", "Requests handled, by API and version")
        for name, version, histogram in keyed:
            labels = label_text((("api", name), ("version", str(version))))
            out.sample("shoal_requests_total", labels, histogram.count)
        out.family(
            "shoal_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to its response being ready, by API and version",
        )
        for name, version, histogram in keyed:
            out.histogram(
                "shoal_request_duration_seconds",
                (("api", name), ("version", str(version))),
                histogram,
            )
        out.family(
            "shoal_request_errors_total",
            "counter",
            "Error codes in responses (each partition's counts), by API and Kafka error name",
        )
        for key, counts in sorted(requests.errors.items()):
            for code, count in sorted(counts.items()):
                labels = label_text((("api", api_name(key)), ("error", error_name(code))))
                out.sample("shoal_request_errors_total", labels, count)
        out.family(
            "shoal_throttle_time_seconds_total",
            "counter",
            "Throttle time given to clients by quotas, by API",
        )
        for key, millis in sorted(requests.throttle_ms.items()):
            labels = label_text((("api", api_name(key)),))
            out.sample("shoal_throttle_time_seconds_total", labels, millis / 1000)
        out.family(
            "shoal_throttled_responses_total", "counter", "Responses that carried a throttle"
        )
        for key, count in sorted(requests.throttled.items()):
            out.sample(
                "shoal_throttled_responses_total", label_text((("api", api_name(key)),)), count
            )

    def _write_listeners(self, out: Exposition) -> None:
        listeners = sorted(self._listeners.items())
        rows: list[tuple[str, str, str, Callable[[KafkaServer], int]]] = [
            ("shoal_connections", "gauge", "Open client connections", lambda s: s.connection_count),
            (
                "shoal_connections_accepted_total",
                "counter",
                "Client connections accepted",
                lambda s: s.stats.connections_accepted,
            ),
            (
                "shoal_requests_in_flight",
                "gauge",
                "Requests read and not yet answered",
                lambda s: s.requests_in_flight,
            ),
            (
                "shoal_authentication_successes_total",
                "counter",
                "Connections that authenticated (SASL)",
                lambda s: s.stats.authentication_successes,
            ),
            (
                "shoal_authentication_failures_total",
                "counter",
                "Failed SASL authentications and refused TLS client certificates",
                lambda s: s.stats.authentication_failures,
            ),
        ]
        for name, kind, help_text, read in rows:
            out.family(name, kind, f"{help_text}, by listener")
            for listener, server in listeners:
                out.sample(name, label_text((("listener", listener),)), read(server))

    # -- traffic, storage, registry ------------------------------------------------------

    def _write_traffic(self, out: Exposition) -> None:
        stats = self._broker.stats
        traffic = sorted(stats.topics.items())
        rows = (
            ("shoal_topic_bytes_in_total", "Bytes appended to the topic", "bytes_in"),
            ("shoal_topic_records_in_total", "Records appended to the topic", "records_in"),
            ("shoal_topic_bytes_out_total", "Record bytes sent to consumers", "bytes_out"),
            ("shoal_topic_records_out_total", "Records sent to consumers", "records_out"),
        )
        for name, help_text, attribute in rows:
            out.family(name, "counter", f"{help_text}, by topic")
            for topic, figures in traffic:
                out.sample(name, label_text((("topic", topic),)), getattr(figures, attribute))
        out.family(
            "shoal_produce_batch_size_bytes", "histogram", "Size of each record batch appended"
        )
        out.histogram("shoal_produce_batch_size_bytes", (), stats.produce_batch_bytes)
        out.family(
            "shoal_fetch_wait_seconds",
            "histogram",
            "Time each Fetch long-polled for min_bytes (0 when answered at once)",
        )
        out.histogram("shoal_fetch_wait_seconds", (), stats.fetch_wait_s)
        out.family(
            "shoal_fetch_reads_off_loop_total",
            "counter",
            "Fetches whose records were not in the page cache and were read on a worker thread",
        )
        out.sample("shoal_fetch_reads_off_loop_total", "", stats.fetch_reads_off_loop)

    def _write_storage(self, out: Exposition) -> None:
        logs = self._broker.logs
        stats = logs.stats
        out.family(
            "shoal_fsync_duration_seconds",
            "histogram",
            "Time of each log flush that fsynced (group commit)",
        )
        out.histogram("shoal_fsync_duration_seconds", (), stats.flush.fsync_duration_s)
        out.family(
            "shoal_fsync_batches",
            "histogram",
            "Record batches made durable by each log flush (how well group commit amortises)",
        )
        out.histogram("shoal_fsync_batches", (), stats.flush.batches_per_fsync)
        out.family(
            "shoal_log_directory_failed",
            "gauge",
            "1 when an I/O error made the data directory read-only (restart after fixing it)",
        )
        out.sample("shoal_log_directory_failed", "", int(logs.health.failure is not None))
        out.family("shoal_log_offline_partitions", "gauge", "Partitions recovery refused to open")
        out.sample("shoal_log_offline_partitions", "", len(logs.offline))
        retention = stats.retention
        for name, help_text, value in (
            ("shoal_retention_runs_total", "Retention passes over every log", retention.runs),
            (
                "shoal_retention_segments_deleted_total",
                "Segments deleted by retention",
                retention.segments_deleted,
            ),
            (
                "shoal_retention_seconds_total",
                "Time spent in retention passes",
                retention.duration_s,
            ),
        ):
            out.family(name, "counter", help_text)
            out.sample(name, "", value)
        self._write_cleaner(out)

    def _write_cleaner(self, out: Exposition) -> None:
        """Log compaction: what the cleaner thread did, and how dirty each compacted partition
        is (Kafka publishes its cleaner's state only as broker metrics, never in a protocol
        API; ``shoal topic describe`` reads the dirty ratio from here). Counters stay 0 when
        the cleaner is off (``log_cleaner_enable``), so dashboards keep their series.

        The cleaner thread writes these numbers; the dicts are copied whole (one C-level
        operation under the GIL) so the scrape never sees one change size under it.
        """
        cleaner = self._broker.logs.cleaner
        metrics = cleaner.metrics if cleaner is not None else CleanerMetrics()
        totals = metrics.totals
        for name, help_text, value in (
            ("shoal_cleaner_runs_total", "Log cleaner passes (compaction)", metrics.cleans),
            ("shoal_cleaner_read_bytes_total", "Bytes the log cleaner read", totals.bytes_read),
            (
                "shoal_cleaner_written_bytes_total",
                "Bytes the log cleaner wrote",
                totals.bytes_written,
            ),
            (
                "shoal_cleaner_records_removed_total",
                "Records the log cleaner removed",
                totals.records_read - totals.records_kept,
            ),
            ("shoal_cleaner_seconds_total", "Time spent cleaning logs", metrics.seconds_total),
        ):
            out.family(name, "counter", help_text)
            out.sample(name, "", value)
        ratios = dict(metrics.dirty_ratio)
        out.family(
            DIRTY_RATIO_FAMILY,
            "gauge",
            "Dirty bytes over cleanable bytes of a compacted partition, at the cleaner's last look",
        )
        for log_name, ratio in sorted(ratios.items()):
            topic, _, partition = log_name.rpartition("-")
            if topic and partition.isdigit():
                labels = label_text((("topic", topic), ("partition", partition)))
                out.sample(DIRTY_RATIO_FAMILY, labels, ratio)
        last_clean_s = metrics.last_clean_time_ms / 1000 if metrics.last_clean_time_ms >= 0 else 0
        for name, help_text, value in (
            (
                "shoal_log_cleaner_max_dirty_ratio",
                "The highest dirty ratio of any compacted partition",
                max(ratios.values(), default=0.0),
            ),
            (
                "shoal_log_cleaner_uncleanable_partitions",
                "Partitions the cleaner left alone after a failed clean",
                len(dict(metrics.uncleanable)),
            ),
            (
                "shoal_log_cleaner_last_clean_timestamp_seconds",
                "When the last clean finished (Unix time; 0 before the first)",
                last_clean_s,
            ),
        ):
            out.family(name, "gauge", help_text)
            out.sample(name, "", value)

    def _write_registry(self, out: Exposition) -> None:
        registry = self._registry
        out.family(
            "shoal_registry_requests_total",
            "counter",
            "Schema registry HTTP requests, by method and status code",
        )
        for (method, code), count in sorted(registry.requests.items()):
            labels = label_text((("method", method), ("code", str(code))))
            out.sample("shoal_registry_requests_total", labels, count)
        out.family(
            "shoal_registry_request_duration_seconds",
            "histogram",
            "Time to answer a schema registry HTTP request",
        )
        out.histogram("shoal_registry_request_duration_seconds", (), registry.duration_s)
