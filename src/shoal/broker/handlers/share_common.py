"""What ShareFetch and ShareAcknowledge share: naming topics by id, checking Group and Topic
Read, and applying a partition's acknowledgement batches to its share-partition."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol, TypeAlias

from shoal.coordinator.share_partition import AcknowledgementBatch, SharePartitionError
from shoal.protocol import ErrorCode
from shoal.storage import StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker


AckOutcome: TypeAlias = tuple[ErrorCode, str | None] | asyncio.Future[None]
"""A partition's answer (error and message), or the write of its state to await first."""


class _AckBatch(Protocol):
    first_offset: int
    last_offset: int
    acknowledge_types: Sequence[int]


async def load_states(broker: Broker, group_id: str, partitions: Iterable[tuple[str, int]]) -> None:
    """The group's share-partitions of ``partitions`` into memory, their state files read off
    the event loop: call it before the request's checks, which are then applied with no await
    in between."""
    parts = [(t, i, plog) for t, i in partitions if (plog := broker.partition(t, i)) is not None]
    await broker.share_groups.load(group_id, parts)


def acknowledge(
    broker: Broker,
    group_id: str,
    member_id: str,
    topic: str,
    index: int,
    batches: Sequence[_AckBatch],
) -> AckOutcome:
    """One partition's acknowledgements, all or none, applied in memory: the partition's
    error and message, or the write of its new state to await (see :func:`settled`)."""
    plog = broker.partition(topic, index)
    if plog is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None
    sp = broker.share_groups.share_partition(group_id, topic, index, plog)
    start = sp.start_offset
    try:
        sp.acknowledge(
            member_id,
            [
                AcknowledgementBatch(
                    int(b.first_offset),
                    int(b.last_offset),
                    tuple(int(t) for t in b.acknowledge_types),
                )
                for b in batches
            ],
        )
    except SharePartitionError as exc:
        return exc.code, str(exc)
    # Wake the share fetches parked on the partition only when this made something acquirable:
    # a record released (Available again) or the start moved (room in the in-flight window).
    # An acknowledgement inside the window frees nothing, and waking every parked fetch of
    # the queue for it made each of them read the log and find nothing, per acknowledgement.
    if sp.start_offset != start or sp.next_fetch_offset() < sp.end_offset:
        broker.signals.notify(topic, index)
    written = broker.share_groups.persist(group_id, topic, index, plog)
    return written if written is not None else (ErrorCode.NONE, None)


async def settled(outcome: AckOutcome) -> tuple[ErrorCode, str | None]:
    """The partition's answer once its state is durable: an acknowledgement is answered only
    after the state holding it is fsynced, so a restart never delivers an accepted record
    again. The write runs on a worker thread (shoal.broker.share_state_writer)."""
    if isinstance(outcome, tuple):
        return outcome
    try:
        await outcome
    except StorageError as exc:
        return ErrorCode(exc.kafka_error_code), str(exc)
    return ErrorCode.NONE, None


def topic_name(broker: Broker, topic_id: uuid.UUID | None) -> str | None:
    topic = broker.topic_by_id(topic_id) if topic_id is not None else None
    return topic.name if topic is not None else None
