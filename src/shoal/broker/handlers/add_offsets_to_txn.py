"""AddOffsetsToTxn (25): the producer's transaction will commit offsets of a consumer group.

As Kafka: Write on the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and Read on
the group (GROUP_AUTHORIZATION_FAILED) are needed; then the group's ``__consumer_offsets``
partition joins the transaction (shoal keeps one partition, so every group's is partition 0),
with the same checks as AddPartitionsToTxn (PRODUCER_FENCED, CONCURRENT_TRANSACTIONS, ...).
When the transaction ends, its offset commits become committed or are dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from shoal.coordinator.offsets_log import OFFSETS_TOPIC
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType
from shoal.storage import StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class _AddOffsetsToTxnRequest(Protocol):
    transactional_id: str
    producer_id: int
    producer_epoch: int
    group_id: str


async def handle_add_offsets_to_txn(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _AddOffsetsToTxnRequest)
    transactional_id, group_id = str(body.transactional_id), str(body.group_id)
    if not broker.authorize(
        ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id
    ):
        error = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    elif not broker.authorize(ctx, AclOperation.READ, ResourceType.GROUP, group_id):
        error = ErrorCode.GROUP_AUTHORIZATION_FAILED
    else:
        try:
            broker.ensure_internal_topic(OFFSETS_TOPIC)
            error = await broker.transactions.add_partitions(
                transactional_id,
                int(body.producer_id),
                int(body.producer_epoch),
                [(OFFSETS_TOPIC, 0)],
            )
        except (StorageError, OSError):
            error = ErrorCode.COORDINATOR_NOT_AVAILABLE
    return response_for(
        header.api_key, header.api_version, {"throttle_time": 0, "error_code": error}
    )
