"""DescribeProducers (61): the idempotent producers a partition remembers, as
``kafka-transactions describe-producers`` shows them.

Each is reported from the partition's producer state (the state that deduplicates retries): its
id, epoch, the last sequence and the timestamp of its last batch (the batch's max timestamp, as
stored), and the first offset of its open transaction on the partition (-1 when none;
``kafka-transactions describe-producers`` and ``find-hanging`` read it). The coordinator epoch
is that of the producer's last transaction marker on the partition (-1 before any), as Kafka
reports it; ``kafka-transactions abort`` sends it back in its marker.

A topic or partition that does not exist: UNKNOWN_TOPIC_OR_PARTITION. A partition whose state
cannot be read from its log: the storage error's code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.broker.handlers.hosted import hosted_partition
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType
from shoal.storage import StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

NO_TRANSACTION: Final = -1


class _TopicRequest(Protocol):
    name: str
    partition_indexes: Sequence[int]


class _DescribeProducersRequest(Protocol):
    topics: Sequence[_TopicRequest]


async def handle_describe_producers(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _DescribeProducersRequest)
    readable = broker.authorized_names(
        ctx, AclOperation.READ, ResourceType.TOPIC, (str(t.name) for t in body.topics)
    )
    topics = [
        {
            "name": str(topic.name),
            "partitions": [
                _describe(broker, str(topic.name), int(p))
                if str(topic.name) in readable
                else _denied(int(p))
                for p in topic.partition_indexes
            ],
        }
        for topic in body.topics
    ]
    return response_for(header.api_key, header.api_version, {"throttle_time": 0, "topics": topics})


def _denied(index: int) -> dict[str, Any]:
    """Read on the topic is needed (Kafka): that partition answers only the error."""
    denied = ErrorCode.TOPIC_AUTHORIZATION_FAILED
    return {
        "partition_index": index,
        "error_code": denied,
        "error_message": denied.message,
        "active_producers": [],
    }


def _describe(broker: Broker, name: str, index: int) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "partition_index": index,
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "active_producers": [],
    }
    plog = hosted_partition(broker, name, index)
    if plog is None:
        return {
            **answer,
            "error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            "error_message": f"partition {index} of topic {name!r} does not exist",
        }
    try:
        # Built from a snapshot and the newest batch headers on first use: bounded work.
        state = broker.producers.state(name, index, plog)
        ongoing = broker.producers.txns(name, index, plog).ongoing
    except StorageError as exc:
        return {**answer, "error_code": exc.kafka_error_code, "error_message": str(exc)}
    answer["active_producers"] = [
        {
            "producer_id": producer_id,
            "producer_epoch": entry.epoch,
            "last_sequence": entry.last_sequence,
            "last_timestamp": entry.last_timestamp_ms,
            "coordinator_epoch": entry.coordinator_epoch,
            "current_txn_start_offset": ongoing.get(producer_id, NO_TRANSACTION),
        }
        for producer_id, entry in state.items()
    ]
    return answer
