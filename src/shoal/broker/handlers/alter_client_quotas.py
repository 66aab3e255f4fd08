"""AlterClientQuotas (49), v0-v1: set or remove quota configs of user, client-id and ip
entities, each entity refused or applied on its own, with Kafka's errors and messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation
from shoal.security.quota_store import Alteration

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class _Entity(Protocol):
    entity_type: str
    entity_name: str | None


class _Op(Protocol):
    key: str
    value: float
    remove: bool


class _Entry(Protocol):
    entity: Sequence[_Entity]
    ops: Sequence[_Op]


class _AlterClientQuotasRequest(Protocol):
    entries: Sequence[_Entry]
    validate_only: bool


async def handle_alter_client_quotas(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header = request.header
    body = request_body(request.body, _AlterClientQuotasRequest)
    alterations = [
        Alteration(
            [(e.entity_type, e.entity_name) for e in entry.entity],
            [(op.key, None if op.remove else float(op.value)) for op in entry.ops],
        )
        for entry in body.entries
    ]
    if not broker.authorize_cluster(ctx, AclOperation.ALTER_CONFIGS):
        denied = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        refused = [
            {
                "error_code": denied,
                "error_message": denied.message,
                "entity": [
                    {"entity_type": e.entity_type, "entity_name": e.entity_name}
                    for e in entry.entity
                ],
            }
            for entry in body.entries
        ]
        return response_for(header.api_key, header.api_version, {"entries": refused})
    results = broker.quotas.store.alter(alterations, validate_only=body.validate_only)
    entries = [
        {
            "error_code": ErrorCode.NONE if result.error is None else result.error.code,
            "error_message": None if result.error is None else str(result.error),
            "entity": [{"entity_type": k, "entity_name": n} for k, n in result.entity],
        }
        for result in results
    ]
    return response_for(header.api_key, header.api_version, {"entries": entries})
