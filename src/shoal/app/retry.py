"""In-place retry policy: exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

from shoal.invariant import invariant

MAX_ATTEMPTS_MAX = 1000
"""An in-place retry holds its partition; beyond this the caller wants retry topics, not this."""


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

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS_MAX:
            raise ValueError(f"max_attempts must be in 1..{MAX_ATTEMPTS_MAX}")
        if self.base_delay_ms < 0 or self.max_delay_ms < self.base_delay_ms:
            raise ValueError("need 0 <= base_delay_ms <= max_delay_ms")

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
