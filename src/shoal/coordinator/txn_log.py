"""The ``__transaction_state`` log: every transactional id's metadata as keyed records.

Every change the transaction coordinator makes is one record, appended through the broker's
append operation and fsynced before the coordinator answers (so an acknowledged InitProducerId,
AddPartitionsToTxn or EndTxn is never forgotten by a crash). The records are Kafka's
(TransactionLogKey v0, TransactionLogValue v1 with the tagged fields transactions V2 needs:
:mod:`shoal.coordinator.txn_log_format`), so Kafka's tools read the log as they read Kafka's;
a null value is the id's expiry (Dead). Kafka keeps them in 50 partitions; shoal's
coordinator is one, with one partition.

Logs written before shoal used Kafka's format hold JSON records, which still load::

    key   {"k": "txn", "id": <transactional id>}
    value {"pid", "epoch", "last_epoch", "timeout_ms", "state", "partitions": [[topic, p], ...],
           "start_ms", "update_ms"}    (a V2-era JSON record also has "prev_pid", "next_pid",
           "tv"; without them they read as Kafka reads a v0 value: -1, -1, 0)

Start-up replays the log; the last record of an id wins. A transaction found in PrepareCommit
or PrepareAbort was acknowledged to its client (or about to be) but its markers may not all be
written: the coordinator writes them again (:meth:`TransactionCoordinator.unfinished`).

The log is bounded as the offsets log is: past :data:`SNAPSHOT_BYTES` (and twice the last
snapshot) the whole state is appended again and, once durable, everything before it deleted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any, Final

from shoal.coordinator.keyed_log import keyed_records
from shoal.coordinator.txn_coordinator import TxnMetadata
from shoal.coordinator.txn_log_format import (
    TxnLogValue,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)
from shoal.coordinator.txn_state import TxnState
from shoal.records import SimpleRecord, build_batch
from shoal.storage import AppendInfo, PartitionLog

log = logging.getLogger(__name__)

TXN_STATE_TOPIC: Final = "__transaction_state"
SNAPSHOT_BYTES: Final = 16 * 1024 * 1024
"""Log size past which the state is rewritten and the older records deleted: a record is a few
hundred bytes, so this is tens of thousands of state changes between rewrites."""
RECORDS_PER_BATCH_MAX: Final = 1000
"""Records per batch when many are written at once (a snapshot); keeps batches small."""

BatchWriter = Callable[[bytes], AppendInfo]
"""Appends one batch to the log (the broker's append operation); raises StorageError."""


def _dump(doc: dict[str, Any] | None) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def txn_key(transactional_id: str) -> bytes:
    return encode_key(transactional_id)


def txn_value(meta: TxnMetadata) -> bytes | None:
    if meta.state is TxnState.DEAD:
        return None
    return encode_value(
        TxnLogValue(
            meta.producer_id,
            meta.producer_epoch,
            meta.timeout_ms,
            meta.state,
            frozenset(meta.partitions),
            meta.last_update_ms,
            meta.txn_start_ms,
            meta.previous_producer_id,
            meta.next_producer_id,
            meta.client_transaction_version,
            meta.last_producer_epoch,
        )
    )


def _from_value(transactional_id: str, value: TxnLogValue) -> TxnMetadata:
    return TxnMetadata(
        transactional_id,
        producer_id=value.producer_id,
        producer_epoch=value.producer_epoch,
        timeout_ms=value.timeout_ms,
        state=value.state,
        last_producer_epoch=value.last_producer_epoch,
        partitions=set(value.partitions),
        txn_start_ms=value.start_ms,
        last_update_ms=value.last_update_ms,
        client_transaction_version=value.client_transaction_version,
        previous_producer_id=value.previous_producer_id,
        next_producer_id=value.next_producer_id,
    )


def legacy_json_value(meta: TxnMetadata) -> bytes | None:
    """The JSON value shoal wrote before it used Kafka's format (tests of old logs)."""
    if meta.state is TxnState.DEAD:
        return None
    return _dump(
        {
            "pid": meta.producer_id,
            "epoch": meta.producer_epoch,
            "last_epoch": meta.last_producer_epoch,
            "timeout_ms": meta.timeout_ms,
            "state": meta.state.value,
            "partitions": sorted([t, p] for t, p in meta.partitions),
            "start_ms": meta.txn_start_ms,
            "update_ms": meta.last_update_ms,
            "prev_pid": meta.previous_producer_id,
            "next_pid": meta.next_producer_id,
            "tv": meta.client_transaction_version,
        }
    )


def _json_metadata(transactional_id: str, value: dict[str, Any]) -> TxnMetadata:
    return TxnMetadata(
        transactional_id,
        producer_id=int(value["pid"]),
        producer_epoch=int(value["epoch"]),
        timeout_ms=int(value["timeout_ms"]),
        state=TxnState(value["state"]),
        last_producer_epoch=int(value["last_epoch"]),
        partitions={(str(t), int(p)) for t, p in value["partitions"]},
        txn_start_ms=int(value["start_ms"]),
        last_update_ms=int(value["update_ms"]),
        previous_producer_id=int(value.get("prev_pid", -1)),
        next_producer_id=int(value.get("next_pid", -1)),
        client_transaction_version=int(value.get("tv", 0)),
    )


class TxnLog:
    def __init__(self, plog: PartitionLog, write: BatchWriter, now_ms: Callable[[], int]) -> None:
        self.plog = plog
        self._write = write
        self._now_ms = now_ms
        self._snapshot_bytes = 0

    def append(self, metas: Iterable[TxnMetadata]) -> Future[None] | None:
        """Append one record per metadata; returns the future of their fsync (None if there
        was nothing to write). Raises StorageError if a write fails."""
        records = [SimpleRecord(txn_key(m.transactional_id), txn_value(m)) for m in metas]
        last = None
        for start in range(0, len(records), RECORDS_PER_BATCH_MAX):
            chunk = records[start : start + RECORDS_PER_BATCH_MAX]
            last = self._write(build_batch(chunk, base_timestamp=self._now_ms())).last_offset
        return None if last is None else self.plog.wait_durable(last)

    def replay(self) -> dict[str, TxnMetadata]:
        """Every live transactional id's metadata, as the log last says."""
        state: dict[str, TxnMetadata] = {}
        for key, value in keyed_records(self.plog):
            try:
                read = _read_json if key[:1] == b"{" else _read_kafka
                entry = read(key, value)
                if entry is None:
                    continue
                txn_id, meta = entry
                if meta is None:
                    state.pop(txn_id, None)
                else:
                    state[txn_id] = meta
            except (ValueError, KeyError, TypeError) as exc:
                # Written by shoal itself: damage or a future format. Skip it and say so.
                log.error("skipping an unreadable record in %s: %s", TXN_STATE_TOPIC, exc)
        return state

    # -- snapshots ------------------------------------------------------------------------

    def snapshot_due(self, snapshot_bytes: int = SNAPSHOT_BYTES) -> bool:
        return self.plog.size_bytes > max(snapshot_bytes, 2 * self._snapshot_bytes)

    def write_snapshot(self, metas: list[TxnMetadata]) -> tuple[Future[None], int] | None:
        """Append the whole state; returns (its fsync, its first offset), or None when there
        is no state (then nothing older is worth keeping either: the caller may delete it
        all up to the log end)."""
        first = self.plog.log_end_offset
        before = self.plog.size_bytes
        durable = self.append(metas)
        if durable is None:
            return None
        self._snapshot_bytes = self.plog.size_bytes - before
        return durable, first


Entry = tuple[str, TxnMetadata | None]
"""A record's transactional id and metadata (None: a tombstone)."""


def _read_kafka(key: bytes, value: bytes | None) -> Entry | None:
    txn_id = decode_key(key)
    if txn_id is None:
        return None
    return txn_id, None if value is None else _from_value(txn_id, decode_value(value))


def _read_json(key: bytes, value: bytes | None) -> Entry | None:
    doc = json.loads(key)
    if doc.get("k") != "txn":
        return None
    txn_id = str(doc["id"])
    return txn_id, None if value is None else _json_metadata(txn_id, json.loads(value))
