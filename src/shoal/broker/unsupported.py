"""Requests for features shoal does not have yet: one clear log line, not one per retry.

The handler answers such a request with a non-retriable error (so the client stops at once);
this says in the broker log which feature was asked for and by whom. A misbehaving client
that keeps asking anyway gets one line per feature per interval, with the count of the
requests refused since the last line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from shoal.broker.context import RequestContext
from shoal.clock import Clock

log = logging.getLogger(__name__)

LOG_INTERVAL_MS: Final = 60_000
"""At most one line per feature per minute: enough to notice, too few to flood the log."""


@dataclass
class _Seen:
    logged_at_ms: float
    suppressed: int = 0


class UnsupportedFeatures:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._seen: dict[str, _Seen] = {}

    def refused(self, feature: str, ctx: RequestContext, advice: str) -> None:
        """Log (rate-limited) that ``feature`` was asked for and refused; ``advice`` tells the
        operator what the client can do instead."""
        now = self._clock.monotonic_ms()
        seen = self._seen.get(feature)
        if seen is not None and now - seen.logged_at_ms < LOG_INTERVAL_MS:
            seen.suppressed += 1
            return
        more = (
            f" ({seen.suppressed} more such requests refused since the last report)"
            if seen is not None and seen.suppressed
            else ""
        )
        log.warning(
            "client %r at %s:%d asked for %s, which this shoal version does not support; "
            "refused with a non-retriable error. %s%s",
            ctx.client_id,
            ctx.client_host,
            ctx.client_port,
            feature,
            advice,
            more,
        )
        self._seen[feature] = _Seen(now)
