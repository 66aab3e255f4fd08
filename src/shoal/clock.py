"""The clock every timer in shoal reads, injected so that tests can move time by hand."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock milliseconds since the epoch (timestamps, retention, segment age)."""
        ...

    def monotonic_ms(self) -> float:
        """Milliseconds from an arbitrary origin that never go backwards (intervals, timeouts)."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_ms(self) -> float:
        return time.monotonic() * 1000.0


SYSTEM_CLOCK = SystemClock()
