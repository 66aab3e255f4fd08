"""InitProducerId (22), v0-v5: producer ids for idempotent producers.

Without a transactional id Kafka's TransactionCoordinator "blindly accepts the request and
returns a new producerId" with epoch 0, whatever producer id and epoch a v3+ request carries
(KIP-360 lets a client send them to recover; for an idempotent producer a fresh id is that
recovery). shoal does the same: a fresh id has no state on any partition, so it is always valid,
and there is nothing to check the old pair against.

With a transactional id the transaction coordinator answers (:mod:`shoal.broker.transactions`):
a new id gets a producer id and epoch 0, a known one the next epoch, which fences the previous
instance; if that instance left a transaction open, it is aborted first and the answer is
CONCURRENT_TRANSACTIONS, which clients retry. An empty transactional id is INVALID_REQUEST, as
in Kafka; ``transaction_timeout`` must be positive and at most ``transaction.max.timeout.ms``.
"""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING, Protocol

from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType
from shoal.storage import StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

log = logging.getLogger(__name__)


class _InitProducerIdRequest(Protocol):
    """producer_id and producer_epoch are of v3+ only: read with getattr."""

    transactional_id: str | None
    transaction_timeout: datetime.timedelta


async def handle_init_producer_id(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _InitProducerIdRequest)
    transactional_id = body.transactional_id
    error = ErrorCode.NONE
    producer_id, epoch = -1, -1
    if transactional_id == "":
        error = ErrorCode.INVALID_REQUEST
    elif transactional_id is not None and not broker.authorize(
        ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id
    ):
        error = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    elif transactional_id is None and not (
        broker.authorize_cluster(ctx, AclOperation.IDEMPOTENT_WRITE)
        or broker.authorize_by_resource_type(ctx, AclOperation.WRITE, ResourceType.TOPIC)
    ):
        # KIP-679: an idempotent producer needs IdempotentWrite on the cluster, or Write on
        # at least one topic.
        error = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    elif transactional_id is not None:
        result = await broker.transactions.init_producer_id(
            transactional_id,
            body.transaction_timeout // datetime.timedelta(milliseconds=1),
            int(getattr(body, "producer_id", -1)),
            int(getattr(body, "producer_epoch", -1)),
        )
        error, producer_id, epoch = result.error, result.producer_id, result.producer_epoch
    else:
        try:
            producer_id, epoch = broker.producers.ids.allocate(), 0
        except StorageError as exc:
            # Retriable, so the client tries again once space or the disk is back.
            log.error("could not allocate a producer id: %s", exc)
            error = ErrorCode.COORDINATOR_NOT_AVAILABLE
    return response_for(
        header.api_key,
        header.api_version,
        {
            "throttle_time": 0,
            "error_code": error,
            "producer_id": producer_id,
            "producer_epoch": epoch,
        },
    )
