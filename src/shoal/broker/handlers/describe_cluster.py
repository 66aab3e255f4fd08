"""DescribeCluster (60): the cluster id, this broker (the only one) and the controller (itself)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import CLUSTER_NAME, AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

ENDPOINT_BROKERS: Final = 1
"""KIP-919 endpoint types: 1 brokers, 2 controllers. shoal has no separate controller endpoint."""


class _DescribeClusterRequest(Protocol):
    """endpoint_type (v1+) is read with getattr."""

    include_cluster_authorized_operations: bool


async def handle_describe_cluster(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _DescribeClusterRequest)
    config = broker.config
    answer: dict[str, Any] = {
        "throttle_time": 0,
        "error_code": 0,
        "error_message": None,
        "endpoint_type": ENDPOINT_BROKERS,
        "cluster_id": config.cluster_id,
        "controller_id": config.node_id,
        "brokers": [],
        "cluster_authorized_operations": broker.authorized_operations(
            ctx,
            ResourceType.CLUSTER,
            CLUSTER_NAME,
            asked=bool(body.include_cluster_authorized_operations),
        ),
    }
    if body.include_cluster_authorized_operations and not broker.authorize_cluster(
        ctx, AclOperation.DESCRIBE
    ):
        answer["cluster_authorized_operations"] = 0  # as Kafka: no Describe, no operations told
    # v0 has no endpoint type: it always asks for brokers.
    endpoint = int(getattr(body, "endpoint_type", ENDPOINT_BROKERS))
    if endpoint != ENDPOINT_BROKERS:
        answer.update(
            error_code=ErrorCode.UNSUPPORTED_ENDPOINT_TYPE,
            error_message=f"shoal serves only broker endpoints (type {ENDPOINT_BROKERS}), "
            f"not type {endpoint}: it has no separate controllers",
            endpoint_type=endpoint,
        )
    else:
        # The address of the listener this request came in on, as Kafka answers.
        host, port = config.advertised_address(ctx.listener_name)
        answer["brokers"] = [
            {
                "broker_id": config.node_id,
                "host": host,
                "port": port,
                "rack": None,
                "is_fenced": False,
            }
        ]
    return response_for(header.api_key, header.api_version, answer)
