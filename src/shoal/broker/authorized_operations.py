"""The "authorized operations" bit sets of Metadata, DescribeCluster, DescribeTopicPartitions
and DescribeGroups (KIP-430).

Each is a 32-bit field with bit N set when the principal may do AclOperation N on the resource.
Kafka without an authorizer reports every operation the resource type supports
(``AclEntry.supportedOperations``); shoal has no authorizer yet, so it does the same. When the
client did not ask, the field keeps its schema default, INT32_MIN.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class AclOperation(IntEnum):
    """Kafka's AclOperation codes (org.apache.kafka.common.acl.AclOperation)."""

    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12


def _bits(*operations: AclOperation) -> int:
    return sum(1 << op for op in operations)


NOT_ASKED: Final = -(2**31)
"""The field's schema default, sent when the request did not ask for the operations."""

TOPIC_OPERATIONS: Final = _bits(
    AclOperation.READ,
    AclOperation.WRITE,
    AclOperation.CREATE,
    AclOperation.DELETE,
    AclOperation.ALTER,
    AclOperation.DESCRIBE,
    AclOperation.DESCRIBE_CONFIGS,
    AclOperation.ALTER_CONFIGS,
)
CLUSTER_OPERATIONS: Final = _bits(
    AclOperation.CREATE,
    AclOperation.ALTER,
    AclOperation.DESCRIBE,
    AclOperation.CLUSTER_ACTION,
    AclOperation.DESCRIBE_CONFIGS,
    AclOperation.ALTER_CONFIGS,
    AclOperation.IDEMPOTENT_WRITE,
)
GROUP_OPERATIONS: Final = _bits(
    AclOperation.READ,
    AclOperation.DELETE,
    AclOperation.DESCRIBE,
    AclOperation.DESCRIBE_CONFIGS,
    AclOperation.ALTER_CONFIGS,
)


def topic_operations(asked: bool) -> int:
    return TOPIC_OPERATIONS if asked else NOT_ASKED


def cluster_operations(asked: bool) -> int:
    return CLUSTER_OPERATIONS if asked else NOT_ASKED


def group_operations(asked: bool) -> int:
    return GROUP_OPERATIONS if asked else NOT_ASKED
