"""Prometheus instruments of an App: what it processed, failed, retried, dead-lettered, and lag.

Each App owns a :class:`CollectorRegistry` of its own (not prometheus_client's global one), so
two Apps in one process, or one per test, never register the same metric name twice.

The framework aims at 100k records a second, so the per-record calls are kept to a dict lookup
and one or two increments: the labelled children of each (subscriber, topic) are bound once
and cached, because ``Counter.labels(...)`` validates and hashes its labels on every call.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

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


def exception_label(exc: BaseException) -> str:
    """``ValueError`` for builtins, ``module.Qualname`` otherwise (as the DLQ header says)."""
    kind = type(exc)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


class _Bound:
    """The children of one (subscriber, topic), bound once and reused for every record."""

    __slots__ = ("dead_lettered", "duration", "processed", "retried")

    def __init__(self, instruments: Instruments, subscriber: str, topic: str) -> None:
        self.processed = instruments.processed_total.labels(subscriber, topic)
        self.duration = instruments.duration_seconds.labels(subscriber, topic)
        self.retried = instruments.retried_total.labels(subscriber, topic)
        self.dead_lettered = instruments.dead_lettered_total.labels(subscriber, topic)


class Instruments:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        by_sub = ("subscriber", "topic")
        r = self.registry
        self.processed_total = Counter(
            "shoal_messages_processed_total",
            "Records whose handler completed",
            by_sub,
            registry=r,
        )
        self.failed_total = Counter(
            "shoal_messages_failed_total",
            "Handler deliveries that raised (each attempt counts)",
            (*by_sub, "exception"),
            registry=r,
        )
        self.retried_total = Counter(
            "shoal_messages_retried_total",
            "Records delivered again after a failure",
            by_sub,
            registry=r,
        )
        self.dead_lettered_total = Counter(
            "shoal_messages_dead_lettered_total",
            "Records that failed for good and went to the dead-letter topic",
            by_sub,
            registry=r,
        )
        self.duration_seconds = Histogram(
            "shoal_handler_duration_seconds",
            "Time in the handler for a completed record",
            by_sub,
            buckets=DURATION_BUCKETS_S,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "shoal_consumer_lag",
            "Records not yet committed by the group, per partition",
            ("group", "topic", "partition"),
            registry=r,
        )
        self.breaker_state_gauge = Gauge(
            "shoal_breaker_state",
            "Circuit breaker state: 0 closed, 1 open, 2 half-open",
            ("breaker",),
            registry=r,
        )
        self.published_total = Counter(
            "shoal_messages_published_total",
            "Records the app published",
            ("topic",),
            registry=r,
        )
        self._bound: dict[tuple[str, str], _Bound] = {}
        self._failed: dict[tuple[str, str, str], Counter] = {}
        self._exception_labels: dict[str, set[str]] = {}
        self._published: dict[str, Counter] = {}

    def _for(self, subscriber: str, topic: str) -> _Bound:
        bound = self._bound.get((subscriber, topic))
        if bound is None:
            bound = self._bound[(subscriber, topic)] = _Bound(self, subscriber, topic)
        return bound

    # -- the hot path ---------------------------------------------------------------------------

    def processed(self, subscriber: str, topic: str, duration_s: float) -> None:
        bound = self._for(subscriber, topic)
        bound.processed.inc()
        bound.duration.observe(duration_s)

    def published(self, topic: str) -> None:
        child = self._published.get(topic)
        if child is None:
            child = self._published[topic] = self.published_total.labels(topic)
        child.inc()

    # -- failures (rarer; still cached) -----------------------------------------------------------

    def failed(self, subscriber: str, topic: str, exc: BaseException) -> None:
        label = exception_label(exc)
        child = self._failed.get((subscriber, topic, label))
        if child is None:
            child = self._failed_child(subscriber, topic, label)
        child.inc()

    def _failed_child(self, subscriber: str, topic: str, label: str) -> Counter:
        seen = self._exception_labels.setdefault(subscriber, set())
        if label not in seen:
            if len(seen) >= EXCEPTION_TYPES_MAX:
                # Not cached under ``label``: the cache would then grow without bound instead.
                return self.failed_total.labels(subscriber, topic, OTHER_EXCEPTION)
            seen.add(label)
        child = self._failed[(subscriber, topic, label)] = self.failed_total.labels(
            subscriber, topic, label
        )
        return child

    def retried(self, subscriber: str, topic: str) -> None:
        self._for(subscriber, topic).retried.inc()

    def dead_lettered(self, subscriber: str, topic: str) -> None:
        self._for(subscriber, topic).dead_lettered.inc()

    # -- periodic gauges ------------------------------------------------------------------------

    def breaker_state(self, breaker: str, state: str) -> None:
        value = BREAKER_STATES.get(state)
        if value is None:
            raise ValueError(f"unknown breaker state {state!r}: one of {sorted(BREAKER_STATES)}")
        self.breaker_state_gauge.labels(breaker).set(value)

    def lag(self, group: str, topic: str, partition: int, lag: int) -> None:
        self.consumer_lag.labels(group, topic, str(partition)).set(lag)

    def forget_lag(self, group: str, topic: str, partition: int) -> None:
        """Drop the series of a partition this app no longer owns (after a rebalance), so a
        stale figure does not stay on a dashboard while another member reports the real one."""
        try:
            self.consumer_lag.remove(group, topic, str(partition))
        except KeyError:
            pass

    # -- exposition -----------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The text exposition format for ``/metrics``: (body, content type)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
