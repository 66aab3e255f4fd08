"""WriteTxnMarkers (27): write COMMIT or ABORT markers to partitions this broker leads.

In Kafka the transaction coordinator sends it to partition leaders; operators send it too, with
``kafka-transactions.sh abort``, to end a *hanging* transaction (its producer gone, its
coordinator no longer tracking it), which otherwise holds every read_committed reader of the
partition at its first offset. shoal's own coordinator writes its markers directly (one
process), so this request comes from operators' tools.

As Kafka: CLUSTER_ACTION on the cluster is needed, else every partition answers
CLUSTER_AUTHORIZATION_FAILED and nothing is written. Per partition: one that does not exist
answers UNKNOWN_TOPIC_OR_PARTITION; a marker whose producer epoch is older than the one the
partition knows for that producer answers INVALID_PRODUCER_EPOCH, whatever the marker's
transaction version (v2 of the request: Kafka 4.4 accepts a version 2 marker at the
partition's epoch too, tests/differential/txn_marker_scenarios.py). A marker for a producer
with no open transaction on the partition is written all the same, as Kafka does (it ends
nothing and moves no reader). A written marker is answered once it is fsynced. For
``__consumer_offsets`` the marker, checked the same way (the partition knows the producer's
epoch from its TxnOffsetCommit batches, :mod:`shoal.coordinator.txn_offsets`), makes the
producer's pending offset commits committed or drops them; a refused one leaves them pending.
A storage failure (on any partition, ``__consumer_offsets`` included, e.g. its producer state
could not be loaded) answers KAFKA_STORAGE_ERROR for that partition and writes nothing, as
Kafka's does (its group coordinator's completeTransaction passes the partition writer's
KafkaStorageException through), which Kafka's transaction coordinator retries.

A marker whose coordinator epoch is below the last one the partition saw for the producer is
from a zombie coordinator: TRANSACTION_COORDINATOR_FENCED, nothing written (the producer epoch
is checked first, as Kafka's ProducerAppendInfo does). The partition keeps the coordinator epoch
of each producer's last marker, across restarts (the producer-state snapshot, version 3).
Both checks are the broker's append operation's (``Broker.append``), so shoal's own
coordinator, which writes its markers directly with the leader epoch of ``__transaction_state``
as its coordinator epoch (:mod:`shoal.broker.transactions`), is checked the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Protocol

from shoal.broker.durable import awaitable_durable
from shoal.broker.handlers.hosted import hosted_partition
from shoal.coordinator.offsets_log import OFFSETS_TOPIC, BatchRefused
from shoal.coordinator.producer_state import EPOCH_MAX, Rejected
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.records.control import build_control_batch
from shoal.records.header import read_header
from shoal.security.acl import AclOperation
from shoal.storage import AppendInfo, StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

DURABLE_WAIT_S_MAX: Final = 30.0
"""How long a marker's fsync is waited for before the partition answers REQUEST_TIMED_OUT."""


class _Topic(Protocol):
    name: str
    partition_indexes: Sequence[int]


class _Marker(Protocol):
    producer_id: int
    producer_epoch: int
    transaction_result: bool
    topics: Sequence[_Topic]
    coordinator_epoch: int


class _WriteTxnMarkersRequest(Protocol):
    markers: Sequence[_Marker]


async def handle_write_txn_markers(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _WriteTxnMarkersRequest)
    allowed = broker.authorize_cluster(ctx, AclOperation.CLUSTER_ACTION)
    markers = []
    for marker in body.markers:
        topics = []
        for topic in marker.topics:
            partitions = []
            for index in topic.partition_indexes:
                if allowed:
                    code = await _write(broker, marker, str(topic.name), int(index))
                else:
                    code = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
                partitions.append({"partition_index": int(index), "error_code": code})
            topics.append({"name": str(topic.name), "partitions": partitions})
        markers.append({"producer_id": int(marker.producer_id), "topics": topics})
    return response_for(header.api_key, header.api_version, {"markers": markers})


async def _write(broker: Broker, marker: _Marker, name: str, index: int) -> ErrorCode:
    producer_id, epoch = int(marker.producer_id), int(marker.producer_epoch)
    if producer_id < 0 or not 0 <= epoch <= EPOCH_MAX:
        return ErrorCode.INVALID_REQUEST  # no producer to end a transaction of
    plog = hosted_partition(broker, name, index)
    if plog is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    commit = bool(marker.transaction_result)
    try:
        if name == OFFSETS_TOPIC:
            ended = broker.groups.end_txn_offsets(
                producer_id, epoch, int(marker.coordinator_epoch), commit
            )
            if ended is not None:
                await asyncio.wait_for(asyncio.shield(ended), DURABLE_WAIT_S_MAX)
            return ErrorCode.NONE
        batch = build_control_batch(
            producer_id,
            epoch,
            commit=commit,
            coordinator_epoch=int(marker.coordinator_epoch),
            timestamp=broker.clock.now_ms(),
        )
        result = broker.append(name, index, plog, batch, read_header(batch))
        if isinstance(result, Rejected):  # an older producer or coordinator epoch
            return result.error_code
        if not isinstance(result, AppendInfo):
            return ErrorCode.NONE  # a Duplicate: never for a marker, which has no sequence
        await asyncio.wait_for(
            asyncio.shield(awaitable_durable(plog.wait_durable(result.last_offset))),
            DURABLE_WAIT_S_MAX,
        )
    except BatchRefused as exc:  # __consumer_offsets: an older producer or coordinator epoch
        return exc.refused.error_code
    except StorageError as exc:
        return ErrorCode(exc.kafka_error_code)
    except TimeoutError:
        return ErrorCode.REQUEST_TIMED_OUT
    return ErrorCode.NONE
