"""Helpers shared by the consumer-group handlers."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from shoal.security.acl import AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


def millis(value: datetime.timedelta | int) -> int:
    """A kio duration field (a timedelta subclass) in whole milliseconds."""
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds() * 1000)
    return int(value)


def may_use_group(
    broker: Broker, ctx: RequestContext, group_id: str, operation: AclOperation = AclOperation.READ
) -> bool:
    """Whether the principal may do ``operation`` (Read: join, sync, heartbeat, leave, commit)
    on the group; Kafka answers GROUP_AUTHORIZATION_FAILED otherwise."""
    return broker.authorize(ctx, operation, ResourceType.GROUP, group_id)


def client_host(ctx: RequestContext) -> str:
    # Kafka reports the peer as Java's InetAddress.toString() prints it: "/127.0.0.1".
    return f"/{ctx.client_host}"
