"""Produce (0): check each partition's batch, append it, and answer once durable as asked.

A transactional batch must belong to the producer's open transaction, and to a partition
added to it (the transaction coordinator says so); else it is refused and nothing is written.

Batches of idempotent producers (producer id >= 0) pass the partition's producer-state check
first (:mod:`shoal.coordinator.producer_state`): a retry of a batch already in the log is
answered with its original offsets and not appended again; a batch out of sequence or from a
fenced epoch gets that partition's error. Check, append and recording happen with no await in
between, so no other append to the partition can slip in.

acks=0 gets no response (the connection is closed when a partition failed, as Kafka does);
acks=1 is answered after the write; acks=-1 (all) after the fsync
that covers the batch (group commit). Each partition succeeds or fails on its own.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from shoal.broker.implicit_adds import (
    IMPLICIT_ADD_PRODUCE_VERSION,
    add_for_produce,
    implicit_adds_apply,
)
from shoal.broker.topic_configs import LONG_MAX, topic_config_key
from shoal.coordinator.producer_state import BatchMetadata, Duplicate, Rejected
from shoal.protocol import ErrorCode, Request
from shoal.protocol.produce_response import (
    ProducedPartition,
    ProducedTopic,
    ProduceResponse,
    RecordError,
)
from shoal.protocol.shape import request_body
from shoal.records import (
    Compression,
    RecordsError,
    TimestampType,
    read_header,
    validate_produce_records,
)
from shoal.records.header import NO_TIMESTAMP, BatchHeader, set_max_timestamp
from shoal.records.validate import (
    RecordFault,
    RecordRule,
    RefusedRecord,
    refused_records,
    timestamp_out_of_range,
)
from shoal.security.acl import AclOperation, ResourceType
from shoal.storage import PartitionLog, StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext
    from shoal.broker.topics import Topic

log = logging.getLogger(__name__)

ZSTD_MIN_PRODUCE_VERSION = 7
"""Produce v7 is the first that may carry zstd (KIP-110); older clients cannot read it back."""


@dataclass
class AppendOutcome:
    error_code: int = 0
    error_message: str | None = None
    base_offset: int = -1
    log_append_time: int = -1
    log_start_offset: int = -1
    durable: asyncio.Future[None] | None = None
    record_errors: tuple[RecordError, ...] = ()
    """KIP-467: the records of the batch that were refused, each with why."""


class _PartitionData(Protocol):
    index: int
    records: bytes | None


class _TopicData(Protocol):
    """Named by name (v3-v12) or by topic_id (v13+): both are read with getattr."""

    partition_data: Sequence[_PartitionData]


class _ProduceRequest(Protocol):
    acks: int
    timeout: datetime.timedelta
    topic_data: Sequence[_TopicData]


async def handle_produce(
    broker: Broker, ctx: RequestContext, request: Request
) -> ProduceResponse | None:
    header, body = request.header, request_body(request.body, _ProduceRequest)
    acks = int(body.acks)
    topics: list[tuple[_TopicData, str | None, list[tuple[int, AppendOutcome]]]] = []
    resolved = [(topic_data, *_resolve_topic(broker, topic_data)) for topic_data in body.topic_data]
    refusal = _refusal(broker, ctx, body, resolved)
    not_added = await _implicit_adds(broker, body, header.api_version, resolved, refusal)
    for topic_data, name, topic in resolved:
        outcomes = []
        for partition_data in topic_data.partition_data:
            index = int(partition_data.index)
            if refusal is not None and (
                refusal.topics is None or (name is not None and name in refusal.topics)
            ):
                outcome = AppendOutcome(refusal.error_code, refusal.message)
            elif acks not in (0, 1, -1):
                outcome = AppendOutcome(ErrorCode.INVALID_REQUIRED_ACKS, "acks must be 0, 1 or -1")
            elif topic is None:
                outcome = AppendOutcome(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "unknown topic")
            elif (topic.name, index) in not_added:
                outcome = AppendOutcome(*not_added[(topic.name, index)])
            else:
                outcome = append_records(
                    broker, topic, index, partition_data.records, header.api_version, acks
                )
            outcomes.append((index, outcome))
        topics.append((topic_data, name, outcomes))
    if acks == -1:
        # The appends are the effects; only the fsync is waited for, and the next request on
        # the connection may append meanwhile (its batches join the same group commit).
        ctx.effects_applied()
        await _await_durability(
            [o for _, _, outs in topics for _, o in outs], body.timeout.total_seconds()
        )
    if acks == 0:
        # No response can say why; Kafka (KafkaApis.handleProduceRequest) closes the
        # connection when any partition failed, so the producer notices and refreshes.
        if any(o.error_code for _, _, outs in topics for _, o in outs):
            ctx.close_connection()
        return None
    return ProduceResponse(
        topics=[
            ProducedTopic(
                name=name,
                topic_id=getattr(topic_data, "topic_id", None),
                partitions=[
                    ProducedPartition(
                        index=index,
                        error_code=o.error_code,
                        base_offset=o.base_offset,
                        log_append_time_ms=o.log_append_time,
                        log_start_offset=o.log_start_offset,
                        error_message=o.error_message,
                        record_errors=o.record_errors,
                    )
                    for index, o in outcomes
                ],
            )
            for topic_data, name, outcomes in topics
        ]
    )


async def _implicit_adds(
    broker: Broker,
    body: _ProduceRequest,
    version: int,
    resolved: list[tuple[_TopicData, str | None, Topic | None]],
    refusal: _Refusal | None,
) -> dict[tuple[str, int], tuple[ErrorCode, str]]:
    """Transactions V2: add the partitions of the transactional batches to their transaction
    (see :mod:`shoal.broker.implicit_adds`) before anything is appended. Partitions that do
    not exist or are refused are left to the checks below."""
    transactional_id = getattr(body, "transactional_id", None)
    if (
        not transactional_id
        or int(body.acks) not in (0, 1, -1)
        or not implicit_adds_apply(broker, version, IMPLICIT_ADD_PRODUCE_VERSION)
    ):
        return {}
    batches = [
        ((topic.name, int(p.index)), p.records)
        for topic_data, name, topic in resolved
        if topic is not None and not topic.internal
        and (refusal is None or (refusal.topics is not None and name not in refusal.topics))
        for p in topic_data.partition_data
        if p.records and 0 <= int(p.index) < topic.partitions
    ]  # fmt: skip
    if not batches:
        return {}
    return await add_for_produce(broker, transactional_id, batches)


@dataclass(frozen=True)
class _Refusal:
    """What the principal may not write to: every topic, or the topics named."""

    error_code: int
    message: str
    topics: frozenset[str] | None = None
    """None: the whole request (a transactional id it may not use)."""


def _refusal(
    broker: Broker,
    ctx: RequestContext,
    body: _ProduceRequest,
    resolved: list[tuple[_TopicData, str | None, Topic | None]],
) -> _Refusal | None:
    """Kafka's checks before anything is written: Write on the transactional id when a batch
    is transactional (the whole request fails), then Write on each topic (its partitions
    fail). Nothing refused is written. Idempotent batches need nothing more: IdempotentWrite
    is checked by InitProducerId (KIP-679)."""
    if broker.acls is None:
        return None
    transactional_id = getattr(body, "transactional_id", None)
    if _has_transactional_batch(body) and not (
        transactional_id is not None
        and broker.authorize(
            ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id
        )
    ):
        return _Refusal(
            ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            f"{ctx.principal} may not write with transactional id {transactional_id!r}",
        )
    names = {name for _, name, _ in resolved if name is not None}
    writable = broker.authorized_names(ctx, AclOperation.WRITE, ResourceType.TOPIC, names)
    if writable == names:
        return None
    return _Refusal(
        ErrorCode.TOPIC_AUTHORIZATION_FAILED,
        f"{ctx.principal} may not write to this topic",
        frozenset(names - writable),
    )


_TRANSACTIONAL_BIT = 0x10
"""Bit 4 of a RecordBatch v2's attributes (the int16 at byte 21): the batch is transactional."""


