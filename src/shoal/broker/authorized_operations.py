"""The "authorized operations" bit sets of Metadata, DescribeCluster, DescribeTopicPartitions
and DescribeGroups (KIP-430).

Each is a 32-bit field with bit N set when the principal may do AclOperation N on the resource.
The broker fills them from its authorizer (:meth:`Broker.authorized_operations`); without one,
as Kafka, every operation the resource type supports (``AclEntry.supportedOperations``). When the
client did not ask, the field keeps its schema default, INT32_MIN.
"""

from __future__ import annotations

from typing import Final

from shoal.security.acl import AclOperation, ResourceType
from shoal.security.acl_authorizer import SUPPORTED_OPERATIONS

__all__ = [
    "CLUSTER_OPERATIONS",
    "GROUP_OPERATIONS",
    "NOT_ASKED",
    "TOPIC_OPERATIONS",
    "AclOperation",
    "cluster_operations",
    "group_operations",
    "topic_operations",
]


def _bits(resource_type: ResourceType) -> int:
    return sum(1 << op for op in SUPPORTED_OPERATIONS[resource_type])


NOT_ASKED: Final = -(2**31)
"""The field's schema default, sent when the request did not ask for the operations."""

TOPIC_OPERATIONS: Final = _bits(ResourceType.TOPIC)
CLUSTER_OPERATIONS: Final = _bits(ResourceType.CLUSTER)
GROUP_OPERATIONS: Final = _bits(ResourceType.GROUP)


def topic_operations(asked: bool) -> int:
    return TOPIC_OPERATIONS if asked else NOT_ASKED


def cluster_operations(asked: bool) -> int:
    return CLUSTER_OPERATIONS if asked else NOT_ASKED


def group_operations(asked: bool) -> int:
    return GROUP_OPERATIONS if asked else NOT_ASKED
