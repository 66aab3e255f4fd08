"""Helpers for the cleaner tests: a compacted log on the fault-injecting file system, keyed
appends, one clean, and reading every record back."""

from __future__ import annotations

from dataclasses import dataclass

from shoal.records import DecodedBatch, SimpleRecord, build_batch, decode_batch
from shoal.records.header import read_header
from shoal.storage import LogConfig, PartitionLog
from shoal.storage.cleaner import (
    PRODUCER_ID_EXPIRATION_MS_DEFAULT,
    CleanContext,
    assess,
    clean,
    read_cleaner_checkpoint,
    write_cleaner_checkpoint,
)
from shoal.storage.offset_map import OffsetMap
from tests.storage.support import Harness

NOW = 1_700_000_000_000
"""The fake clock's start."""


def compact_harness(**config: object) -> Harness:
    settings: dict[str, object] = {
        "segment_bytes": 400,
        "checkpoint_interval_ms": 10**12,
        "compact": True,
        "retention_ms": -1,
    }
    settings.update(config)
    h = Harness(config=LogConfig(**settings))  # type: ignore[arg-type]
    h.open()
    return h


def append(
    plog: PartitionLog,
    pairs: list[tuple[bytes | None, bytes | None]],
    *,
    timestamp: int = NOW,
    producer: tuple[int, int, int] | None = None,
) -> int:
    """Append one batch of ``(key, value)`` records; returns its base offset."""
    pid, epoch, seq = producer if producer is not None else (-1, -1, -1)
    batch = build_batch(
        [SimpleRecord(k, v, headers=[("h", b"x")], timestamp=timestamp) for k, v in pairs],
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
    )
    return plog.append(batch).base_offset


def run_clean(
    plog: PartitionLog,
    now_ms: int = NOW,
    *,
    map_bytes: int = 1 << 20,
    ratio: float = 0.0,
    producer_id_expiration_ms: int = PRODUCER_ID_EXPIRATION_MS_DEFAULT,
) -> CleanContext | None:
    """Flush, then one clean if due at ``ratio``; checkpoints its end. None when not due."""
    plog.flush()
    cleanable = assess(plog, read_cleaner_checkpoint(plog), now_ms)
    if cleanable.dirty_bytes == 0 or (
        cleanable.dirty_ratio < ratio and not cleanable.due_by_max_lag
    ):
        return None
    ctx = CleanContext(
        now_ms=now_ms,
        offset_map=OffsetMap(map_bytes),
        delete_retention_ms=plog.config.delete_retention_ms,
        producer_id_expiration_ms=producer_id_expiration_ms,
    )
    end = clean(plog, cleanable, ctx)
    write_cleaner_checkpoint(plog, end)
    return ctx


@dataclass(frozen=True)
class Seen:
    offset: int
    key: bytes | None
    value: bytes | None


def read_batches(plog: PartitionLog, start: int | None = None) -> list[DecodedBatch]:
    out: list[DecodedBatch] = []
    offset = plog.log_start_offset if start is None else start
    while offset < plog.log_end_offset:
        result = plog.read(offset, 1 << 20)
        data = memoryview(result.data)
        position = 0
        while position < len(data):
            size = read_header(data, position).size
            out.append(
                decode_batch(data[position : position + size], max_uncompressed_bytes=1 << 24)
            )
            position += size
        if not data and not any(True for _ in plog.headers_from(offset)):
            break  # every batch past ``offset`` was cleaned away (the active segment is empty)
        assert result.next_offset > offset, "reads must advance"
        offset = result.next_offset
    return out


def read_records(plog: PartitionLog) -> list[Seen]:
    return [Seen(r.offset, r.key, r.value) for b in read_batches(plog) for r in b.records]
