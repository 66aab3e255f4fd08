"""Prometheus instruments of an App: what it processed, failed, retried, dead-lettered, and lag.

Each App owns a :class:`CollectorRegistry` of its own (not prometheus_client's global one), so
two Apps in one process, or one per test, never register the same metric name twice.

The framework aims at 100k records a second, and prometheus_client's own Counter and Histogram
take a lock per increment (a histogram observation costs about a microsecond, several per
record add up to a good part of a core at that rate). So the figures are plain Python numbers
kept per (subscriber, topic) in slotted objects, and turned into metric families only when
scraped, by a custom collector. They are written from the App's event-loop thread only (the
handlers, the lag task and the /metrics endpoint all run there), so they need no lock.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

DURATION_BUCKETS_S: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""From 100 µs (a handler that only transforms and returns) to 10 s (a slow downstream call);
anything slower lands in +Inf, which is an answer in itself."""

EXCEPTION_TYPES_MAX: Final = 20
"""Distinct exception labels per subscriber. Exception types come from user code and its
libraries; a handler raising a new class per input must not grow the series without bound."""
OTHER_EXCEPTION: Final = "other"

BREAKER_STATES: Final = {"closed": 0, "open": 1, "half_open": 2}
"""One gauge value per breaker: a dashboard plots a single line and alerts on ``> 0``."""

_SUBSCRIBER_LABELS: Final = ("subscriber", "topic")


def exception_label(exc: BaseException) -> str:
    """``ValueError`` for builtins, ``module.Qualname`` otherwise (as the DLQ header says)."""
    kind = type(exc)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


class _Series:
    """The figures of one (subscriber, topic)."""

    __slots__ = ("buckets", "dead_lettered", "duplicates", "duration_sum_s", "processed", "retried")

    def __init__(self) -> None:
        self.processed = 0
        self.retried = 0
        self.dead_lettered = 0
        self.duplicates = 0
        self.duration_sum_s = 0.0
        # Not cumulative (one count per bucket, +Inf last); summed up when scraped.
        self.buckets = [0] * (len(DURATION_BUCKETS_S) + 1)

    def observe(self, duration_s: float) -> None:
        """A completed record that spent ``duration_s`` in its handler."""
        self.processed += 1
        self.duration_sum_s += duration_s
        # bisect_left: the first bound >= duration, which is Prometheus' "le" (less or equal).
        self.buckets[bisect_left(DURATION_BUCKETS_S, duration_s)] += 1