def _has_transactional_batch(body: _ProduceRequest) -> bool:
    for topic_data in body.topic_data:
        for partition_data in topic_data.partition_data:
            records = partition_data.records
            if records is not None and len(records) > 22 and records[22] & _TRANSACTIONAL_BIT:
                return True
    return False


def _resolve_topic(broker: Broker, topic_data: _TopicData) -> tuple[str | None, Topic | None]:
    name = getattr(topic_data, "name", None)
    if name is not None:
        return name, broker.topics.get(name)
    topic_id = getattr(topic_data, "topic_id", None)
    topic = broker.topic_by_id(topic_id) if topic_id is not None else None
    return (topic.name if topic else None), topic


def append_records(
    broker: Broker, topic: Topic, index: int, records: bytes | None, version: int, acks: int
) -> AppendOutcome:
    """Check and append one partition's records as Produce does (also the admin API's way to
    produce from HTTP, so both take the same checks). With acks=-1 the outcome carries the
    fsync to wait for."""
    if topic.internal:
        # As Kafka (which lets only its own admin tools through): the coordinator alone writes
        # there, and shoal's records have a format of its own.
        return AppendOutcome(
            ErrorCode.INVALID_TOPIC_EXCEPTION, f"Cannot append to internal topic {topic.name}"
        )
    plog = broker.partition(topic.name, index) if 0 <= index < topic.partitions else None
    if plog is None:
        return AppendOutcome(
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"no partition {index} in {topic.name}"
        )
    if not records:
        return AppendOutcome(ErrorCode.INVALID_RECORD, "the partition's records are empty")
    max_bytes = int(
        broker.topic_setting(topic, "max.message.bytes") or broker.config.message_max_bytes
    )
    try:
        batch_header = validate_produce_records(records, max_batch_bytes=max_bytes)
    except RecordsError as exc:
        return AppendOutcome(exc.kafka_error_code, str(exc))
    if batch_header.compression == Compression.ZSTD and version < ZSTD_MIN_PRODUCE_VERSION:
        return AppendOutcome(
            ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, "zstd needs Produce v7 or newer"
        )
    rule = _record_rule(broker, topic)
    refusal = _record_refusal(rule, topic, index, records, batch_header)
    if refusal is not None:
        return refusal
    if batch_header.is_transactional:
        # As Kafka verifies with its coordinator (KIP-890 part 1): only a partition added to
        # the producer's open transaction, only by its current epoch. A zombie's batch, or a
        # late one after the transaction ended, writes nothing.
        error = broker.transactions.coordinator.verify_produce(
            batch_header.producer_id, batch_header.producer_epoch, (topic.name, index)
        )
        if error is not ErrorCode.NONE:
            return AppendOutcome(
                error,
                f"producer {batch_header.producer_id} (epoch {batch_header.producer_epoch}) "
                f"has no open transaction that includes {topic.name}-{index}",
            )
    batch: bytes | bytearray = records
    append_time = -1
    if rule.log_append_time:
        batch = bytearray(records)
        append_time = rule.now_ms
        set_max_timestamp(batch, 0, TimestampType.LOG_APPEND_TIME, append_time)
        batch_header = read_header(batch)
    try:
        result = broker.append(topic.name, index, plog, batch, batch_header)
    except StorageError as exc:
        return AppendOutcome(exc.kafka_error_code, str(exc))
    if isinstance(result, Rejected):
        return AppendOutcome(result.error_code, result.message)
    if isinstance(result, Duplicate):
        return _duplicate(plog, broker, topic, result.original, acks)
    info = result
    outcome = AppendOutcome(
        base_offset=info.base_offset,
        log_append_time=append_time,
        log_start_offset=info.log_start_offset,
    )
    if acks == -1:
        outcome.durable = asyncio.wrap_future(plog.wait_durable(info.last_offset))
    return outcome


