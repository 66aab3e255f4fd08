"""A queue subscriber's retry policy checked against the queue's own delivery limit at start.

In queue mode the framework counts attempts by the queue's delivery count: a failed record is
released for another delivery until ``retry.max_attempts``, then dead-lettered and rejected.
A queue may also give a record up on its own: a Kafka share group archives it once it has been
delivered ``share.delivery.count.limit`` times (5 by default), a RabbitMQ quorum queue
dead-letters it past ``x-delivery-limit`` returns, JetStream stops at ``max_deliver``. With a
limit below ``max_attempts`` a failing record is given up before the framework's last attempt
(on Kafka and NATS it never reaches the dead-letter topic): the App refuses to start (or, with
``Retry(queue_limit_below_ok=True)``, warns and starts). Where the limit cannot be read (ACLs
denying DescribeConfigs on the group), the transport logs a warning and it is not checked.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from shoal.app.subscriber import Subscriber
from shoal.app.transport import DeliveryLimit, QueueDeliveryLimits, Transport, TransportError

log = logging.getLogger("shoal.app")


def _mismatch(sub: Subscriber, limit: DeliveryLimit) -> str:
    return (
        f"subscriber {sub.name}: retry.max_attempts={sub.retry.max_attempts} but the queue of "
        f"group {sub.group!r} gives a record up after {limit.deliveries} deliveries "
        f"({limit.setting}): a record failing {limit.deliveries} times would be "
        f"{limit.outcome}. Either {limit.remedy}, lower retry.max_attempts to "
        f"{limit.deliveries}, or pass Retry(queue_limit_below_ok=True) to start anyway"
    )


async def check_delivery_limits(transport: Transport, subscribers: Sequence[Subscriber]) -> None:
    """Raise TransportError for the first queue subscriber whose queue's delivery limit is
    below its ``retry.max_attempts`` (unless it opted in: then a warning)."""
    if not isinstance(transport, QueueDeliveryLimits):
        return  # its queues give no record up on their own count
    for sub in subscribers:
        if not sub.queue:
            continue
        limit = await transport.queue_delivery_limit(sub.group, sub.retry.max_attempts)
        if limit is None:
            continue
        if limit.deliveries >= sub.retry.max_attempts:
            continue
        if sub.retry.queue_limit_below_ok:
            log.warning("%s (starting: queue_limit_below_ok=True)", _mismatch(sub, limit))
            continue
        raise TransportError(_mismatch(sub, limit))
