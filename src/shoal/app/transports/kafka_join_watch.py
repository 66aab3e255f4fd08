"""A watch on a Kafka consumer's group join, from librdkafka's statistics: it tells when the
consumer is stuck on its way into the group, so the App replaces it with a new one (issue 21).

The stall it catches: librdkafka (classic group protocol) asks for metadata of the subscribed
topics before each JoinGroup and waits in join state ``wait-metadata`` for the answer. When
that Metadata request is lost with its broker (a broker killed while the request is queued or
in flight), the answer never comes and nothing asks again: the consumer polls on, never joins,
and its topics go unread until the periodic metadata refresh (``topic.metadata.refresh.
interval.ms``, 5 minutes by default) happens to unblock it. Seen on a 3-broker Kafka cluster
when a broker was SIGKILLed (the orders example: the refund subscriber never joined its group).

A consumer that is not yet in its group holds no partitions and no uncommitted records, so
replacing it costs a new connection and nothing else.

The watch decides from the statistics alone: a state has lasted from the first report of it to
the latest, never to "now". With a user's ``statistics.interval.ms`` longer than the allowed
time (reports a minute apart), the last report may be a minute old; judging it against the
clock would replace a consumer that joined a moment after that report. Such a consumer is
judged at its next report instead: later, never wrongly.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, Final

STATS_INTERVAL_MS: Final = 1_000
"""How often librdkafka reports its statistics (served from the consumer's own poll calls,
which the App makes continuously): the watch's resolution."""
STALL_S: Final = {"wait-metadata": 15.0}
"""Join states that must not last long, and how many seconds the watch allows each. A
Metadata request answers in milliseconds and librdkafka sends it to a broker it is connected
to; 15 s covers a cluster electing new leaders after a broker loss (a few seconds) several
times over. States that may rightly last long are not watched: ``wait-join`` waits for the
other members of the group, up to their rebalance timeout (``max.poll.interval.ms``)."""

_JOIN_STATE = re.compile(rb'"join_state"\s*:\s*"([a-z-]+)"')
"""Only this field is read: the full statistics (brokers, topics, partitions) can be large,
and parsing them every second for every consumer would be waste."""


class JoinStalled(Exception):
    """The consumer has been in a join state longer than :data:`STALL_S` allows."""


class JoinWatch:
    def __init__(
        self,
        group: str,
        *,
        stall_s: dict[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.group = group
        self._stall_s = STALL_S if stall_s is None else stall_s
        self._clock = clock
        self.join_state: str | None = None
        """The join state the latest statistics reported (None before the first)."""
        self._since = 0.0
        """When the first report of the current state came."""
        self._seen = 0.0
        """When the latest report came."""

    def on_stats(self, stats: str | bytes) -> None:
        """librdkafka's ``stats_cb``: called on the consumer's thread, inside its poll."""
        raw = stats.encode() if isinstance(stats, str) else stats
        found = _JOIN_STATE.search(raw)
        state = found.group(1).decode() if found is not None else None
        now = self._clock()
        if state != self.join_state:
            self.join_state = state
            self._since = now
        self._seen = now

    def check(self) -> None:
        """Raise :class:`JoinStalled` if the consumer is stuck in a watched join state."""
        state = self.join_state
        if state is None:
            return
        allowed_s = self._stall_s.get(state)
        if allowed_s is None:
            return
        # Reported in this state throughout, not merely last reported in it some time ago.
        stuck_s = self._seen - self._since
        if stuck_s > allowed_s:
            raise JoinStalled(
                f"consumer of group {self.group!r} has been in join state {state!r} for "
                f"{stuck_s:.0f} s (at most {allowed_s:.0f} s expected): its Metadata request "
                "was lost with a broker; starting a new consumer"
            )


UNSTARTED_PARTITIONS: Final = "Failed to fetch committed offset"
"""How librdkafka's consumer errors begin when the OffsetFetch for a new assignment failed for
good (``rdkafka_assignment.c``: "Failed to fetch committed offset for group ... topic ...
[N]: ...", "Failed to fetch committed offsets for N partition(s) in group ...", "Failed to
fetch committed offsets for partitions in group ..."). The partitions then stay assigned but
are never started ("only reside on .all until the application unassigns it"), the group stays
stable, and no rebalance asks again: the consumer polls on and reads nothing from them. Seen
possible when the group coordinator is killed while a member that just joined asks it for
its offsets."""


def leaves_partitions_unstarted(error: Any) -> bool:
    """Whether a consumer error (confluent-kafka's ``KafkaError``) says that librdkafka gave
    up fetching the committed offsets of its assignment, leaving those partitions unread:
    the App replaces such a consumer, as it replaces one stuck in its join."""
    return str(error.str()).startswith(UNSTARTED_PARTITIONS)
