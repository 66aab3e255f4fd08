"""AddPartitionsToTxn (24): add partitions to a producer's open transaction.

v0-v3 (clients): one transaction, named by the request. As Kafka checks it: Write on the
transactional id (else every partition TRANSACTIONAL_ID_AUTHORIZATION_FAILED), then Write on
each topic and that each partition exists; if any partition fails those, it gets its error and
the others OPERATION_NOT_ATTEMPTED, and nothing is added. Otherwise the coordinator's verdict
(PRODUCER_FENCED, CONCURRENT_TRANSACTIONS, ...) is every partition's.

v4+ (KIP-890, broker to coordinator): a batch of transactions, each either added or, with
``verify_only``, only checked (is each partition in the open transaction? INVALID_TXN_STATE
if not). It needs ClusterAction on the cluster, as in Kafka; shoal's own Produce path asks its
coordinator directly, but an external caller may use this form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shoal.broker.handlers.hosted import hosted_partition
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

FIRST_BATCHED_VERSION = 4


class _Topic(Protocol):
    name: str
    partitions: Sequence[int]


class _AddPartitionsToTxnRequest(Protocol):
    """The fields differ between v0-v3 and v4+: each form is narrowed where its versions
    have it."""


class _ClientForm(Protocol):
    v3_and_below_transactional_id: str
    v3_and_below_producer_id: int
    v3_and_below_producer_epoch: int
    v3_and_below_topics: Sequence[_Topic]


class _Transaction(Protocol):
    transactional_id: str
    producer_id: int
    producer_epoch: int
    verify_only: bool
    topics: Sequence[_Topic]


class _BatchedForm(Protocol):
    transactions: Sequence[_Transaction]


async def handle_add_partitions_to_txn(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _AddPartitionsToTxnRequest)
    version = int(header.api_version)
    if version < FIRST_BATCHED_VERSION:
        client = request_body(request.body, _ClientForm)
        results = await _one(
            broker,
            ctx,
            str(client.v3_and_below_transactional_id),
            int(client.v3_and_below_producer_id),
            int(client.v3_and_below_producer_epoch),
            client.v3_and_below_topics,
            verify_only=False,
        )
        values: dict[str, Any] = {"throttle_time": 0, "results_by_topic_v3_and_below": results}
        return response_for(header.api_key, version, values)
    del body  # no field common to both forms
    transactions = request_body(request.body, _BatchedForm).transactions
    if not broker.authorize_cluster(ctx, AclOperation.CLUSTER_ACTION):
        values = {
            "throttle_time": 0,
            "error_code": ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
            "results_by_transaction": [],
        }
        return response_for(header.api_key, version, values)
    by_txn = []
    for txn in transactions:
        results = await _one(
            broker,
            ctx,
            str(txn.transactional_id),
            int(txn.producer_id),
            int(txn.producer_epoch),
            txn.topics,
            verify_only=bool(txn.verify_only),
            # v5 is the broker-to-coordinator add of transactions V2 (KIP-890 part 2).
            client_transaction_version=2 if version >= 5 else 0,
        )
        by_txn.append({"transactional_id": txn.transactional_id, "topic_results": results})
    values = {"throttle_time": 0, "error_code": 0, "results_by_transaction": by_txn}
    return response_for(header.api_key, version, values)


async def _one(
    broker: Broker,
    ctx: RequestContext,
    transactional_id: str,
    producer_id: int,
    producer_epoch: int,
    topics: Sequence[_Topic],
    *,
    verify_only: bool,
    client_transaction_version: int = 0,
) -> list[dict[str, Any]]:
    wanted = [(str(t.name), int(p)) for t in topics for p in t.partitions]
    errors: dict[tuple[str, int], ErrorCode] = {}
    if not broker.authorize(
        ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id
    ):
        errors = dict.fromkeys(wanted, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    else:
        writable = broker.authorized_names(
            ctx, AclOperation.WRITE, ResourceType.TOPIC, (name for name, _ in wanted)
        )
        for name, index in wanted:
            if name not in writable:
                errors[(name, index)] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            elif broker.topics.get(name) is None or hosted_partition(broker, name, index) is None:
                errors[(name, index)] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        if errors:
            for tp in wanted:
                errors.setdefault(tp, ErrorCode.OPERATION_NOT_ATTEMPTED)
        elif verify_only:
            errors = broker.transactions.coordinator.verify_partitions(
                transactional_id, producer_id, producer_epoch, wanted
            )
        else:
            error = await broker.transactions.add_partitions(
                transactional_id, producer_id, producer_epoch, wanted, client_transaction_version
            )
            errors = dict.fromkeys(wanted, error)
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for (name, index), error in errors.items():
        by_topic.setdefault(name, []).append(
            {"partition_index": index, "partition_error_code": error}
        )
    return [{"name": name, "results_by_partition": parts} for name, parts in by_topic.items()]
