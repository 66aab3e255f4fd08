"""ShareFetch (78), v1-v2: acknowledge what the request carries, then acquire records of the
member's share session for it (KIP-932).

Order as Kafka's: the session epoch is checked first (SHARE_SESSION_NOT_FOUND /
INVALID_SHARE_SESSION_EPOCH, nothing applied), the piggy-backed acknowledgements are applied
partition by partition (each partition's AcknowledgeErrorCode), then the session's partitions
are read from their next Available record and what was read is acquired, at most MaxRecords
records in all (the acknowledgements' state writes run meanwhile); in Kafka's default
``batch_optimized`` acquire mode (v1, and v2's ShareAcquireMode 0) a limit that falls inside a
stored batch of new records takes the rest of that batch too, in ``record_limit`` (v2, 1)
MaxRecords is exact. The whole stored batches
holding acquired records go out, no others; the client keeps only the AcquiredRecords ranges
(and acknowledges as GAP an acquired offset that holds no data record: a transaction marker,
which is acquired like any offset read, as Kafka does). With nothing to acquire the
request waits up to MaxWaitMs for an append, a release or a lock to expire. Epoch -1 closes
the session: acknowledgements only, then what the member still holds is released; so does
the close of the connection that opened the session (``ShareGroups.connection_closed``).
"""

from __future__ import annotations

import asyncio
import bisect
import datetime
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shoal.broker.handlers.group_common import may_use_group
from shoal.broker.handlers.share_common import (
    AckOutcome,
    acknowledge,
    load_states,
    settled,
    topic_name,
)
from shoal.broker.leader_epochs import epoch_of
from shoal.broker.share_groups import (
    FINAL_EPOCH,
    INITIAL_EPOCH,
    ShareSession,
    ShareSessionError,
)
from shoal.coordinator.partition_txns import PartitionTxns
from shoal.coordinator.share_partition import AcquiredRange, SharePartition
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.records.header import read_header
from shoal.security.acl import AclOperation, ResourceType
from shoal.storage import OffsetOutOfRangeError, PartitionLog, ReadWouldWait, StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

SHARE_FETCH_MAX_BYTES = 55 * 1024 * 1024
"""As Fetch's fetch.max.bytes: the most one answer carries (plus its first batch)."""
DEFAULT_MAX_RECORDS = 500
"""v0 had no MaxRecords; the Java share consumer's max.poll.records default."""
BATCH_OPTIMIZED, RECORD_LIMIT = 0, 1
"""ShareFetch v2's ShareAcquireMode (KIP-1206): whole stored batches (Kafka's default, and
all that v1 knows), or at most MaxRecords records."""
SHARE_READ_CHUNK_BYTES = 1024 * 1024
"""How much of the log one read of a share fetch takes (whole batches, at least one): a
fetch reads on chunk by chunk only while it acquires less than MaxRecords."""


class _AckBatch(Protocol):
    first_offset: int
    last_offset: int
    acknowledge_types: Sequence[int]


class _FetchPartition(Protocol):
    partition_index: int
    acknowledgement_batches: Sequence[_AckBatch]


class _FetchTopic(Protocol):
    topic_id: uuid.UUID | None
    partitions: Sequence[_FetchPartition]


class _ForgottenTopic(Protocol):
    topic_id: uuid.UUID | None
    partitions: Sequence[int]


class _ShareFetchRequest(Protocol):
    group_id: str | None
    member_id: str | None
    share_session_epoch: int
    max_wait: datetime.timedelta
    max_bytes: int
    topics: Sequence[_FetchTopic]
    forgotten_topics_data: Sequence[_ForgottenTopic]


def acquire_mode(body: object) -> int:
    """The request's ShareAcquireMode (v2 on; batch_optimized before)."""
    return int(getattr(body, "share_acquire_mode", BATCH_OPTIMIZED))


