"""Fetch (1): whole batches from each partition, waiting up to max_wait for min_bytes.

Record bytes go out as stored, never re-encoded. Fetch sessions (KIP-227) are declined by
answering session id 0, which every client accepts as "send full requests".

Transactions: every partition reports its last stable offset (the first offset of its oldest
open transaction, else the high watermark). With ``isolation_level`` 1 (read_committed) the
read stops there, and the answer lists the aborted transactions whose records overlap what is
returned, so the consumer drops them (:mod:`shoal.coordinator.partition_txns`).

Leader epochs (KIP-320), as Kafka's Partition checks them: a ``current_leader_epoch`` (v9+)
older than the partition's is FENCED_LEADER_EPOCH (with the current leader and epoch and the
response's node_endpoints from v16, as KafkaApis.handleFetchRequest sets them: none before),
a newer one UNKNOWN_LEADER_EPOCH; a negative one asks for no check. A ``last_fetched_epoch``
(v12+) whose end in this log's epoch history lies before the fetch offset (the client read
records a crash then erased) gets no records but a ``diverging_epoch``: where to truncate.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from shoal.broker.leader_epochs import fence
from shoal.buffers import Buffer
from shoal.coordinator.partition_txns import PartitionTxns
from shoal.protocol import ErrorCode, Request
from shoal.protocol.fetch_response import (
    FIRST_WITH_NODE_ENDPOINTS,
    AbortedTransaction,
    FetchedPartition,
    FetchedTopic,
    FetchResponse,
    NodeEndpoint,
)
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType
from shoal.storage import OffsetOutOfRangeError, PartitionLog, ReadWouldWait, StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

DEFAULT_FETCH_MAX_BYTES = 50 * 1024 * 1024
"""Used when a client sends max_bytes <= 0 (v0-v2 had none): the Java consumer's default."""

FETCH_MAX_BYTES = 55 * 1024 * 1024
"""Kafka's broker-side fetch.max.bytes: a response is built in memory, so a client asking for
more (max_bytes is an int32 it chooses) still gets at most this much, plus the one batch that
is always returned."""


class _FetchPartition(Protocol):
    partition: int
    fetch_offset: int
    partition_max_bytes: int


class _FetchTopic(Protocol):
    """Named by topic (v4-v12) or by topic_id (v13+): both are read with getattr."""

    partitions: Sequence[_FetchPartition]


class _FetchRequest(Protocol):
    max_wait: datetime.timedelta
    min_bytes: int
    max_bytes: int
    topics: Sequence[_FetchTopic]


async def handle_fetch(broker: Broker, ctx: RequestContext, request: Request) -> FetchResponse:
    body = request_body(request.body, _FetchRequest)
    # Topic names and ids are resolved, and Read on each topic decided, once, not on every
    # round of the long poll.
    named = [(entry, *_resolve(broker, entry)) for entry in body.topics]
    readable = broker.authorized_names(
        ctx, AclOperation.READ, ResourceType.TOPIC, (name for _, name, _ in named if name)
    )
    resolved = [
        (entry, name, topic_id, name is None or name in readable) for entry, name, topic_id in named
    ]
    max_wait_s = min(body.max_wait.total_seconds(), broker.config.fetch_max_wait_ms_max / 1000)
    deadline = broker.clock.monotonic_ms() + max_wait_s * 1000
    waited_s = 0.0  # metrics (issue 17): the long poll's time, excluding the reads
    committed = int(getattr(body, "isolation_level", 0)) == READ_COMMITTED
    with_leader = request.header.api_version >= FIRST_WITH_NODE_ENDPOINTS
    while True:
        stability = _stability(broker, resolved, committed)
        topics, total = await _read_all_without_blocking(
            broker, body, resolved, ctx.response_room(), stability, committed, with_leader
        )
        remaining_s = (deadline - broker.clock.monotonic_ms()) / 1000
        if total >= max(1, int(body.min_bytes)) or remaining_s <= 0 or _has_error(topics):
            break
        # A Fetch changes nothing: while it waits for records, later requests may proceed.
        ctx.effects_applied()
        keys = [
            (t.name, p.partition_index) for t in topics if t.name is not None for p in t.partitions
        ]
        wait_started_s = time.perf_counter()
        await broker.signals.wait_any(keys, remaining_s)
        waited_s += time.perf_counter() - wait_started_s
    broker.stats.fetch_wait_s.observe(waited_s)
    broker.stats.fetched(topics)
    # Framed by shoal, not kio: the record bytes read above go to the socket as they are.
    if any(p.current_leader is not None for t in topics for p in t.partitions):
        host, port = broker.config.advertised_address(ctx.listener_name)
        endpoint = NodeEndpoint(broker.config.node_id, host, port)
        return FetchResponse(topics=topics, node_endpoints=[endpoint])
    return FetchResponse(topics=topics)


