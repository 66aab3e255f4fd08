"""DescribeTransactions (65): what the coordinator knows of each transactional id, as
``kafka-transactions describe`` shows it.

Describe on the transactional id is needed (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); an id the
coordinator does not know (never used, or expired) is TRANSACTIONAL_ID_NOT_FOUND. The
partitions of the open transaction are listed only for topics the principal may Describe, as
Kafka filters them. A finished transaction has no partitions and keeps its start time (as
Kafka's); after InitProducerId the start time is -1.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

NO_START_TIME: Final = datetime.datetime.fromtimestamp(0, tz=datetime.UTC) - datetime.timedelta(
    milliseconds=1
)
"""-1 on the wire (the field is not nullable)."""


class _DescribeTransactionsRequest(Protocol):
    transactional_ids: Sequence[str]


async def handle_describe_transactions(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _DescribeTransactionsRequest)
    states = [_describe(broker, ctx, str(txn_id)) for txn_id in body.transactional_ids]
    return response_for(
        header.api_key, header.api_version, {"throttle_time": 0, "transaction_states": states}
    )


def _describe(broker: Broker, ctx: RequestContext, txn_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "error_code": ErrorCode.NONE,
        "transactional_id": txn_id,
        "transaction_state": "",
        "transaction_timeout": 0,
        # An error answer leaves the field at its default, 0, as Kafka's does.
        "transaction_start_time": 0,
        "producer_id": -1,
        "producer_epoch": -1,
        "topics": [],
    }
    if not broker.authorize(ctx, AclOperation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, txn_id):
        return {**answer, "error_code": ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED}
    meta = broker.transactions.coordinator.get(txn_id)
    if meta is None:
        return {**answer, "error_code": ErrorCode.TRANSACTIONAL_ID_NOT_FOUND}
    visible = broker.authorized_names(
        ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, {t for t, _ in meta.partitions}
    )
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(meta.partitions):
        if topic in visible:
            by_topic.setdefault(topic, []).append(partition)
    return {
        **answer,
        "transaction_state": meta.state.value,
        "transaction_timeout": meta.timeout_ms,
        "transaction_start_time": meta.txn_start_ms if meta.txn_start_ms >= 0 else NO_START_TIME,
        "producer_id": meta.producer_id,
        "producer_epoch": meta.producer_epoch,
        "topics": [{"topic": t, "partitions": ps} for t, ps in by_topic.items()],
    }
