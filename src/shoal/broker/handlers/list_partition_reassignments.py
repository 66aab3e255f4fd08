"""ListPartitionReassignments (46): the reassignments in progress. A single node never has one (a
reassignment moves replicas between brokers), so the answer is always empty: for every
partition, for the partitions asked for, and, as in Kafka, for topics that do not exist."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.security.acl import AclOperation

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


async def handle_list_partition_reassignments(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header = request.header
    answer: dict[str, Any] = {
        "throttle_time": 0,
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "topics": [],
    }
    if not broker.authorize_cluster(ctx, AclOperation.DESCRIBE):
        denied = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        answer.update(error_code=denied, error_message=denied.message)
    return response_for(header.api_key, header.api_version, answer)