async def _read_all_without_blocking(
    broker: Broker,
    body: _FetchRequest,
    resolved: list[tuple[_FetchTopic, str | None, uuid.UUID, bool]],
    room: int,
    stability: Stability,
    committed: bool,
    with_leader: bool,
) -> tuple[list[FetchedTopic], int]:
    """Reads on the event loop when every byte is in the page cache (the common case: tailing
    consumers read what was just written), else on a worker thread, so that one consumer
    catching up from cold segments never stalls every other connection behind a disk read."""
    try:
        return _read_all(
            broker, body, resolved, room, stability, committed, with_leader, cached_only=True
        )
    except ReadWouldWait:
        # Nothing was changed by the attempt; the partitions already read are cached, so
        # reading them again costs a copy, not a disk access.
        broker.stats.fetch_reads_off_loop += 1
        return await asyncio.to_thread(
            _read_all,
            broker,
            body,
            resolved,
            room,
            stability,
            committed,
            with_leader,
            cached_only=False,
        )


def _read_all(
    broker: Broker,
    body: _FetchRequest,
    resolved: list[tuple[_FetchTopic, str | None, uuid.UUID, bool]],
    room: int,
    stability: Stability,
    committed: bool,
    with_leader: bool,
    *,
    cached_only: bool,
) -> tuple[list[FetchedTopic], int]:
    asked = int(body.max_bytes) if int(body.max_bytes) > 0 else DEFAULT_FETCH_MAX_BYTES
    # The server's room for unread responses bounds the answer too: a client that hoards
    # responses gets small ones (still at least one batch, which keeps it progressing).
    budget = min(asked, FETCH_MAX_BYTES, room)
    total = 0
    out: list[FetchedTopic] = []
    for topic_entry, name, topic_id, readable in resolved:
        parts = []
        for p in topic_entry.partitions:
            if not readable:
                # That partition only: the others of the request are read as usual (Kafka).
                parts.append(_partition(int(p.partition), ErrorCode.TOPIC_AUTHORIZATION_FAILED))
                continue
            stable = stability.get((name, int(p.partition))) if name is not None else None
            part = _read_partition(
                broker,
                name,
                p,
                budget - total,
                stable,
                committed,
                first=total == 0,
                cached_only=cached_only,
                with_leader=with_leader,
            )
            total += len(part.records)
            parts.append(part)
        out.append(FetchedTopic(name, topic_id, parts))
    return out, total


def _read_partition(
    broker: Broker,
    name: str | None,
    p: _FetchPartition,
    budget: int,
    stable: tuple[int, PartitionTxns | None] | None,
    committed: bool,
    *,
    first: bool,
    cached_only: bool,
    with_leader: bool,
) -> FetchedPartition:
    index = int(p.partition)
    plog = broker.partition(name, index) if name is not None else None
    if plog is None:
        code = (
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if name is not None else ErrorCode.UNKNOWN_TOPIC_ID
        )
        return _partition(index, code)
    current = int(getattr(p, "current_leader_epoch", -1))
    fenced = fence(plog, current) if current >= 0 else None
    if fenced is not None:
        leader = (broker.config.node_id, plog.leader_epoch)
        return _partition(
            index, fenced, leader=leader if with_leader and fenced == FENCED else None
        )
    lso, txns = stable if stable is not None else (plog.log_end_offset, None)
    aborted: list[AbortedTransaction] | None = [] if committed else None
    fetch_offset = int(p.fetch_offset)
    last_epoch = int(getattr(p, "last_fetched_epoch", -1))
    if last_epoch >= 0:
        epoch, end = plog.end_offset_for_epoch(last_epoch)
        if epoch < 0 or end < 0 or fetch_offset < plog.log_start_offset:
            return _partition(index, ErrorCode.OFFSET_OUT_OF_RANGE)
        if epoch < last_epoch or end < fetch_offset:
            return _partition(index, 0, plog=plog, lso=lso, aborted=aborted, diverging=(epoch, end))
    limit = min(int(p.partition_max_bytes), budget)
    if limit <= 0 and not first:
        return _partition(index, 0, plog=plog, lso=lso, aborted=aborted)
    try:
        # At least one batch is returned even above the limits, so that a batch larger than
        # max.partition.fetch.bytes never blocks a consumer forever.
        result = plog.read(
            fetch_offset,
            max(limit, 1),
            max_offset=lso if committed else None,
            cached_only=cached_only,
        )
    except OffsetOutOfRangeError:
        # Offsets -1 with the error, as Kafka answers (checked by tests/differential).
        return _partition(index, ErrorCode.OFFSET_OUT_OF_RANGE)
    except StorageError as exc:
        return _partition(index, exc.kafka_error_code, plog=plog, lso=lso)
    if not first and len(result.data) > limit:
        # Only the first non-empty partition may exceed the limits (KIP-74).
        return _partition(index, 0, plog=plog, lso=lso, aborted=aborted)
    if committed and txns is not None and result.data:
        aborted = [
            AbortedTransaction(a.producer_id, a.first_offset)
            for a in txns.aborted_overlapping(result.first_offset, result.next_offset)
        ]
    return _partition(index, 0, plog=plog, records=result.data, lso=lso, aborted=aborted)


