"""InitProducerId (22), v0-v5: producer ids for idempotent producers.

Without a transactional id Kafka's TransactionCoordinator "blindly accepts the request and
returns a new producerId" with epoch 0, whatever producer id and epoch a v3+ request carries
(KIP-360 lets a client send them to recover; for an idempotent producer a fresh id is that
recovery). shoal does the same: a fresh id has no state on any partition, so it is always valid,
and there is nothing to check the old pair against.

Transactions are not served yet. An empty transactional id is INVALID_REQUEST, as in Kafka. For
any other the answer is TRANSACTIONAL_ID_AUTHORIZATION_FAILED: the response has no message field,
and this is a code every client treats as fatal at once, naming the transactional id as the
problem; the retriable COORDINATOR_NOT_AVAILABLE would instead keep the client retrying until
its timeout with no hint why. The broker log says what is really missing. (Clients normally
stop earlier: FindCoordinator for the transactional id already fails the same way, with a
message.)
"""

from __future__ import annotations

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
    transactional_id: str | None


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
        broker.unsupported.refused(
            "transactions (InitProducerId with a transactional id)",
            ctx,
            "Idempotent producers (enable.idempotence without transactional.id) work.",
        )
        error = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
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
