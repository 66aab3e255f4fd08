"""Counters the broker keeps about its own work, read by the metrics endpoint.

Plain integers bumped on the event loop thread (no locks): a scrape runs on the same loop.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class BrokerStats:
    fetch_reads_off_loop: int = 0
    """Fetches whose records were not all in the page cache, so were read on a worker thread
    rather than on the event loop (a consumer catching up from cold segments)."""
