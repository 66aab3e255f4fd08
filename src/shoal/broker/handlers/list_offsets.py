"""ListOffsets (2): earliest (-2), latest (-1), max timestamp (-3), or the first offset at or
after a timestamp.

With isolation_level 1 (read_committed, v2+) "latest" is the last stable offset: the first
offset of the oldest open transaction, where a read_committed consumer stops (Kafka).

Each answer carries the leader epoch of the offset found (v4+), as Kafka's does: the current
epoch for "latest"; for "earliest" the oldest epoch of the history if it begins at or below the
log start, else -1 (UnifiedLog.fetchOffsetByTimestamp: records written before shoal kept
epochs carry -1, and the history, like Kafka's, begins after them); and for a record found by
time the epoch stamped in its batch, -1 for such a batch (Kafka's FileRecords answers the
batch's partition leader epoch, none when it is -1). A client's ``current_leader_epoch`` (v4+)
is checked first (FENCED/UNKNOWN_LEADER_EPOCH).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shoal.broker.leader_epochs import fence
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType
from shoal.storage import StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
READ_COMMITTED = 1
EARLIEST_LOCAL = -4
"""KIP-405: earliest offset in local storage; without tiered storage, the log start."""


class _ListOffsetsPartition(Protocol):
    partition_index: int
    timestamp: int


class _ListOffsetsTopic(Protocol):
    name: str
    partitions: Sequence[_ListOffsetsPartition]


class _ListOffsetsRequest(Protocol):
    topics: Sequence[_ListOffsetsTopic]


async def handle_list_offsets(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _ListOffsetsRequest)
    topics = []
    committed = int(getattr(body, "isolation_level", 0)) == READ_COMMITTED
    described = broker.authorized_names(
        ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, (str(t.name) for t in body.topics)
    )
    for topic in body.topics:
        if str(topic.name) not in described:
            partitions = [_denied(p) for p in topic.partitions]
            topics.append({"name": topic.name, "partitions": partitions})
            continue
        partitions = [_lookup(broker, str(topic.name), p, committed) for p in topic.partitions]
        topics.append({"name": topic.name, "partitions": partitions})
    return response_for(header.api_key, header.api_version, {"throttle_time": 0, "topics": topics})


def _denied(p: _ListOffsetsPartition) -> dict[str, Any]:
    """Describe on the topic is needed (Kafka): that partition answers only the error."""
    return {
        "partition_index": int(p.partition_index),
        "error_code": ErrorCode.TOPIC_AUTHORIZATION_FAILED,
        "timestamp": -1,
        "offset": -1,
    }


def _lookup(broker: Broker, name: str, p: _ListOffsetsPartition, committed: bool) -> dict[str, Any]:
    index = int(p.partition_index)
    plog = broker.partition(name, index)
    answer = {"partition_index": index, "error_code": 0, "timestamp": -1, "offset": -1}
    if plog is None:
        return {**answer, "error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    fenced = fence(plog, int(getattr(p, "current_leader_epoch", -1)))
    if fenced is not None:
        return {**answer, "error_code": fenced}
    timestamp = int(p.timestamp)
    try:
        if timestamp == LATEST:
            latest = plog.log_end_offset
            if committed:
                txns = broker.producers.txns(name, index, plog)
                latest = txns.last_stable_offset(latest, plog.log_start_offset)
            return {**answer, "offset": latest, "leader_epoch": plog.leader_epoch}
        if timestamp in (EARLIEST, EARLIEST_LOCAL):
            start = plog.log_start_offset
            return {**answer, "offset": start, "leader_epoch": plog.first_epoch()}
        if timestamp == MAX_TIMESTAMP:
            found = plog.max_timestamp()
        elif timestamp < 0:
            return {**answer, "error_code": ErrorCode.INVALID_REQUEST}
        else:
            found = plog.offset_for_timestamp(timestamp)
    except StorageError as exc:
        return {**answer, "error_code": exc.kafka_error_code}
    if found is None:
        return answer  # no such record: offset -1, timestamp -1, as Kafka answers
    return {
        **answer,
        "offset": found.offset,
        "timestamp": found.timestamp,
        "leader_epoch": found.leader_epoch,
    }
