"""Kafka's record format for ``__transaction_state`` (TransactionLogKey v0, TransactionLogValue
v0-v1), so the log reads as Kafka's does (``kafka-console-consumer`` with Kafka's
``TransactionLogMessageFormatter`` prints it) and holds what transactions V2 needs. Sans-IO:
bytes in, bytes out.

::

    key   int16 version (0) | TransactionalId: int16 length + UTF-8
    value int16 version (1: flexible, the one written; 0 is read too)
          ProducerId int64 | ProducerEpoch int16 | TransactionTimeoutMs int32
          TransactionStatus int8 (Kafka's state id) | TransactionPartitions (nullable array of
          {Topic string, PartitionIds int32 array}) | TransactionLastUpdateTimestampMs int64
          TransactionStartTimestampMs int64
          v1 tagged fields: 0 PreviousProducerId int64 (-1), 1 NextProducerId int64 (-1),
          2 ClientTransactionVersion int16 (0), and shoal's LAST_EPOCH_TAG
    tombstone (null value): the transactional id expired (Dead)

v1 is flexible (compact strings and arrays, tagged-field sections), as Kafka writes once
``transaction.version`` is 1 or more. A tagged field is written only when it is not its
default, as Kafka's generated writers do.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from shoal.coordinator.txn_state import TxnState
from shoal.protocol import DecodeError
from shoal.protocol.headers import encode_uvarint, read_uvarint

KEY_VERSION: Final = 0
VALUE_VERSION: Final = 1
PREVIOUS_PRODUCER_ID_TAG: Final = 0
NEXT_PRODUCER_ID_TAG: Final = 1
CLIENT_TRANSACTION_VERSION_TAG: Final = 2
LAST_EPOCH_TAG: Final = 100
"""shoal's own tagged field: the epoch before the last bump, which Kafka keeps only in memory
(so a retried InitProducerId after a restart gets the same answer). Kafka's readers keep an
unknown tag aside and print nothing of it; 100 leaves room for Kafka's own next tags."""
STATE_IDS: Final = {
    TxnState.EMPTY: 0,
    TxnState.ONGOING: 1,
    TxnState.PREPARE_COMMIT: 2,
    TxnState.PREPARE_ABORT: 3,
    TxnState.COMPLETE_COMMIT: 4,
    TxnState.COMPLETE_ABORT: 5,
    TxnState.DEAD: 6,
    TxnState.PREPARE_EPOCH_FENCE: 7,
}
"""Kafka's TransactionState ids (TransactionStatus in the log)."""
_STATES_BY_ID: Final = {v: k for k, v in STATE_IDS.items()}

_HEAD = struct.Struct(">hqhib")  # version, producer id, epoch, timeout, status
_TIMES = struct.Struct(">qq")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class TxnRecordError(ValueError):
    """Bytes that are not a transaction log record shoal can read."""


@dataclass(frozen=True, slots=True)
class TxnLogValue:
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState
    partitions: frozenset[tuple[str, int]]
    last_update_ms: int
    start_ms: int
    previous_producer_id: int = -1
    next_producer_id: int = -1
    client_transaction_version: int = 0
    last_producer_epoch: int = -1


def encode_key(transactional_id: str) -> bytes:
    raw = transactional_id.encode()
    return _I16.pack(KEY_VERSION) + _I16.pack(len(raw)) + raw


def decode_key(data: bytes) -> str | None:
    """The transactional id of a key, None for a key of another version (not Kafka's
    transaction key, skipped as Kafka's loader skips unknown record types)."""
    if len(data) < 4:
        raise TxnRecordError(f"a transaction log key of {len(data)} bytes")
    (version,) = _I16.unpack_from(data, 0)
    if version != KEY_VERSION:
        return None
    (size,) = _I16.unpack_from(data, 2)
    if size < 0 or 4 + size != len(data):
        raise TxnRecordError(f"a transactional id of {size} bytes in a key of {len(data)}")
    return data[4:].decode()