MAX_DECODED_PRODUCE_BYTES = 64 * 1024 * 1024
"""Bound on a batch's decompressed size when its records must be looked at (compacted topics,
timestamps to check record by record): a produce batch is at most max.message.bytes
compressed, and this stops a decompression bomb."""

_TIMESTAMP_DEFAULTS: Final = {
    name: int(topic_config_key(name).default)
    for name in ("message.timestamp.before.max.ms", "message.timestamp.after.max.ms")
}


def _record_rule(broker: Broker, topic: Topic) -> RecordRule:
    def setting(name: str) -> int:
        value = broker.topic_setting(topic, name)
        return _TIMESTAMP_DEFAULTS[name] if value is None else int(value)

    policy = broker.topic_setting(topic, "cleanup.policy") or ""
    return RecordRule(
        require_key="compact" in policy.split(","),
        log_append_time=broker.topic_setting(topic, "message.timestamp.type") == "LogAppendTime",
        now_ms=broker.clock.now_ms(),
        before_max_ms=setting("message.timestamp.before.max.ms"),
        after_max_ms=setting("message.timestamp.after.max.ms"),
    )


def _records_need_a_look(rule: RecordRule, header: BatchHeader) -> bool:
    """Whether the batch's records must be decoded to apply ``rule``; the hot path decodes none.

    Without a key rule, only timestamps can refuse a record. The future bound is checked on the
    header's max timestamp (the largest of the batch's timestamps, which every client computes;
    shoal reads batch headers, as its time index does, and decodes no record on this path); a
    finite past bound needs every record's own timestamp, as a record may be older than the first.
    """
    if rule.require_key:
        return True
    if header.timestamp_type is TimestampType.LOG_APPEND_TIME:
        return (
            rule.log_append_time
            or header.max_timestamp == NO_TIMESTAMP
            or (timestamp_out_of_range(header.max_timestamp, rule))
        )
    if rule.log_append_time:
        return False
    if rule.before_max_ms < LONG_MAX:
        return True
    return any(
        t != NO_TIMESTAMP and timestamp_out_of_range(t, rule)
        for t in (header.base_timestamp, header.max_timestamp)
    )


