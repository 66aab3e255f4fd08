"""Fixed-bucket histograms, and why the broker keeps plain numbers rather than prometheus-client.

The broker counts on its hot paths (every request, every appended batch, every fsync), so an
observation must cost a few attribute writes: prometheus-client's Counter and Histogram take a
lock per increment and its label lookup builds a tuple per call. Here a counter is a plain
``int`` in a dict or a slotted object, bumped by the one thread that owns it (the event loop;
the flusher's workers, under a lock, for fsyncs), and a histogram is a list of per-bucket
counts found with one ``bisect``. Nothing is allocated per observation. The scrape (rare, on
the event loop) turns the numbers into text with :class:`~shoal.metrics.exposition.Exposition`,
written by hand because generating the text directly is several times faster than building
prometheus-client's sample objects for every partition and group (the scrape goal is 1,000
partitions and 100 groups in well under 100 ms). A reader on another thread may see a histogram
mid-update; the writer then derives ``_count`` from the buckets it writes, so one exposition is
always self-consistent.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence


def bucket_bounds(first: float, factor: float, count: int) -> tuple[float, ...]:
    """``count`` upper bounds growing by ``factor`` from ``first`` (Prometheus' exponential
    buckets), rounded so they print short."""
    return tuple(round(first * factor**i, 9) for i in range(count))


class Histogram:
    """Counts of observations per bucket (not cumulative; +Inf last) and their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        """Upper bounds, ascending: Prometheus' ``le`` (less than or equal)."""
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: the first bound >= value, which is "le".
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)
