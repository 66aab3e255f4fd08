"""AlterPartitionReassignments (45): move partitions' replicas to other brokers. A single node
can only be asked to keep each partition on itself, which Kafka accepts as a reassignment with
nothing to do; any other replica list names a broker that does not exist.

Kafka's answers (its controller's ``alterPartitionReassignment``), per partition:

- unknown topic or partition: UNKNOWN_TOPIC_OR_PARTITION;
- null replicas (cancel) while no reassignment is in progress, which is always:
  NO_REASSIGNMENT_IN_PROGRESS;
- an empty replica list, a broker id other than this node's, or a broker named twice:
  INVALID_REPLICA_ASSIGNMENT, the ids checked in ascending order, so the first problem found is
  the one reported;
- ``[node id]``: no error, and nothing changes.

v1's AllowReplicationFactorChange never matters here: every valid list has one replica, as the
partition already does. The response echoes it, as Kafka's does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shoal.broker.handlers.hosted import hosted_partition, topic_exists
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class ReassignmentError(Exception):
    """The partition's answer when the reassignment is refused (message None: the default)."""

    def __init__(self, code: ErrorCode, message: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _ReassignablePartition(Protocol):
    partition_index: int
    replicas: Sequence[int] | None


class _ReassignableTopic(Protocol):
    name: str
    partitions: Sequence[_ReassignablePartition]


class _AlterPartitionReassignmentsRequest(Protocol):
    """allow_replication_factor_change (v1+) is read with getattr."""

    topics: Sequence[_ReassignableTopic]


async def handle_alter_partition_reassignments(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _AlterPartitionReassignmentsRequest)
    responses = []
    allowed = broker.authorize_cluster(ctx, AclOperation.ALTER)
    denied = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    for topic in body.topics:
        name = str(topic.name)
        partitions = []
        for partition in topic.partitions:
            index = int(partition.partition_index)
            replicas = None if partition.replicas is None else [int(r) for r in partition.replicas]
            answer: dict[str, Any] = {
                "partition_index": index,
                "error_code": ErrorCode.NONE,
                "error_message": None,
            }
            try:
                if not allowed:
                    raise ReassignmentError(denied, denied.message)
                _check(broker, name, index, replicas)
            except ReassignmentError as exc:
                answer.update(error_code=exc.code, error_message=exc.message)
            partitions.append(answer)
        responses.append({"name": name, "partitions": partitions})
    return response_for(
        header.api_key,
        header.api_version,
        {
            "throttle_time": 0,
            "allow_replication_factor_change": bool(
                getattr(body, "allow_replication_factor_change", True)
            ),
            "error_code": ErrorCode.NONE if allowed else denied,
            "error_message": None if allowed else denied.message,
            "responses": responses,
        },
    )


def _check(broker: Broker, name: str, index: int, replicas: list[int] | None) -> None:
    """Raise :class:`ReassignmentError` unless the reassignment is the no-op one."""
    if not topic_exists(broker, name):
        raise ReassignmentError(
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Unable to find a topic named {name}."
        )
    if hosted_partition(broker, name, index) is None:
        raise ReassignmentError(
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Unable to find partition {name}:{index}."
        )
    if replicas is None:
        # Kafka leaves the message out when it is the error's default one.
        raise ReassignmentError(ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, None)
    if not replicas:
        raise ReassignmentError(
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            "The manual partition assignment includes an empty replica list.",
        )
    previous = None
    for broker_id in sorted(replicas):
        if broker_id != broker.config.node_id:
            raise ReassignmentError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                f"The manual partition assignment includes broker {broker_id}, but no such "
                f"broker is registered (this single-node cluster has only broker "
                f"{broker.config.node_id}).",
            )
        if broker_id == previous:
            raise ReassignmentError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                f"The manual partition assignment includes the broker {broker_id} more than once.",
            )
        previous = broker_id
