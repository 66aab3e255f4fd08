"""EndTxn (26): commit or abort the producer's open transaction.

Write on the transactional id is needed (TRANSACTIONAL_ID_AUTHORIZATION_FAILED otherwise). The
coordinator checks the producer id and epoch (INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED) and
the state; the answer comes once the markers are written to every partition of the transaction
and fsynced (see :mod:`shoal.broker.transactions`). A retry of an EndTxn that completed gets
success again; one that arrives while the markers are being written, CONCURRENT_TRANSACTIONS.

Served up to v4: v5 is transactions V2 (KIP-890), which shoal does not implement, see
docs/transactions.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class _EndTxnRequest(Protocol):
    transactional_id: str
    producer_id: int
    producer_epoch: int
    committed: bool


async def handle_end_txn(broker: Broker, ctx: RequestContext, request: Request) -> ResponseBody:
    header, body = request.header, request_body(request.body, _EndTxnRequest)
    transactional_id = str(body.transactional_id)
    if not broker.authorize(
        ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id
    ):
        error = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    else:
        error = await broker.transactions.end_txn(
            transactional_id, int(body.producer_id), int(body.producer_epoch), bool(body.committed)
        )
    return response_for(
        header.api_key, header.api_version, {"throttle_time": 0, "error_code": error}
    )
