"""OffsetForLeaderEpoch (23): the end offset of a leader epoch, for log truncation checks.

A partition's leader epoch grows by one at every broker start (see
:mod:`shoal.storage.epochs`); the answer comes from the partition's epoch history as Kafka's
leader-epoch cache gives it:

- the current epoch: the log end offset;
- an older epoch: the largest known epoch at or below it, and the start of the next one
  (a consumer whose records a crash erased learns where its log and the broker's diverge);
- an epoch older than every known one: that epoch and the start of the oldest;
- a later epoch, or -1 (undefined): epoch -1 and offset -1, without an error.

``current_leader_epoch`` fences clients with stale metadata first: older than the partition's
is FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH, -1 asks for no check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.broker.leader_epochs import fence
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

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
    fenced = fence(plog, int(p.current_leader_epoch))
    if fenced is not None:
        return {**answer, "error_code": fenced}
    epoch, offset = plog.end_offset_for_epoch(int(p.leader_epoch))
    return {**answer, "leader_epoch": epoch, "end_offset": offset}
