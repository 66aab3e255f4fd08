"""DescribeClientQuotas (48), v0-v1: the quota configs of the entities a filter matches.

A bad filter is answered with the request-level error Kafka gives (INVALID_REQUEST, or
UNSUPPORTED_VERSION for an unknown entity type) and Kafka's message, and no entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation
from shoal.security.quota_entity import QuotaRequestError, checked_filter

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class _Component(Protocol):
    entity_type: str
    match_type: int
    match: str | None


class _DescribeClientQuotasRequest(Protocol):
    components: Sequence[_Component]
    strict: bool


async def handle_describe_client_quotas(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header = request.header
    body = request_body(request.body, _DescribeClientQuotasRequest)
    if not broker.authorize_cluster(ctx, AclOperation.DESCRIBE_CONFIGS):
        denied = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        return response_for(
            header.api_key,
            header.api_version,
            {"error_code": denied, "error_message": denied.message, "entries": []},
        )
    try:
        quota_filter = checked_filter(
            [(c.entity_type, int(c.match_type), c.match) for c in body.components],
            strict=body.strict,
        )
    except QuotaRequestError as exc:
        return response_for(
            header.api_key,
            header.api_version,
            {"error_code": exc.code, "error_message": str(exc), "entries": []},
        )
    entries = [
        {
            "entity": [{"entity_type": kind, "entity_name": name} for kind, name in entity.parts],
            "values": [{"key": key, "value": value} for key, value in sorted(quotas.items())],
        }
        for entity, quotas in broker.quotas.store.describe(quota_filter)
    ]
    return response_for(
        header.api_key,
        header.api_version,
        {"error_code": ErrorCode.NONE, "error_message": None, "entries": entries},
    )
