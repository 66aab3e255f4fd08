"""A rate over sampled windows, and the throttle time that brings it back to a quota, as Kafka
measures them (``org.apache.kafka.common.metrics.stats.Rate`` over a ``WindowedSum``, and
``QuotaUtils.throttleTime``).

The rate keeps ``samples`` windows of ``window_ms`` each (Kafka's ``quota.window.num`` = 11 and
``quota.window.size.seconds`` = 1). A sample older than all of them together is reset before it
is read. The rate is the sum of the kept samples over the time they span, where a young sensor
counts as if it had been running for ``samples - 1`` whole windows already: a client's first
burst is therefore spread over about ten seconds, not divided by the few milliseconds since it
connected.

Times are milliseconds given by the caller (an injected clock): nothing here reads a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

MIN_WINDOW_MS: Final = 1
"""A rate measured at the very start of a sample would divide by zero; Kafka floors it here."""


@dataclass(frozen=True, slots=True)
class RateConfig:
    samples: int = 11
    """quota.window.num: the windows a rate spans."""
    window_ms: int = 1000
    """quota.window.size.seconds in milliseconds: the length of one window."""

    def __post_init__(self) -> None:
        if self.samples < 1 or self.window_ms < 1:
            raise ValueError("a rate needs at least one window of at least 1 ms")


class _Sample:
    __slots__ = ("event_count", "last_event_ms", "start_ms", "value")

    def __init__(self, now_ms: int) -> None:
        self.value = 0.0
        self.event_count = 0
        self.start_ms = now_ms
        self.last_event_ms = now_ms

    def reset(self, now_ms: int) -> None:
        self.value = 0.0
        self.event_count = 0
        self.start_ms = now_ms
        self.last_event_ms = now_ms


class SampledRate:
    """Kafka's ``Rate`` (per second) of the values recorded, over sampled windows."""

    __slots__ = ("_config", "_current", "_samples")

    def __init__(self, config: RateConfig) -> None:
        self._config = config
        # One slot more than the windows: the sample that overlaps the start of the measured
        # span is kept until it is wholly out of it (Kafka's "overlapping sample").
        self._samples: list[_Sample] = []
        self._current = 0

    def record(self, value: float, now_ms: int) -> None:
        sample = self._current_sample(now_ms)
        if now_ms - sample.start_ms >= self._config.window_ms:
            sample = self._advance(now_ms)
        sample.value += value
        sample.event_count += 1
        sample.last_event_ms = now_ms

    def _current_sample(self, now_ms: int) -> _Sample:
        if not self._samples:
            self._samples.append(_Sample(now_ms))
        return self._samples[self._current]

    def _advance(self, now_ms: int) -> _Sample:
        self._current = (self._current + 1) % (self._config.samples + 1)
        if self._current >= len(self._samples):
            sample = _Sample(now_ms)
            self._samples.append(sample)
            return sample
        sample = self._samples[self._current]
        sample.reset(now_ms)
        return sample

    def _purge(self, now_ms: int) -> None:
        expire_ms = self._config.samples * self._config.window_ms
        for sample in self._samples:
            if now_ms - sample.last_event_ms >= expire_ms:
                sample.reset(now_ms)

    def window_ms(self, now_ms: int) -> int:
        """The span the rate is measured over (Kafka's ``Rate.windowSize``)."""
        self._purge(now_ms)
        if not self._samples:
            self._samples.append(_Sample(now_ms))
        oldest = min(sample.start_ms for sample in self._samples)
        elapsed_ms = now_ms - oldest
        full_windows = elapsed_ms // self._config.window_ms
        min_full_windows = self._config.samples - 1
        if full_windows < min_full_windows:
            elapsed_ms += (min_full_windows - full_windows) * self._config.window_ms
        return max(elapsed_ms, MIN_WINDOW_MS)

    def measure(self, now_ms: int) -> float:
        """The rate per second at ``now_ms``."""
        window_ms = self.window_ms(now_ms)  # purges first, as Kafka's measure does
        total = sum(sample.value for sample in self._samples)
        return total / (window_ms / 1000.0)

    def idle_since_ms(self) -> int:
        """When a value was last recorded (or the rate created)."""
        return max((sample.last_event_ms for sample in self._samples), default=0)


def throttle_time_ms(rate: SampledRate, bound: float, now_ms: int) -> int:
    """How long the client must stay silent for ``rate`` to come back down to ``bound``;
    0 while it is within it.

    If O is the observed rate over a window W and T the quota, waiting X more makes
    O * W / (W + X) = T, so X = (O - T) / T * W (Kafka's ``QuotaUtils.throttleTime``).
    """
    observed = rate.measure(now_ms)
    if observed <= bound:
        return 0
    # Java's Math.round: halves go up (Python's round() would go to even).
    return math.floor((observed - bound) / bound * rate.window_ms(now_ms) + 0.5)


class TokenBucket:
    """Kafka's ``TokenBucket`` (KIP-599, ``controller_mutation_rate``): credits refill at the
    quota's rate up to a burst of ``samples`` windows' worth; a mutation takes its count.

    Kafka's bucket starts at epoch 0 and so is full at its first use; this one starts full.
    """

    __slots__ = ("_config", "_last_ms", "tokens")

    def __init__(self, config: RateConfig, bound: float, now_ms: int) -> None:
        self._config = config
        self.tokens = self._burst(bound)
        self._last_ms = now_ms

    def _burst(self, bound: float) -> float:
        return self._config.samples * self._config.window_ms / 1000.0 * bound

    def measure(self, bound: float, now_ms: int) -> float:
        """The credits left at ``now_ms`` (negative: overdrawn)."""
        self._refill(bound, now_ms)
        return self.tokens

    def record(self, value: float, bound: float, now_ms: int) -> None:
        self._refill(bound, now_ms)
        self.tokens = min(self._burst(bound), self.tokens - value)

    def _refill(self, bound: float, now_ms: int) -> None:
        elapsed_s = max(now_ms - self._last_ms, 0) / 1000.0
        self.tokens = min(self._burst(bound), self.tokens + bound * elapsed_s)
        self._last_ms = now_ms

    def idle_since_ms(self) -> int:
        return self._last_ms


def bucket_throttle_time_ms(tokens: float, bound: float) -> int:
    """How long until an overdrawn bucket is back at zero: -tokens / rate (Kafka's
    ``ControllerMutationQuotaManager.throttleTimeMs``); 0 when not overdrawn."""
    if tokens >= 0:
        return 0
    return math.floor(-tokens / bound * 1000 + 0.5)
