"""Stream processing in the framework: event-time windows with watermarks and allowed
lateness (:mod:`.aggregate`, :mod:`.windows`), tables backed by a compacted changelog topic
(:mod:`.table`), and a processor that keeps both exact across restarts and rebalances
(:mod:`.processor`)."""

from shoal.app.streams.aggregate import Aggregation, Result, Step, WindowedAggregator
from shoal.app.streams.windows import Hopping, Session, Tumbling, Window

__all__ = [
    "Aggregation",
    "Hopping",
    "Result",
    "Session",
    "Step",
    "Tumbling",
    "Window",
    "WindowedAggregator",
]
