"""Who may read and change configs (DescribeConfigs, AlterConfigs, IncrementalAlterConfigs),
as Kafka's ConfigHelper and KafkaApis decide: the broker-wide resources (BROKER, BROKER_LOGGER,
CLIENT_METRICS) need the operation on the cluster, a TOPIC or GROUP on itself."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from shoal.protocol import ErrorCode
from shoal.security.acl import CLUSTER_NAME, AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

_CLUSTER_WIDE: Final = frozenset({4, 8, 16})
"""ConfigResource types BROKER, BROKER_LOGGER and CLIENT_METRICS."""
_TOPIC: Final = 2
_GROUP: Final = 32


def config_refusal(
    broker: Broker, ctx: RequestContext, operation: AclOperation, resource_type: int, name: str
) -> ErrorCode | None:
    """The error to answer for a config resource the principal may not do ``operation``
    (DescribeConfigs or AlterConfigs) on; None when it may (or the type is unknown: the
    handler refuses that itself)."""
    if resource_type in _CLUSTER_WIDE:
        target, resource, error = (
            ResourceType.CLUSTER,
            CLUSTER_NAME,
            ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
        )
    elif resource_type == _TOPIC:
        target, resource, error = ResourceType.TOPIC, name, ErrorCode.TOPIC_AUTHORIZATION_FAILED
    elif resource_type == _GROUP:
        target, resource, error = ResourceType.GROUP, name, ErrorCode.GROUP_AUTHORIZATION_FAILED
    else:
        return None
    return None if broker.authorize(ctx, operation, target, resource) else error