def _partition(
    index: int,
    code: int,
    *,
    plog: PartitionLog | None = None,
    records: Buffer = b"",
    lso: int | None = None,
    aborted: list[AbortedTransaction] | None = None,
    diverging: tuple[int, int] | None = None,
    leader: tuple[int, int] | None = None,
) -> FetchedPartition:
    # Error partitions carry empty records, never null: librdkafka reads a null as a broken
    # message set ("invalid MessageSetSize -1") and never sees the error code.
    high = plog.log_end_offset if plog is not None else -1
    return FetchedPartition(
        partition_index=index,
        error_code=int(code),
        high_watermark=high,
        last_stable_offset=high if lso is None else min(lso, high),
        log_start_offset=plog.log_start_offset if plog is not None else -1,
        records=records,
        aborted_transactions=aborted,
        diverging_epoch=diverging,
        current_leader=leader,
    )


def _has_error(topics: list[FetchedTopic]) -> bool:
    """An error or a diverging epoch: the client must act on it now, so no long poll (Kafka)."""
    return any(p.error_code or p.diverging_epoch is not None for t in topics for p in t.partitions)


def _resolve(broker: Broker, topic_entry: _FetchTopic) -> tuple[str | None, uuid.UUID]:
    """The topic's name (None if unknown) and id (zero if unknown); requests name topics by
    name before Fetch v13 and by id from v13 on."""
    name = getattr(topic_entry, "topic", None)
    topic_id = getattr(topic_entry, "topic_id", None)
    if name is not None:
        if topic_id is None:
            topic = broker.topics.get(str(name))
            topic_id = topic.topic_id if topic is not None else _ZERO_ID
        return str(name), topic_id
    topic_id = topic_id if topic_id is not None else _ZERO_ID
    topic = broker.topic_by_id(topic_id)
    return (topic.name if topic is not None else None), topic_id


_ZERO_ID = uuid.UUID(int=0)
FENCED = ErrorCode.FENCED_LEADER_EPOCH
READ_COMMITTED = 1
"""isolation_level 1: read only below the last stable offset (0: read_uncommitted)."""

Stability = dict[tuple[str, int], tuple[int, PartitionTxns | None]]
"""(topic, partition) -> (last stable offset, the partition's transactions), taken on the event
loop before each read round (the read itself may run on a worker thread)."""


def _stability(
    broker: Broker,
    resolved: list[tuple[_FetchTopic, str | None, uuid.UUID, bool]],
    committed: bool,
) -> Stability:
    """A read_committed Fetch needs each partition's transactions (rebuilt on first use after
    a start, as a Produce would); a read_uncommitted one only reports the LSO, from the state
    if it is loaded (a partition with an open transaction has had an append since start, or
    a read_committed reader), else as the high watermark, and so never pays a rebuild."""
    out: Stability = {}
    for entry, name, _topic_id, readable in resolved:
        if name is None or not readable:
            continue
        for p in entry.partitions:
            index = int(p.partition)
            plog = broker.partition(name, index)
            if plog is None:
                continue
            if not committed:
                loaded = broker.producers.loaded_txns(name, index, plog)
                end = plog.log_end_offset
                out[(name, index)] = (
                    end
                    if loaded is None
                    else loaded.last_stable_offset(end, plog.log_start_offset),
                    loaded,
                )
                continue
            try:
                txns = broker.producers.txns(name, index, plog)
            except StorageError:
                # The state could not be rebuilt (the read reports the storage error itself).
                out[(name, index)] = (plog.log_end_offset, None)
                continue
            end = txns.last_stable_offset(plog.log_end_offset, plog.log_start_offset)
            out[(name, index)] = (end, txns)
    return out