class _Partition:
    """One partition's part of the answer, filled as the request is served."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.error = ErrorCode.NONE
        self.ack_error = ErrorCode.NONE
        self.ack_message: str | None = None
        self.records: bytes = b""
        self.acquired: list[AcquiredRange] = []
        self.acquired_from: SharePartition | None = None
        """The share-partition ``acquired`` was taken from (given back if never answered)."""
        self.told = False
        """Whether the answer must name it (an error, an acknowledgement, records)."""


async def handle_share_fetch(broker: Broker, ctx: RequestContext, request: Request) -> ResponseBody:
    header, body = request.header, request_body(request.body, _ShareFetchRequest)
    shares = broker.share_groups
    lock_ms = shares.lock_duration_ms(body.group_id or "")

    unknown: list[tuple[uuid.UUID | None, int]] = []

    def answer(
        error: ErrorCode, message: str | None, parts: dict[tuple[str, int], _Partition]
    ) -> ResponseBody:
        values = _response(broker, ctx, error, message, lock_ms, parts)
        for topic_id, index in unknown:
            values["responses"].append(
                {
                    "topic_id": topic_id,
                    "partitions": [
                        {
                            "partition_index": index,
                            "error_code": ErrorCode.UNKNOWN_TOPIC_ID,
                            "acknowledge_error_code": ErrorCode.NONE,
                            "current_leader": {"leader_id": -1, "leader_epoch": -1},
                            "records": b"",
                            "acquired_records": [],
                        }
                    ],
                }
            )
        return response_for(header.api_key, header.api_version, values)

    group_id, member_id = body.group_id or "", body.member_id or ""
    epoch = int(body.share_session_epoch)
    if not group_id or not member_id:
        return answer(ErrorCode.INVALID_REQUEST, "GroupId and MemberId must be set", {})
    if not may_use_group(broker, ctx, group_id):
        return answer(ErrorCode.GROUP_AUTHORIZATION_FAILED, None, {})
    named = [(t, topic_name(broker, t.topic_id)) for t in body.topics]
    if acquire_mode(body) not in (BATCH_OPTIMIZED, RECORD_LIMIT):
        return answer(
            ErrorCode.INVALID_REQUEST, f"Unknown ShareAcquireMode {acquire_mode(body)}", {}
        )
    if epoch == INITIAL_EPOCH and any(
        p.acknowledgement_batches for t in body.topics for p in t.partitions
    ):
        return answer(
            ErrorCode.INVALID_REQUEST,
            "Acknowledge data present on initial ShareFetchRequest",
            {},
        )
    added = {(name, int(p.partition_index)) for t, name in named if name for p in t.partitions}
    forgotten = {
        (name, int(p))
        for f in body.forgotten_topics_data
        if (name := topic_name(broker, f.topic_id)) is not None
        for p in f.partitions
    }
    # The state files of the partitions this request may touch are read first, off the loop;
    # no await from the session check until the acknowledgements are applied.
    known_session = shares.sessions.get((group_id, member_id))
    touched = added | (known_session.partitions if known_session is not None else set())
    may_read = broker.authorized_names(
        ctx, AclOperation.READ, ResourceType.TOPIC, {name for name, _ in touched}
    )
    await load_states(broker, group_id, {tp for tp in touched if tp[0] in may_read})
    shares.expire(group_id)
    closing = shares.sessions.get((group_id, member_id)) if epoch == FINAL_EPOCH else None
    try:
        session = shares.session(group_id, member_id, epoch, added, forgotten, ctx.connection_id)
    except ShareSessionError as exc:
        return answer(exc.code, str(exc), {})
    # Read is decided for the request's topics and the session's (an incremental request
    # names only what changed).
    in_session = {tp[0] for tp in session.partitions} if session is not None else set()
    readable = broker.authorized_names(
        ctx, AclOperation.READ, ResourceType.TOPIC, {n for _, n in named if n} | in_session
    )
    parts, writes = _apply_acknowledgements(broker, group_id, member_id, named, readable, unknown)
    if closing is not None:  # after its acknowledgements: what it still holds goes back
        shares.release_session(group_id, member_id, closing.partitions)
    ctx.effects_applied()
    try:
        if session is not None:  # epoch -1 closes the session: nothing is fetched
            await _fetch(broker, group_id, member_id, session, readable, parts, body)
        # The acknowledgements' state writes (fsync) ran while the records were acquired, as
        # Kafka runs a ShareFetch's acknowledgements and its fetch side by side: the member
        # that freed room in the window is not kept from it for an fsync while parked fetches
        # take it all.
        for part, outcome in writes:
            part.ack_error, part.ack_message = await settled(outcome)
    except asyncio.CancelledError:
        _give_back(broker, group_id, member_id, parts)
        raise
    return answer(ErrorCode.NONE, None, parts)


def _give_back(
    broker: Broker, group_id: str, member_id: str, parts: dict[tuple[str, int], _Partition]
) -> None:
    """The request was cancelled (its connection closed, on which the answer would have gone)
    after it acquired records: no consumer will see them, so they are Available again at once
    (their delivery count as before) and the fetches parked on them are woken, rather than
    locked until the lock times out. Kafka acquires only as it answers, so it never holds
    records for an answer nobody gets."""
    for (topic, index), part in parts.items():
        sp = part.acquired_from
        if sp is None or broker.share_groups.partitions.get((group_id, topic, index)) is not sp:
            continue  # nothing acquired, or the state was replaced (reset, delete) since
        if sp.give_back(member_id, part.acquired):
            broker.signals.notify(topic, index)


async def _fetch(
    broker: Broker,
    group_id: str,
    member_id: str,
    session: ShareSession,
    readable: set[str] | frozenset[str],
    parts: dict[tuple[str, int], _Partition],
    body: _ShareFetchRequest,
) -> None:
    """Acquire records of the session's partitions into ``parts``: at once if any can be,
    else when an append, a release or a lock expiry makes some acquirable, or none by the
    request's max_wait. Nothing more is acquired once the session has ended (closed with
    epoch -1 by another request, its connection gone, its member left) while this request
    waited or read: the release that ended it must not be undone by its own parked fetch."""
    fetchable = sorted(tp for tp in session.partitions if tp[0] in readable)
    if len(fetchable) > 1:
        # Round robin by session epoch, as Kafka 4.4's PartitionRotateStrategy: the request's
        # budgets (MaxRecords, MaxBytes) run out on the first partitions read, and a fixed
        # order would starve the last ones for as long as the first have records.
        turn = session.epoch % len(fetchable)
        fetchable = fetchable[turn:] + fetchable[:turn]
    asked = int(body.max_bytes)
    budget = min(asked if asked > 0 else SHARE_FETCH_MAX_BYTES, SHARE_FETCH_MAX_BYTES)
    max_records = int(getattr(body, "max_records", DEFAULT_MAX_RECORDS)) or DEFAULT_MAX_RECORDS
    whole_batches = acquire_mode(body) == BATCH_OPTIMIZED
    deadline = broker.clock.monotonic_ms() + body.max_wait.total_seconds() * 1000
    while True:
        if broker.share_groups.sessions.get((group_id, member_id)) is not session:
            break
        notices = broker.signals.notices(fetchable)
        got, moved = await _acquire_all(
            broker, group_id, member_id, session, fetchable, parts, budget, max_records,
            whole_batches,
        )  # fmt: skip
        remaining_ms = deadline - broker.clock.monotonic_ms()
        if got or remaining_ms <= 0:
            break
        if moved:
            # The read held only records a read_committed group never sees (archived): what
            # follows them may be deliverable now, so read on instead of waiting for an append.
            # Each round moves a fetch offset forward, so the log end bounds the rounds.
            continue
        if broker.signals.notices(fetchable) != notices:
            # An append or a release came while this pass read off the loop: it woke nobody
            # (this fetch was not parked yet), so look again rather than park until the next
            # one. A pass with no await in it cannot see one, so this never spins.
            continue
        await broker.signals.wait_any(
            fetchable, _wait_ms(broker, group_id, fetchable, remaining_ms) / 1000
        )


def _apply_acknowledgements(
    broker: Broker,
    group_id: str,
    member_id: str,
    named: Sequence[tuple[_FetchTopic, str | None]],
    readable: set[str] | frozenset[str],
    unknown: list[tuple[uuid.UUID | None, int]],
) -> tuple[dict[tuple[str, int], _Partition], list[tuple[_Partition, AckOutcome]]]:
    """The request's partitions, and the outcome of each one's acknowledgements (applied in
    memory; their state writes still to await)."""
    parts: dict[tuple[str, int], _Partition] = {}
    writes: list[tuple[_Partition, AckOutcome]] = []
    for entry, name in named:
        for p in entry.partitions:
            index = int(p.partition_index)
            if name is None:
                unknown.append((entry.topic_id, index))
                continue
            part = parts.setdefault((name, index), _Partition(index))
            if name not in readable:
                part.error, part.told = ErrorCode.TOPIC_AUTHORIZATION_FAILED, True
                continue
            if p.acknowledgement_batches:
                outcome = acknowledge(
                    broker, group_id, member_id, name, index, p.acknowledgement_batches
                )
                writes.append((part, outcome))
                part.told = True
    return parts, writes


def _wait_ms(
    broker: Broker, group_id: str, fetchable: Sequence[tuple[str, int]], remaining_ms: float
) -> float:
    """Until an append wakes the request, or the earliest lock of these partitions expires."""
    wait_ms = remaining_ms
    for name, index in fetchable:
        sp = broker.share_groups.partitions.get((group_id, name, index))
        lock = sp.next_lock_deadline_ms() if sp is not None else None
        if lock is not None:
            wait_ms = min(wait_ms, max(lock - broker.clock.monotonic_ms(), 1))
    return wait_ms


async def _acquire_all(
    broker: Broker,
    group_id: str,
    member_id: str,
    session: ShareSession,
    fetchable: Sequence[tuple[str, int]],
    parts: dict[tuple[str, int], _Partition],
    budget: int,
    max_records: int,
    whole_batches: bool,
) -> tuple[int, bool]:
    """Reads and acquires for each partition: the number of records acquired, and whether a
    partition's fetch offset moved without any (its read was all archived). The bytes read
    from the log, whether acquired or held by others, count towards ``budget``."""
    total_records = 0
    moved = False
    total_bytes = 0
    for topic, index in fetchable:
        if total_records >= max_records or total_bytes >= budget:
            break
        part = parts.setdefault((topic, index), _Partition(index))
        plog = broker.partition(topic, index)
        if plog is None:
            part.error, part.told = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, True
            continue
        # Loaded at the request's start, but a delete may have dropped it since (an await):
        # read again off the loop then (no thread hop when it is in memory).
        await broker.share_groups.load(group_id, [(topic, index, plog)])
        sp = broker.share_groups.share_partition(group_id, topic, index, plog)
        key = (group_id, topic, index)
        if not broker.share_groups.start_durable(group_id, topic, index):
            # Its state could not be written: nothing acquired that a restart could skip.
            part.error, part.told = ErrorCode.KAFKA_STORAGE_ERROR, True
            continue

        def still_current(sp: SharePartition = sp, key: tuple[str, str, int] = key) -> bool:
            # After a read off the loop: the session may have ended, and an admin request
            # (reset, delete) may have replaced the partition's state; acquiring into either
            # would hand out records nobody can acknowledge, or that the new state gives again.
            shares = broker.share_groups
            return (
                shares.sessions.get((group_id, member_id)) is session
                and shares.partitions.get(key) is sp
            )

        if not sp.can_acquire():
            continue  # the in-flight window is full and nothing in it is Available: no read
        offset = sp.next_fetch_offset()
        txns: PartitionTxns | None = None
        end = plog.log_end_offset
        if broker.share_groups.read_committed(group_id):
            # share.isolation.level=read_committed: nothing at or past the last stable offset.
            try:
                txns = broker.producers.txns(topic, index, plog)
            except StorageError as exc:
                part.error, part.told = ErrorCode(exc.kafka_error_code), True
                continue
            end = txns.last_stable_offset(end, plog.log_start_offset)
        if offset >= end:
            continue
        try:
            records, size = await _read_and_acquire(
                plog, sp, member_id, part, offset, end, txns,
                budget - total_bytes, max_records - total_records, still_current, whole_batches,
            )  # fmt: skip
        except OffsetOutOfRangeError:
            sp.skip_to(plog.log_start_offset)
            continue
        except StorageError as exc:
            part.error, part.told = ErrorCode(exc.kafka_error_code), True
            continue
        total_bytes += size
        if not records:
            moved = moved or sp.next_fetch_offset() > offset
            continue
        part.told = True
        total_records += records
    return total_records, moved


async def _read_and_acquire(
    plog: PartitionLog,
    sp: SharePartition,
    member_id: str,
    part: _Partition,
    offset: int,
    end: int,
    txns: PartitionTxns | None,
    byte_budget: int,
    record_budget: int,
    still_current: Callable[[], bool],
    whole_batches: bool,
) -> tuple[int, int]:
    """Read the log from ``offset`` (below ``end``) a chunk at a time and acquire what was
    read, until ``record_budget`` records are acquired, ``byte_budget`` bytes are read, the
    in-flight window is full or the log ends: the records acquired and the bytes read
    (``part`` gets the records and the batches that hold them). A chunk is at most
    SHARE_READ_CHUNK_BYTES (whole batches, at least one): reading all MaxBytes (50 MiB for
    librdkafka) of a backlog for MaxRecords records copied the whole backlog on every fetch
    of every consumer. The bytes read bound the fetch, not only those it keeps: records
    other members hold are read past, and a fetch used to read on through the whole
    in-flight window of them whatever its MaxBytes (Kafka reads MaxBytes from the fetch
    offset and acquires what that holds). So the answer is at most ``byte_budget`` bytes,
    or one batch past it. ``whole_batches``: the batch_optimized acquire mode (see
    :meth:`SharePartition.acquire`), where MaxRecords and the window are soft by a batch."""
    records = size = 0
    position = offset
    while position < end and records < record_budget and size < byte_budget:
        want = min(byte_budget - size, SHARE_READ_CHUNK_BYTES)
        try:
            try:
                data = plog.read(position, want, cached_only=True).data
            except ReadWouldWait:
                data = (await asyncio.to_thread(plog.read, position, want)).data
        except StorageError:
            if records:
                break  # what was acquired goes out; the next fetch meets the error again
            raise
        size += len(data)
        archived: frozenset[int] = frozenset()
        if txns is not None:
            data, archived = _committed_view(data, txns, end)
        if not data or not still_current():
            break
        # The read may have happened off the loop: the partition's state is taken afresh.
        acquired = sp.acquire(
            member_id,
            _record_offsets(data),
            record_budget - records,
            archived,
            _batch_ends(data) if whole_batches else None,
        )
        if acquired:
            kept = _acquired_batches(data, acquired[0].first_offset, acquired[-1].last_offset)
            part.acquired.extend(acquired)
            part.acquired_from = sp
            part.records += kept
            records += sum(r.last_offset - r.first_offset + 1 for r in acquired)
        if not sp.can_acquire():
            break
        position = _next_offset(data)
    return records, size


def _batch_ends(data: bytes | bytearray) -> Callable[[int], int]:
    """The last offset of the stored batch of ``data`` (whole batches) holding an offset."""
    bases: list[int] = []
    lasts: list[int] = []
    position = 0
    while position < len(data):
        batch = read_header(data, position)
        bases.append(batch.base_offset)
        lasts.append(batch.last_offset)
        position += batch.size
    return lambda offset: lasts[bisect.bisect_right(bases, offset) - 1]


def _next_offset(data: bytes | bytearray) -> int:
    """The offset after the last stored batch of ``data`` (not empty)."""
    position = 0
    last = -1
    while position < len(data):
        batch = read_header(data, position)
        last = batch.last_offset
        position += batch.size
    return last + 1


def _committed_view(
    data: bytes | bytearray, txns: PartitionTxns, stable_end: int
) -> tuple[bytes | bytearray, frozenset[int]]:
    """What a read_committed share group may see of ``data``: the whole batches below the
    last stable offset, and the offsets of their records that aborted transactions wrote
    (Kafka archives those rather than delivering them)."""
    position = 0
    aborted: set[int] = set()
    while position < len(data):
        batch = read_header(data, position)
        if batch.base_offset >= stable_end:
            break
        if (
            batch.is_transactional
            and not batch.is_control
            and txns.is_aborted(batch.producer_id, batch.base_offset)
        ):
            aborted.update(range(batch.base_offset, batch.last_offset + 1))
        position += batch.size
    return data[:position], frozenset(aborted)


def _acquired_batches(data: bytes | bytearray, first: int, last: int) -> bytes:
    """The whole stored batches of ``data`` that hold offsets ``first``..``last``, as Kafka
    4.4's ``ShareFetchUtils.maybeSliceFetchRecords`` slices a share fetch's records: the
    client keeps only the acquired ranges, so the batches before and after them were bytes
    sent for nothing (a read of the whole backlog for MaxRecords records made every answer
    carry megabytes, and every consumer of the queue parse them)."""
    start = end = position = 0
    while position < len(data):
        batch = read_header(data, position)
        if batch.last_offset < first:
            start = position + batch.size
        end = position + batch.size
        if batch.last_offset >= last:
            break
        position = end
    return bytes(data[start:end])


def _record_offsets(data: bytes | bytearray) -> Iterator[int]:
    """Every offset of the whole stored batches read, control batches (transaction markers)
    included: Kafka 4.4's ``SharePartition.acquire`` acquires the whole fetched range, markers
    too, and the share consumer acknowledges an acquired offset that holds no data record as
    GAP (the Java client's ``ShareCompletedFetch``, librdkafka's inflight acks). Leaving a
    marker out left the fetch offset on it: a read that held only the marker acquired nothing
    and waited for an append, and read the same marker again after it. Lazily: acquisition
    stops at MaxRecords, usually long before the end of what was read."""
    position = 0
    while position < len(data):
        batch = read_header(data, position)
        yield from range(batch.base_offset, batch.last_offset + 1)
        position += batch.size


def _response(
    broker: Broker,
    ctx: RequestContext,
    error: ErrorCode,
    message: str | None,
    lock_ms: int,
    parts: dict[tuple[str, int], _Partition],
) -> dict[str, Any]:
    by_topic: dict[str, list[_Partition]] = {}
    for (topic, _), part in sorted(parts.items()):
        if part.told:
            by_topic.setdefault(topic, []).append(part)
    host, port = broker.config.advertised_address(ctx.listener_name)
    node = broker.config.node_id
    responses = []
    for name, ps in by_topic.items():
        known = broker.topics.get(name)
        if known is None:
            continue
        responses.append(
            {
                "topic_id": known.topic_id,
                "partitions": [
                    {
                        "partition_index": p.index,
                        "error_code": p.error,
                        "acknowledge_error_code": p.ack_error,
                        "acknowledge_error_message": p.ack_message,
                        "current_leader": {
                            "leader_id": node,
                            "leader_epoch": epoch_of(broker.partition(name, p.index)),
                        },
                        "records": p.records,
                        "acquired_records": [
                            {
                                "first_offset": r.first_offset,
                                "last_offset": r.last_offset,
                                "delivery_count": r.delivery_count,
                            }
                            for r in p.acquired
                        ],
                    }
                    for p in ps
                ],
            }
        )
    return {
        "throttle_time": 0,
        "error_code": error,
        "error_message": message,
        "acquisition_lock_timeout": lock_ms,
        "responses": responses,
        "node_endpoints": [{"node_id": node, "host": host, "port": port, "rack": None}],
    }
