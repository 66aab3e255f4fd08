"""Retry policy: in place with exponential backoff and full jitter, or through retry topics.

In place, a failed record is retried by the same consumer after a delay, holding its key's
lane (and with concurrency 1 its partition) meanwhile: right for short transient failures.
With ``topics`` (the delays, in milliseconds, of ``<topic>.retry.1``, ``.retry.2``, ...), a
failed record is republished to the next retry topic and the consumer moves on at once; a
consumer of that retry topic delivers it again once its delay has passed. Other records are
never blocked, at the price of per-key order for the records that failed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from shoal.invariant import invariant

RETRY_TOPIC_INFIX = ".retry."
MAX_ATTEMPTS_MAX = 1000
"""An in-place retry holds its partition; beyond this the caller wants retry topics, not this."""


def retry_topic(topic: str, n: int) -> str:
    """``<topic>.retry.<n>``: the topic that carries delivery n+1 of a record of ``topic``."""
    return f"{topic}{RETRY_TOPIC_INFIX}{n}"


@dataclass(frozen=True, slots=True)
class Retry:
    """``max_attempts`` counts every delivery, the first included: 1 means no retry.

    The defaults are short on purpose: a poison message reaches the DLQ within about a second
    instead of stalling its partition.
    """

    max_attempts: int = 3
    base_delay_ms: int = 100
    max_delay_ms: int = 2_000
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    topics: tuple[int, ...] = ()
    """Delays (ms) of the retry topics; delivery n+1 happens on ``<topic>.retry.<n>``."""
    queue_limit_below_ok: bool = False
    """Queue mode only: start even when the queue gives a record up after fewer deliveries than
    ``max_attempts`` (Kafka's ``share.delivery.count.limit``), with a warning instead of the
    refusal; such records are then archived by the broker, not dead-lettered."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS_MAX:
            raise ValueError(f"max_attempts must be in 1..{MAX_ATTEMPTS_MAX}")
        if self.base_delay_ms < 0 or self.max_delay_ms < self.base_delay_ms:
            raise ValueError("need 0 <= base_delay_ms <= max_delay_ms")
        if self.topics:
            if any(d < 0 for d in self.topics):
                raise ValueError("retry topic delays must be >= 0 ms")
            if len(self.topics) != self.max_attempts - 1:
                raise ValueError(
                    f"with {len(self.topics)} retry topics a record is delivered at most "
                    f"{len(self.topics) + 1} times: set max_attempts={len(self.topics) + 1}"
                )

    @classmethod
    def with_topics(
        cls, *delays_ms: int, retry_on: tuple[type[BaseException], ...] = (Exception,)
    ) -> Retry:
        """Retry through one topic per delay: ``Retry.with_topics(1_000, 10_000, 60_000)``."""
        return cls(max_attempts=len(delays_ms) + 1, retry_on=retry_on, topics=tuple(delays_ms))

    def retry_topic(self, attempt: int) -> int | None:
        """After failed delivery ``attempt``, the number of the retry topic that carries the
        next one (1-based), or None when retries happen in place."""
        return attempt if self.topics else None

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """After failed delivery number ``attempt`` (1-based), is there another one?"""
        return attempt < self.max_attempts and isinstance(exc, self.retry_on)

    def ceiling_ms(self, attempt: int) -> int:
        """The upper bound of the wait after failed delivery ``attempt``: base * 2^(attempt-1)."""
        invariant(attempt >= 1, "attempts count from 1")
        # Cap the exponent so a large attempt count cannot build a huge integer.
        return min(self.max_delay_ms, self.base_delay_ms * (1 << min(attempt - 1, 62)))

    def delay_ms(self, attempt: int, rng: random.Random) -> float:
        """Full jitter (AWS architecture blog): uniform over [0, ceiling], which spreads the
        retries of many consumers that failed together instead of having them retry in step."""
        return rng.uniform(0, self.ceiling_ms(attempt))
