"""Control batches: the transaction markers a broker writes when a transaction ends.

A control batch has the control and transactional attribute bits, the producer's id and epoch,
no sequence, and one record::

    key   = version int16 (0) + type int16 (0 ABORT, 1 COMMIT)
    value = version int16 (0) + coordinatorEpoch int32

Readers accept higher versions and read only the fields they know, as Java's does: a later
version may append fields but keeps these first.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Final, NamedTuple

from shoal.buffers import Buffer
from shoal.records.builder import assemble_batch, encode_records
from shoal.records.errors import CorruptBatchError
from shoal.records.header import (
    ATTR_CONTROL,
    ATTR_TRANSACTIONAL,
    NO_PARTITION_LEADER_EPOCH,
    NO_SEQUENCE,
    read_header,
)
from shoal.records.reader import iter_records
from shoal.records.record import DecodedRecord, Record, SimpleRecord

CONTROL_KEY_VERSION: Final = 0
END_TXN_MARKER_VERSION: Final = 0

MARKER_RECORDS_BYTES_MAX: Final = 64 * 1024
"""Decompression bound when reading a control batch: a marker's one record is a few dozen
bytes, so anything near this is not a marker."""

_KEY: Final = struct.Struct(">hh")  # version, type
_END_TXN_VALUE: Final = struct.Struct(">hi")  # version, coordinatorEpoch


class ControlType(IntEnum):
    """Control record types. Only the transaction markers occur in a partition's data log."""

    ABORT = 0
    COMMIT = 1


class EndTxnMarker(NamedTuple):
    """A decoded transaction marker."""

    commit: bool
    coordinator_epoch: int


def build_control_batch(
    producer_id: int,
    producer_epoch: int,
    *,
    commit: bool,
    coordinator_epoch: int,
    timestamp: int,
    base_offset: int = 0,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
) -> bytes:
    """Build the marker batch that ends ``producer_id``'s transaction (commit or abort)."""
    if producer_id < 0:
        raise ValueError(f"a transaction marker needs a producer id, not {producer_id}")
    kind = ControlType.COMMIT if commit else ControlType.ABORT
    marker = SimpleRecord(
        key=_KEY.pack(CONTROL_KEY_VERSION, kind),
        value=_END_TXN_VALUE.pack(END_TXN_MARKER_VERSION, coordinator_epoch),
        timestamp=timestamp,
    )
    section, _max = encode_records([marker], timestamp)
    return assemble_batch(
        section,
        base_offset=base_offset,
        partition_leader_epoch=partition_leader_epoch,
        attributes=ATTR_CONTROL | ATTR_TRANSACTIONAL,
        last_offset_delta=0,
        base_timestamp=timestamp,
        max_timestamp=timestamp,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=NO_SEQUENCE,
        record_count=1,
    )


def control_type(record: Record | DecodedRecord) -> int:
    """Return the type id in a control record's key (a :class:`ControlType` when known)."""
    key = record.key
    if key is None or len(key) < _KEY.size:
        raise CorruptBatchError(f"control record key must be at least {_KEY.size} bytes: {key!r}")
    version, kind = _KEY.unpack_from(key)
    if version < 0:
        raise CorruptBatchError(f"control record key has a negative version {version}")
    return int(kind)


def read_end_txn_marker(record: Record | DecodedRecord) -> EndTxnMarker:
    """Decode a transaction marker record; raise :class:`CorruptBatchError` if it is not one."""
    kind = control_type(record)
    if kind not in (ControlType.ABORT, ControlType.COMMIT):
        raise CorruptBatchError(f"control record type {kind} is not a transaction marker")
    value = record.value
    if value is None or len(value) < _END_TXN_VALUE.size:
        raise CorruptBatchError(
            f"transaction marker value must be at least {_END_TXN_VALUE.size} bytes: {value!r}"
        )
    version, coordinator_epoch = _END_TXN_VALUE.unpack_from(value)
    if version < 0:
        raise CorruptBatchError(f"transaction marker has a negative version {version}")
    return EndTxnMarker(kind == ControlType.COMMIT, coordinator_epoch)


def transaction_marker(batch: Buffer) -> EndTxnMarker | None:
    """The transaction marker in ``batch`` (exactly one whole batch), or None when the batch
    is not a control batch or its record is not a COMMIT/ABORT marker.

    The one place markers are recognised in stored data: the producer-state replay uses it,
    and so can the log cleaner (compaction), which must keep markers until the transactions
    they end are cleaned. Raises :class:`CorruptBatchError` for a damaged control batch.
    """
    header = read_header(batch)
    if not header.is_control:
        return None
    for record in iter_records(batch, max_uncompressed_bytes=MARKER_RECORDS_BYTES_MAX):
        if control_type(record) not in (ControlType.ABORT, ControlType.COMMIT):
            return None
        return read_end_txn_marker(record)
    return None
