"""EndTxn (26): commit or abort the producer's open transaction.

Write on the transactional id is needed (TRANSACTIONAL_ID_AUTHORIZATION_FAILED otherwise). The
coordinator checks the producer id and epoch (INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED) and
the state; the answer comes once the markers are written to every partition of the transaction
and fsynced (see :mod:`shoal.broker.transactions`). A retry of an EndTxn that completed gets
success again; one that arrives while the markers are being written, CONCURRENT_TRANSACTIONS.

v5 is transactions V2 (KIP-890 part 2): the coordinator bumps the producer's epoch at every
end (the markers carry the new epoch, which fences anything the producer still had in flight
for the transaction) and the response names the producer id and epoch for the next one; see
docs/transactions.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType

TRANSACTIONS_V2_END_TXN_VERSION: Final = 5
"""The first EndTxn version of transactions V2: the end bumps the epoch and answers it."""

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
    producer_id, producer_epoch = -1, -1
    if not broker.authorize(
        ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id
    ):
        error = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    elif header.api_version >= TRANSACTIONS_V2_END_TXN_VERSION:
        error, producer_id, producer_epoch = await broker.transactions.end_txn_bumping(
            transactional_id, int(body.producer_id), int(body.producer_epoch), bool(body.committed)
        )
    else:
        error = await broker.transactions.end_txn(
            transactional_id, int(body.producer_id), int(body.producer_epoch), bool(body.committed)
        )
    fields: dict[str, object] = {"throttle_time": 0, "error_code": error}
    if header.api_version >= TRANSACTIONS_V2_END_TXN_VERSION:
        fields |= {"producer_id": producer_id, "producer_epoch": producer_epoch}
    return response_for(header.api_key, header.api_version, fields)