def _java_long(value: int) -> int:
    """``value`` wrapped as Java's long arithmetic wraps it (Kafka's messages print the bounds
    ``now - before`` and ``now + after`` computed that way)."""
    return (value + 2**63) % 2**64 - 2**63


def _record_error(refused: RefusedRecord, rule: RecordRule, partition: str) -> RecordError:
    if refused.fault is RecordFault.NO_KEY:
        message = (
            f"Compacted topic cannot accept message without key in topic partition {partition}"
        )
    elif refused.fault is RecordFault.TIMESTAMP_OUT_OF_RANGE:
        low = _java_long(rule.now_ms - rule.before_max_ms)
        high = _java_long(rule.now_ms + rule.after_max_ms)
        message = (
            f"Timestamp {refused.timestamp} of message with offset {refused.offset} is out of "
            f"range. The timestamp should be within [{low}, {high}]"
        )
    else:
        message = (
            f"Invalid timestamp type in message DefaultRecord(offset={refused.offset}, "
            f"timestamp={refused.timestamp}, key={refused.key_size} bytes, "
            f"value={refused.value_size} bytes). Producer should not set timestamp type to "
            "LogAppendTime."
        )
    return RecordError(refused.batch_index, message)


def _record_refusal(
    rule: RecordRule, topic: Topic, index: int, records: bytes, header: BatchHeader
) -> AppendOutcome | None:
    """Kafka's record-by-record checks (``LogValidator.validateRecord``): a compacted topic
    refuses records without a key, every topic refuses CreateTime timestamps outside
    ``message.timestamp.before.max.ms``/``after.max.ms`` and a producer's LogAppendTime batch
    where the topic stamps its own. One refused record refuses the whole batch: nothing is
    written, each refused record is named in record_errors (KIP-467), and the partition's error
    is INVALID_TIMESTAMP if any refusal is about a timestamp, else INVALID_RECORD."""
    if not _records_need_a_look(rule, header):
        return None
    try:
        refused = refused_records(records, rule, max_uncompressed_bytes=MAX_DECODED_PRODUCE_BYTES)
    except RecordsError as exc:
        return AppendOutcome(exc.kafka_error_code, str(exc))
    if not refused:
        return None
    partition = f"{topic.name}-{index}"
    errors = tuple(_record_error(r, rule, partition) for r in refused)
    if any(r.fault is not RecordFault.NO_KEY for r in refused):
        return AppendOutcome(
            ErrorCode.INVALID_TIMESTAMP,
            "One or more records have been rejected due to invalid timestamp",
            record_errors=errors,
        )
    shown = ", ".join(
        f"RecordError(batchIndex={e.batch_index}, message='{e.message}')" for e in errors[:3]
    )
    message = (
        f"One or more records have been rejected due to {len(errors)} record errors in total, "
        f"and only showing the first three errors at most: [{shown}]"
    )
    return AppendOutcome(ErrorCode.INVALID_RECORD, message, record_errors=errors)


def _duplicate(
    plog: PartitionLog, broker: Broker, topic: Topic, original: BatchMetadata, acks: int
) -> AppendOutcome:
    """A retry of a batch already in the log: its original offsets, as Kafka answers.

    With acks=all the answer still waits until the original is fsynced: the first attempt may
    have timed out waiting for exactly that.
    """
    log_append_time = -1
    if broker.topic_setting(topic, "message.timestamp.type") == "LogAppendTime":
        log_append_time = original.timestamp_ms
    outcome = AppendOutcome(
        base_offset=original.first_offset,
        log_append_time=log_append_time,
        log_start_offset=plog.log_start_offset,
    )
    if acks == -1:
        outcome.durable = asyncio.wrap_future(plog.wait_durable(original.last_offset))
    return outcome


async def _await_durability(outcomes: list[AppendOutcome], timeout_s: float) -> None:
    pending = [o for o in outcomes if o.durable is not None]
    if not pending:
        return
    futures = [o.durable for o in pending if o.durable is not None]
    done, _not_done = await asyncio.wait(futures, timeout=max(timeout_s, 0.001))
    for outcome in pending:
        future = outcome.durable
        if future is None:
            continue
        if future not in done:
            future.cancel()
            outcome.error_code = ErrorCode.REQUEST_TIMED_OUT
            outcome.error_message = "the batch was written but not fsynced within the timeout"
        elif future.exception() is not None:
            exc = future.exception()
            outcome.error_code = getattr(exc, "kafka_error_code", ErrorCode.KAFKA_STORAGE_ERROR)
            outcome.error_message = str(exc)
