"""The figures and lines of Kafka's perf tools, computed from latencies and counts (no I/O).

``kafka-producer-perf-test`` prints, every few seconds and at the end::

    5000 records sent, 999.8 records/sec (0.10 MB/sec), 2.3 ms avg latency, 9.0 ms max latency.
    50000 records sent, 999.900002 records/sec (0.10 MB/sec), 2.31 ms avg latency, 19.00 ms max
    latency, 2 ms 50th, 4 ms 95th, 7 ms 99th, 12 ms 99.9th.

(the second on one line); percentiles are whole milliseconds taken at index ``p * n`` of the
sorted latencies, as Kafka's ``ProducerPerformance.percentiles`` does. ``kafka-consumer-perf-test``
prints a header and one line of comma-separated values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

PERCENTILES = (0.5, 0.95, 0.99, 0.999)
MIB = 1024 * 1024
CONSUMER_HEADER = (
    "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
    "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
)


def kafka_percentiles(latencies_ms: list[int], fractions: tuple[float, ...]) -> list[int]:
    """Kafka's percentiles: the value at index ``int(p * n)`` of the sorted latencies."""
    ordered = sorted(latencies_ms)
    if not ordered:
        return [0 for _ in fractions]
    return [ordered[min(int(p * len(ordered)), len(ordered) - 1)] for p in fractions]


@dataclass
class ProgressWindow:
    """Records, bytes and latencies since the last progress line."""

    count: int = 0
    bytes: int = 0
    latency_sum_ms: int = 0
    latency_max_ms: int = 0

    def add(self, latency_ms: int, size: int) -> None:
        self.count += 1
        self.bytes += size
        self.latency_sum_ms += latency_ms
        self.latency_max_ms = max(self.latency_max_ms, latency_ms)


def rates(count: int, size_bytes: int, elapsed_s: float) -> tuple[float, float]:
    """(records/s, MB/s), with Kafka's MB of 2^20 bytes."""
    elapsed_s = max(elapsed_s, 1e-3)  # Kafka divides by whole ms; never by zero
    return count / elapsed_s, size_bytes / elapsed_s / MIB


def window_line(window: ProgressWindow, elapsed_s: float) -> str:
    per_s, mb_s = rates(window.count, window.bytes, elapsed_s)
    avg = window.latency_sum_ms / window.count if window.count else 0.0
    return (
        f"{window.count} records sent, {per_s:.1f} records/sec ({mb_s:.2f} MB/sec), "
        f"{avg:.1f} ms avg latency, {float(window.latency_max_ms):.1f} ms max latency."
    )


@dataclass
class ProducerTotals:
    latencies_ms: list[int] = field(default_factory=list)
    bytes: int = 0

    def add(self, latency_ms: int, size: int) -> None:
        self.latencies_ms.append(latency_ms)
        self.bytes += size

    def summary(self, elapsed_s: float) -> dict[str, float]:
        count = len(self.latencies_ms)
        per_s, mb_s = rates(count, self.bytes, elapsed_s)
        p50, p95, p99, p999 = kafka_percentiles(self.latencies_ms, PERCENTILES)
        return {
            "records": count,
            "records_per_sec": per_s,
            "mb_per_sec": mb_s,
            "avg_latency_ms": sum(self.latencies_ms) / count if count else 0.0,
            "max_latency_ms": float(max(self.latencies_ms, default=0)),
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
            "p999_ms": p999,
        }


def total_line(summary: dict[str, float]) -> str:
    return (
        f"{int(summary['records'])} records sent, {summary['records_per_sec']:f} records/sec "
        f"({summary['mb_per_sec']:.2f} MB/sec), {summary['avg_latency_ms']:.2f} ms avg latency, "
        f"{summary['max_latency_ms']:.2f} ms max latency, {int(summary['p50_ms'])} ms 50th, "
        f"{int(summary['p95_ms'])} ms 95th, {int(summary['p99_ms'])} ms 99th, "
        f"{int(summary['p999_ms'])} ms 99.9th."
    )


def _when(epoch_s: float) -> str:
    # kafka-consumer-perf-test's default --date-format: yyyy-MM-dd HH:mm:ss:SSS
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S:") + f"{moment.microsecond // 1000:03d}"


def consumer_line(
    *,
    start_s: float,
    end_s: float,
    records: int,
    size_bytes: int,
    rebalance_ms: float,
) -> tuple[str, dict[str, float]]:
    """The values line of kafka-consumer-perf-test, and the same figures for JSON."""
    elapsed_s = end_s - start_s
    mb = size_bytes / MIB
    fetch_ms = max(elapsed_s * 1000 - rebalance_ms, 0.0)
    per_s, mb_s = rates(records, size_bytes, elapsed_s)
    fetch_per_s, fetch_mb_s = rates(records, size_bytes, fetch_ms / 1000)
    figures = {
        "data_consumed_mb": mb,
        "mb_per_sec": mb_s,
        "records": records,
        "records_per_sec": per_s,
        "rebalance_time_ms": rebalance_ms,
        "fetch_time_ms": fetch_ms,
        "fetch_mb_per_sec": fetch_mb_s,
        "fetch_records_per_sec": fetch_per_s,
    }
    line = (
        f"{_when(start_s)}, {_when(end_s)}, {mb:.4f}, {mb_s:.4f}, {records}, {per_s:.4f}, "
        f"{int(rebalance_ms)}, {int(fetch_ms)}, {fetch_mb_s:.4f}, {fetch_per_s:.4f}"
    )
    return line, figures


class Throttle:
    """Holds a sender to ``per_s`` records per second (Kafka's ThroughputThrottler: sleep
    when ahead of the schedule); ``per_s`` <= 0 means no limit."""

    def __init__(self, per_s: float) -> None:
        self.per_s = per_s
        self._start: float | None = None

    def delay_s(self, sent: int, now_s: float) -> float:
        """How long to wait before sending record number ``sent`` (0-based)."""
        if self.per_s <= 0:
            return 0.0
        if self._start is None:
            self._start = now_s
        due = self._start + sent / self.per_s
        return max(due - now_s, 0.0)