class Instruments:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._series: dict[tuple[str, str], _Series] = {}
        self._failed: dict[tuple[str, str, str], int] = {}
        self._exception_labels: dict[str, set[str]] = {}
        self._published: dict[str, int] = {}
        self._lag: dict[tuple[str, str, str], int] = {}
        self._breakers: dict[str, int] = {}
        self.registry.register(_Collector(self))

    def _for(self, subscriber: str, topic: str) -> _Series:
        series = self._series.get((subscriber, topic))
        if series is None:
            series = self._series[(subscriber, topic)] = _Series()
        return series

    # -- per record -----------------------------------------------------------------------------

    def processed(self, subscriber: str, topic: str, duration_s: float) -> None:
        self._for(subscriber, topic).observe(duration_s)

    def processed_by(self, subscriber: str) -> Callable[[str, float], None]:
        """:meth:`processed` for one subscriber, ``(topic, duration_s)``: its series found once
        per topic rather than by a (subscriber, topic) key per record."""
        series_of: dict[str, _Series] = {}

        def processed(topic: str, duration_s: float) -> None:
            series = series_of.get(topic)
            if series is None:
                series = series_of[topic] = self._for(subscriber, topic)
            series.observe(duration_s)

        return processed

    def published(self, topic: str) -> None:
        self._published[topic] = self._published.get(topic, 0) + 1

    def failed(self, subscriber: str, topic: str, exc: BaseException) -> None:
        label = exception_label(exc)
        seen = self._exception_labels.setdefault(subscriber, set())
        if label not in seen:
            if len(seen) >= EXCEPTION_TYPES_MAX:
                label = OTHER_EXCEPTION
            else:
                seen.add(label)
        key = (subscriber, topic, label)
        self._failed[key] = self._failed.get(key, 0) + 1

    def retried(self, subscriber: str, topic: str) -> None:
        self._for(subscriber, topic).retried += 1

    def dead_lettered(self, subscriber: str, topic: str) -> None:
        self._for(subscriber, topic).dead_lettered += 1

    def duplicate(self, subscriber: str, topic: str) -> None:
        """An idempotent subscriber skipped a record it had already processed."""
        self._for(subscriber, topic).duplicates += 1

    # -- periodic gauges ------------------------------------------------------------------------

    def breaker_state(self, breaker: str, state: str) -> None:
        value = BREAKER_STATES.get(state)
        if value is None:
            raise ValueError(f"unknown breaker state {state!r}: one of {sorted(BREAKER_STATES)}")
        self._breakers[breaker] = value

    def lag(self, group: str, topic: str, partition: int, lag: int) -> None:
        self._lag[(group, topic, str(partition))] = lag

    def forget_lag(self, group: str, topic: str, partition: int) -> None:
        """Drop the series of a partition this app no longer owns (after a rebalance), so a
        stale figure does not stay on a dashboard while another member reports the real one."""
        self._lag.pop((group, topic, str(partition)), None)

    # -- exposition -----------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The text exposition format for ``/metrics``: (body, content type)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def families(self) -> Iterator[Metric]:
        """The metric families as of now (what a scrape sees)."""
        processed = CounterMetricFamily(
            "shoal_messages_processed", "Records whose handler completed", labels=_SUBSCRIBER_LABELS
        )
        retried = CounterMetricFamily(
            "shoal_messages_retried",
            "Records delivered again after a failure",
            labels=_SUBSCRIBER_LABELS,
        )
        dead = CounterMetricFamily(
            "shoal_messages_dead_lettered",
            "Records that failed for good and went to the dead-letter topic",
            labels=_SUBSCRIBER_LABELS,
        )
        duplicates = CounterMetricFamily(
            "shoal_messages_duplicate",
            "Records an idempotent subscriber skipped as already processed (not in processed)",
            labels=_SUBSCRIBER_LABELS,
        )
        duration = HistogramMetricFamily(
            "shoal_handler_duration_seconds",
            "Time in the handler for a completed record",
            labels=_SUBSCRIBER_LABELS,
        )
        bounds = [*(repr(float(b)) for b in DURATION_BUCKETS_S), "+Inf"]
        for (subscriber, topic), s in list(self._series.items()):
            labels = [subscriber, topic]
            processed.add_metric(labels, s.processed)
            retried.add_metric(labels, s.retried)
            dead.add_metric(labels, s.dead_lettered)
            duplicates.add_metric(labels, s.duplicates)
            cumulative, total = [], 0
            for bound, count in zip(bounds, s.buckets, strict=True):
                total += count
                cumulative.append((bound, float(total)))
            duration.add_metric(labels, cumulative, s.duration_sum_s)
        yield from (processed, retried, dead, duplicates, duration)

        failed = CounterMetricFamily(
            "shoal_messages_failed",
            "Handler deliveries that raised (each attempt counts)",
            labels=(*_SUBSCRIBER_LABELS, "exception"),
        )
        for key, count in list(self._failed.items()):
            failed.add_metric(list(key), count)
        yield failed

        published = CounterMetricFamily(
            "shoal_messages_published", "Records the app published", labels=("topic",)
        )
        for topic, count in list(self._published.items()):
            published.add_metric([topic], count)
        yield published

        lag = GaugeMetricFamily(
            "shoal_consumer_lag",
            "Records not yet committed by the group, per partition",
            labels=("group", "topic", "partition"),
        )
        for key, value in list(self._lag.items()):
            lag.add_metric(list(key), value)
        yield lag

        breakers = GaugeMetricFamily(
            "shoal_breaker_state",
            "Circuit breaker state: 0 closed, 1 open, 2 half-open",
            labels=("breaker",),
        )
        for name, value in list(self._breakers.items()):
            breakers.add_metric([name], value)
        yield breakers


class _Collector(Collector):
    def __init__(self, instruments: Instruments) -> None:
        self._instruments = instruments

    def collect(self) -> Iterator[Metric]:
        return self._instruments.families()
