"""OffsetForLeaderEpoch (23): the end offset of a leader epoch, for log truncation checks.

A shoal partition never changes leader, so it has one epoch, 0, starting at the log start.
Kafka's answers for such a log (its leader-epoch cache lookup) are:

- requested epoch 0, the current one: the log end offset;
- a later epoch, or -1 (undefined): epoch -1 and offset -1, without an error;
- an epoch below -1, before every known one: that epoch and the start of epoch 0.

``current_leader_epoch`` fences clients with stale metadata first: above 0 is
UNKNOWN_LEADER_EPOCH (the client knows of a newer leader), other than 0 or -1 (no check)
FENCED_LEADER_EPOCH.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext
    from shoal.storage import PartitionLog

LEADER_EPOCH: Final = 0
"""The only leader epoch of every shoal partition (Metadata and Fetch report it too)."""
NO_EPOCH: Final = -1
NO_OFFSET: Final = -1


class _EpochPartition(Protocol):
    partition: int
    current_leader_epoch: int
    leader_epoch: int


class _EpochTopic(Protocol):
    topic: str
    partitions: Sequence[_EpochPartition]


class _OffsetForLeaderEpochRequest(Protocol):
    topics: Sequence[_EpochTopic]


async def handle_offset_for_leader_epoch(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _OffsetForLeaderEpochRequest)
    topics = []
    # ClusterAction (a follower's right) covers every topic; a client needs Describe on each.
    everything = broker.authorize_cluster(ctx, AclOperation.CLUSTER_ACTION)
    described = broker.authorized_names(
        ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, (str(t.topic) for t in body.topics)
    )
    for topic in body.topics:
        name = str(topic.topic)
        if not everything and name not in described:
            denied = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            partitions = [
                {
                    "partition": int(p.partition),
                    "error_code": denied,
                    "leader_epoch": NO_EPOCH,
                    "end_offset": NO_OFFSET,
                }
                for p in topic.partitions
            ]
        else:
            partitions = [_end_offset(broker, name, p) for p in topic.partitions]
        topics.append({"topic": name, "partitions": partitions})
    return response_for(header.api_key, header.api_version, {"throttle_time": 0, "topics": topics})


def _end_offset(broker: Broker, name: str, p: _EpochPartition) -> dict[str, Any]:
    index = int(p.partition)
    answer = {"partition": index, "error_code": 0, "leader_epoch": NO_EPOCH, "end_offset": -1}
    plog = broker.partition(name, index)
    if plog is None:
        return {**answer, "error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    current = int(p.current_leader_epoch)
    if current > LEADER_EPOCH:
        return {**answer, "error_code": ErrorCode.UNKNOWN_LEADER_EPOCH}
    if current not in (LEADER_EPOCH, NO_EPOCH):
        return {**answer, "error_code": ErrorCode.FENCED_LEADER_EPOCH}
    epoch, offset = lookup(plog, int(p.leader_epoch))
    return {**answer, "leader_epoch": epoch, "end_offset": offset}


def lookup(plog: PartitionLog, epoch: int) -> tuple[int, int]:
    """``(epoch, end offset)`` for a log whose only epoch, 0, spans all of it."""
    if epoch == LEADER_EPOCH:
        return LEADER_EPOCH, plog.log_end_offset
    if epoch < NO_EPOCH:
        return epoch, plog.log_start_offset
    return NO_EPOCH, NO_OFFSET
