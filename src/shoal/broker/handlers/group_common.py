"""Helpers shared by the consumer-group handlers."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shoal.broker.context import RequestContext


def millis(value: datetime.timedelta | int) -> int:
    """A kio duration field (a timedelta subclass) in whole milliseconds."""
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds() * 1000)
    return int(value)


def client_host(ctx: RequestContext) -> str:
    # Kafka reports the peer as Java's InetAddress.toString() prints it: "/127.0.0.1".
    return f"/{ctx.client_host}"
