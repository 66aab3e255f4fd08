"""TxnOffsetCommit (28): offsets a consumer group commits inside a producer's transaction.

As Kafka checks it: Write on the transactional id (else every partition
TRANSACTIONAL_ID_AUTHORIZATION_FAILED), Read on the group (GROUP_AUTHORIZATION_FAILED), Read on
each topic (TOPIC_AUTHORIZATION_FAILED) and that it exists (UNKNOWN_TOPIC_OR_PARTITION). The
transaction must be open with the group's offsets added by AddOffsetsToTxn, by the producer's
current epoch (INVALID_TXN_STATE, INVALID_PRODUCER_EPOCH otherwise). v3+ may name the member
and generation (KIP-447): a stale member of a rebalanced group is refused as OffsetCommit
refuses it. Accepted offsets stay pending until the transaction's end (see
:mod:`shoal.coordinator.txn_offsets`) and are answered after their fsync.

v5+ is transactions V2 (KIP-890 part 2): the producer sends no AddOffsetsToTxn, and the
request adds the group's offsets partition to the transaction itself, as Produce v12+ adds
its partitions (:mod:`shoal.broker.implicit_adds`). A failed add is answered as Kafka's group
coordinator answers it: PRODUCER_FENCED as INVALID_PRODUCER_EPOCH, a retriable coordinator
error as COORDINATOR_NOT_AVAILABLE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shoal.broker.implicit_adds import (
    CLIENT_TRANSACTION_VERSION_2,
    IMPLICIT_ADD_TXN_OFFSET_COMMIT_VERSION,
    implicit_adds_apply,
    produce_error,
)
from shoal.coordinator.offsets_log import OFFSETS_TOPIC, CommittedOffset, TopicPartitionKey
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType
from shoal.storage import StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class _Partition(Protocol):
    partition_index: int
    committed_offset: int
    committed_metadata: str | None


class _Topic(Protocol):
    name: str
    partitions: Sequence[_Partition]


class _TxnOffsetCommitRequest(Protocol):
    """generation_id, member_id and group_instance_id are of v3+: read with getattr."""

    transactional_id: str
    group_id: str
    producer_id: int
    producer_epoch: int
    topics: Sequence[_Topic]


async def handle_txn_offset_commit(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _TxnOffsetCommitRequest)
    transactional_id, group_id = str(body.transactional_id), str(body.group_id)
    wanted = [(str(t.name), p) for t in body.topics for p in t.partitions]
    errors: dict[TopicPartitionKey, ErrorCode] = {}
    keys = [(name, int(p.partition_index)) for name, p in wanted]
    if not broker.authorize(
        ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id
    ):
        errors = dict.fromkeys(keys, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    elif not broker.authorize(ctx, AclOperation.READ, ResourceType.GROUP, group_id):
        errors = dict.fromkeys(keys, ErrorCode.GROUP_AUTHORIZATION_FAILED)
    else:
        errors = await _commit(broker, ctx, body, group_id, wanted, header.api_version)
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for (name, index), error in errors.items():
        by_topic.setdefault(name, []).append({"partition_index": index, "error_code": error})
    topics = [{"name": name, "partitions": parts} for name, parts in by_topic.items()]
    return response_for(header.api_key, header.api_version, {"throttle_time": 0, "topics": topics})


async def _commit(
    broker: Broker,
    ctx: RequestContext,
    body: _TxnOffsetCommitRequest,
    group_id: str,
    wanted: list[tuple[str, _Partition]],
    version: int,
) -> dict[TopicPartitionKey, ErrorCode]:
    errors: dict[TopicPartitionKey, ErrorCode] = {}
    readable = broker.authorized_names(
        ctx, AclOperation.READ, ResourceType.TOPIC, (name for name, _ in wanted)
    )
    offsets: dict[TopicPartitionKey, CommittedOffset] = {}
    now = broker.clock.now_ms()
    for name, p in wanted:
        tp = (name, int(p.partition_index))
        if name not in readable:
            errors[tp] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
        elif broker.topics.get(name) is None:
            errors[tp] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        else:
            offsets[tp] = CommittedOffset(
                int(p.committed_offset),
                int(getattr(p, "committed_leader_epoch", -1)),
                p.committed_metadata or "",
                now,
            )
    if not offsets:
        return errors
    if implicit_adds_apply(broker, version, IMPLICIT_ADD_TXN_OFFSET_COMMIT_VERSION):
        added = await _add_offsets_partition(broker, body)
        if added is not ErrorCode.NONE:
            return {**errors, **dict.fromkeys(offsets, added)}
    verdict = broker.transactions.coordinator.verify_produce(
        int(body.producer_id), int(body.producer_epoch), (OFFSETS_TOPIC, 0)
    )
    if verdict is not ErrorCode.NONE:
        return {**errors, **dict.fromkeys(offsets, verdict)}
    error, partition_errors = await broker.groups.txn_commit_offsets(
        group_id,
        (int(body.producer_id), int(body.producer_epoch)),
        str(getattr(body, "member_id", "") or ""),
        getattr(body, "group_instance_id", None),
        int(getattr(body, "generation_id", -1)),
        offsets,
    )
    for tp in offsets:
        errors[tp] = partition_errors.get(tp, error)
    return errors


async def _add_offsets_partition(broker: Broker, body: _TxnOffsetCommitRequest) -> ErrorCode:
    try:
        broker.ensure_internal_topic(OFFSETS_TOPIC)
        error = await broker.transactions.add_partitions(
            str(body.transactional_id),
            int(body.producer_id),
            int(body.producer_epoch),
            [(OFFSETS_TOPIC, 0)],
            CLIENT_TRANSACTION_VERSION_2,
        )
    except (StorageError, OSError):
        error = ErrorCode.COORDINATOR_NOT_AVAILABLE
    error = produce_error(error)
    if error is ErrorCode.NOT_ENOUGH_REPLICAS:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE
    return error
