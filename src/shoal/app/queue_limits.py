"""A queue subscriber's retry policy checked against the queue's own delivery limit at start.

In queue mode the framework counts attempts by the queue's delivery count: a failed record is
released for another delivery until ``retry.max_attempts``, then dead-lettered and rejected.
A Kafka share group also gives a record up on its own: once it has been delivered
``share.delivery.count.limit`` times (5 by default) a release archives it. With a limit below
``max_attempts`` the broker archives a failing record before the framework's last attempt,
and it never reaches the dead-letter topic: the App refuses to start (or, with
``Retry(queue_limit_below_ok=True)``, warns and starts).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from shoal.app.subscriber import Subscriber
from shoal.app.transport import QueueDeliveryLimits, Transport, TransportError

log = logging.getLogger("shoal.app")


def _mismatch(sub: Subscriber, limit: int) -> str:
    attempts = sub.retry.max_attempts
    return (
        f"subscriber {sub.name}: retry.max_attempts={attempts} but the queue of group "
        f"{sub.group!r} gives a record up after {limit} deliveries (the broker's "
        f"share.delivery.count.limit for the group): a record failing {limit} times would be "
        "archived by the broker, never dead-lettered by the app. Raise the group's limit "
        f"(kafka-configs.sh --alter --entity-type groups --entity-name {sub.group} "
        f"--add-config share.delivery.count.limit={attempts}; at most the broker's "
        f"group.share.max.delivery.count.limit), lower retry.max_attempts to {limit}, or "
        "pass Retry(queue_limit_below_ok=True) to start anyway"
    )


async def check_delivery_limits(transport: Transport, subscribers: Sequence[Subscriber]) -> None:
    """Raise TransportError for the first queue subscriber whose queue's delivery limit is
    below its ``retry.max_attempts`` (unless it opted in: then a warning)."""
    if not isinstance(transport, QueueDeliveryLimits):
        return  # its queues give no record up on their own count
    checked: dict[str, int | None] = {}
    for sub in subscribers:
        if not sub.queue:
            continue
        if sub.group not in checked:
            checked[sub.group] = await transport.queue_delivery_limit(sub.group)
        limit = checked[sub.group]
        if limit is None:
            log.warning(
                "subscriber %s: the queue's delivery limit is unknown: retry.max_attempts=%d "
                "is not checked against it",
                sub.name,
                sub.retry.max_attempts,
            )
            continue
        if limit >= sub.retry.max_attempts:
            continue
        if sub.retry.queue_limit_below_ok:
            log.warning("%s (starting: queue_limit_below_ok=True)", _mismatch(sub, limit))
            continue
        raise TransportError(_mismatch(sub, limit))