def encode_value(value: TxnLogValue) -> bytes:
    out = bytearray(
        _HEAD.pack(
            VALUE_VERSION,
            value.producer_id,
            value.producer_epoch,
            value.timeout_ms,
            STATE_IDS[value.state],
        )
    )
    if value.state is TxnState.EMPTY:
        out += encode_uvarint(0)  # null, as Kafka writes an Empty transaction's partitions
    else:
        by_topic: dict[str, list[int]] = {}
        for topic, partition in sorted(value.partitions):
            by_topic.setdefault(topic, []).append(partition)
        out += encode_uvarint(len(by_topic) + 1)
        for topic, ids in by_topic.items():
            raw = topic.encode()
            out += encode_uvarint(len(raw) + 1) + raw
            out += encode_uvarint(len(ids) + 1) + b"".join(_I32.pack(i) for i in ids)
            out += encode_uvarint(0)  # the partition entry's tagged fields
    out += _TIMES.pack(value.last_update_ms, value.start_ms)
    tagged = (
        (PREVIOUS_PRODUCER_ID_TAG, value.previous_producer_id, -1, _I64),
        (NEXT_PRODUCER_ID_TAG, value.next_producer_id, -1, _I64),
        (CLIENT_TRANSACTION_VERSION_TAG, value.client_transaction_version, 0, _I16),
        (LAST_EPOCH_TAG, value.last_producer_epoch, -1, _I16),
    )
    written = [(tag, field.pack(v)) for tag, v, default, field in tagged if v != default]
    out += encode_uvarint(len(written))
    for tag, data in written:
        out += encode_uvarint(tag) + encode_uvarint(len(data)) + data
    return bytes(out)


def decode_value(data: bytes) -> TxnLogValue:
    """A value of version 0 or 1; raises :class:`TxnRecordError` for anything else."""
    try:
        return _decode_value(data)
    except (struct.error, ValueError, KeyError, DecodeError) as exc:
        raise TxnRecordError(f"unreadable transaction log value: {exc}") from exc


def _decode_value(data: bytes) -> TxnLogValue:
    version, pid, epoch, timeout_ms, status = _HEAD.unpack_from(data, 0)
    if version not in (0, 1):
        raise TxnRecordError(f"transaction log value version {version}")
    flexible = version >= 1
    pos = _HEAD.size
    count, pos = _length(data, pos, flexible)
    partitions: set[tuple[str, int]] = set()
    for _ in range(max(count, 0)):
        size, pos = _length(data, pos, flexible, short=True)
        topic = data[pos : pos + size].decode()
        pos += size
        n, pos = _length(data, pos, flexible)
        for _ in range(max(n, 0)):
            partitions.add((topic, _I32.unpack_from(data, pos)[0]))
            pos += 4
        if flexible:
            pos = _skip_tags(data, pos)
    last_update_ms, start_ms = _TIMES.unpack_from(data, pos)
    pos += _TIMES.size
    tags: dict[int, bytes] = {}
    if flexible:
        tag_count, pos = read_uvarint(data, pos)
        for _ in range(tag_count):
            tag, pos = read_uvarint(data, pos)
            size, pos = read_uvarint(data, pos)
            tags[tag] = data[pos : pos + size]
            pos += size
    return TxnLogValue(
        pid,
        epoch,
        timeout_ms,
        _STATES_BY_ID[status],
        frozenset(partitions),
        last_update_ms,
        start_ms,
        _tag(tags, PREVIOUS_PRODUCER_ID_TAG, _I64, -1),
        _tag(tags, NEXT_PRODUCER_ID_TAG, _I64, -1),
        _tag(tags, CLIENT_TRANSACTION_VERSION_TAG, _I16, 0),
        _tag(tags, LAST_EPOCH_TAG, _I16, -1),
    )


def _length(data: bytes, pos: int, flexible: bool, *, short: bool = False) -> tuple[int, int]:
    """An array's count or a string's size: compact (length + 1, 0 for null) when flexible,
    else int32 (arrays) or int16 (strings) with -1 for null."""
    if flexible:
        raw, pos = read_uvarint(data, pos)
        return raw - 1, pos
    field = _I16 if short else _I32
    return field.unpack_from(data, pos)[0], pos + field.size


def _skip_tags(data: bytes, pos: int) -> int:
    count, pos = read_uvarint(data, pos)
    for _ in range(count):
        _tag, pos = read_uvarint(data, pos)
        size, pos = read_uvarint(data, pos)
        pos += size
    return pos


def _tag(tags: dict[int, bytes], tag: int, field: struct.Struct, default: int) -> int:
    raw = tags.get(tag)
    if raw is None:
        return default
    return int(field.unpack_from(raw, 0)[0])
