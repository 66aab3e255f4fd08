"""KIP-932's admin APIs for share-group start offsets (issue 16): DescribeShareGroupOffsets
(90, v0-v1), AlterShareGroupOffsets (91, v0) and DeleteShareGroupOffsets (92, v0).

Describe gives each partition's start offset (-1 where the group has no state) and, from v1,
its lag: the records from the start offset to the log end not yet acknowledged or archived.
Alter and Delete need an empty group (NON_EMPTY_GROUP otherwise, nothing changed); Alter sets
a partition's start offset afresh (its in-flight records forgotten) and may create the empty
group; Delete drops the group's state for whole topics. Authorization as Kafka's: Describe
needs Group and Topic Describe, Alter Group and Topic Read, Delete Group Delete and Topic Read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shoal.broker.leader_epochs import epoch_of
from shoal.coordinator.share_partition import RecordState, SharePartition
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class _DescribeTopic(Protocol):
    topic_name: str
    partitions: Sequence[int]


class _DescribeGroup(Protocol):
    group_id: str
    topics: Sequence[_DescribeTopic] | None


class _DescribeRequest(Protocol):
    groups: Sequence[_DescribeGroup]


def _lag(sp: SharePartition, log_end: int) -> int:
    done = sum(
        1
        for r in sp.records.values()
        if r.state in (RecordState.ACKNOWLEDGED, RecordState.ARCHIVED)
    )
    return max(log_end - sp.start_offset - done, 0)


async def _describe_group(
    broker: Broker, ctx: RequestContext, entry: _DescribeGroup
) -> dict[str, Any]:
    group_id = entry.group_id
    if not broker.authorize(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, group_id):
        return {
            "group_id": group_id,
            "topics": [],
            "error_code": ErrorCode.GROUP_AUTHORIZATION_FAILED,
        }
    shares = broker.share_groups
    if entry.topics is None:  # every topic the group has state for
        wanted = [
            (t.name, list(range(t.partitions))) for t in sorted(broker.topics, key=lambda t: t.name)
        ]
    else:
        wanted = [(t.topic_name, [int(p) for p in t.partitions]) for t in entry.topics]
    allowed_names = {
        name
        for name, _ in wanted
        if broker.authorize(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, name)
    }
    # The state files are read off the event loop, all in one go, before the answer is built.
    states = await shares.described(
        group_id,
        [
            (name, index, plog)
            for name, indexes in wanted
            if name in allowed_names and broker.topics.get(name) is not None
            for index in indexes
            if (plog := broker.partition(name, index)) is not None
        ],
    )
    topics = []
    for name, indexes in wanted:
        topic = broker.topics.get(name)
        allowed = name in allowed_names
        partitions = []
        for index in indexes:
            plog = broker.partition(name, index) if topic is not None else None
            sp = states.get((name, index)) if plog is not None and allowed else None
            if entry.topics is None and sp is None:
                continue
            error = ErrorCode.NONE
            if not allowed:
                error = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            elif plog is None:
                error = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            partitions.append(
                {
                    "partition_index": index,
                    "start_offset": sp.start_offset if sp is not None else -1,
                    "leader_epoch": epoch_of(plog) if sp is not None else -1,
                    "lag": _lag(sp, plog.log_end_offset)
                    if sp is not None and plog is not None
                    else -1,
                    "error_code": error,
                }
            )
        if partitions:
            topics.append(
                {
                    "topic_name": name,
                    "topic_id": topic.topic_id if topic is not None else None,
                    "partitions": partitions,
                }
            )
    return {"group_id": group_id, "topics": topics, "error_code": ErrorCode.NONE}


async def handle_describe_share_group_offsets(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _DescribeRequest)
    groups = [await _describe_group(broker, ctx, g) for g in body.groups]
    return response_for(header.api_key, header.api_version, {"throttle_time": 0, "groups": groups})
