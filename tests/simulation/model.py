"""What the simulated clients were told, and the invariants the broker's state must keep.

The model records only what a client could rely on: a write is *acknowledged* when its
Produce (acks=all) answered NONE; an offset commit when its OffsetCommit answered NONE. A
request that failed, timed out or died with the machine has an unknown outcome: it may or may
not have happened, and the invariants allow both.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from shoal.records import read_header
from shoal.records.header import BatchHeader
from shoal.storage import PartitionLog


class Violation(AssertionError):
    """An invariant broken: the simulation found a bug (or a planted one)."""


@dataclass
class PartitionModel:
    acked: dict[int, bytes] = field(default_factory=dict)
    """offset -> the acknowledged batch's bytes from its length field on (baseOffset aside)."""
    start_floor: int = 0
    """The highest log start a DeleteRecords answered NONE: durable, no restart may undo it."""
    seen_start: int = 0
    """The highest log start seen in this incarnation (it only moves forward while running; a
    restart may lose a move whose answer never came, down to ``start_floor``)."""


@dataclass
class StoredBatch:
    base: int
    next: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    is_control: bool
    is_transactional: bool
    body: bytes
    leader_epoch: int


def stamped_body(batch: bytes) -> bytes:
    """A batch without baseOffset and partitionLeaderEpoch, the bytes the broker stamps."""
    return batch[8:12] + batch[16:]


def read_batches(plog: PartitionLog) -> Iterator[tuple[BatchHeader, memoryview]]:
    """Every batch (header and bytes) from the log start to the log end, read through the log."""
    offset = plog.log_start_offset
    while offset < plog.log_end_offset:
        result = plog.read(offset, 1 << 20)
        data = memoryview(result.data)
        position = 0
        while position < len(data):
            header = read_header(data[position:])
            yield header, data[position : position + header.size]
            position += header.size
        if result.next_offset <= offset:
            raise Violation(f"a read at {offset} made no progress (log end {plog.log_end_offset})")
        offset = result.next_offset


def stored_batches(plog: PartitionLog) -> tuple[int, list[StoredBatch]]:
    """The log start and every batch from it to the log end, read through the log."""
    start = plog.log_start_offset
    out = [
        StoredBatch(
            header.base_offset,
            header.base_offset + header.last_offset_delta + 1,
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
            header.is_control,
            header.is_transactional,
            stamped_body(bytes(batch)),
            header.partition_leader_epoch,
        )
        for header, batch in read_batches(plog)
    ]
    return start, out


def check_partition(name: str, plog: PartitionLog, model: PartitionModel) -> list[StoredBatch]:
    """Offsets contiguous and monotonic; every acknowledged batch at its offset with its bytes;
    no idempotent batch twice. Returns the batches read."""
    start, batches = stored_batches(plog)
    if start < model.start_floor:
        raise Violation(
            f"{name}: log start {start} is below {model.start_floor}, which a DeleteRecords "
            f"answered (undone by a restart)"
        )
    if start < model.seen_start:
        raise Violation(f"{name}: log start went back from {model.seen_start} to {start}")
    model.seen_start = start
    expected = start
    for i, batch in enumerate(batches):
        # The first batch may begin below the log start (the start can fall inside it).
        if i == 0 and batch.base <= start < batch.next:
            expected = batch.base
        if batch.base != expected:
            raise Violation(f"{name}: batch at {batch.base}, expected {expected} (gap or overlap)")
        expected = batch.next
    if expected != plog.log_end_offset and batches:
        raise Violation(f"{name}: batches end at {expected}, log end is {plog.log_end_offset}")
    by_base = {b.base: b for b in batches}
    for offset, body in sorted(model.acked.items()):
        if offset < start:
            continue  # retention or DeleteRecords removed it: allowed
        stored = by_base.get(offset)
        if stored is None:
            raise Violation(
                f"{name}: acknowledged batch at offset {offset} is lost "
                f"(log [{start}, {plog.log_end_offset}))"
            )
        if stored.body != body:
            raise Violation(f"{name}: acknowledged batch at offset {offset} has other bytes")
    seen = Counter(
        (b.producer_id, b.producer_epoch, b.base_sequence)
        for b in batches
        if b.producer_id >= 0 and not b.is_control
    )
    twice = [key for key, count in seen.items() if count > 1]
    if twice:
        raise Violation(f"{name}: idempotent batches stored twice (pid, epoch, seq): {twice}")
    _check_epochs(name, plog, start, batches)
    return batches


def _check_epochs(name: str, plog: PartitionLog, start: int, batches: list[StoredBatch]) -> None:
    """The leader-epoch history rises in epoch and offset, ends at the current epoch within the
    log, and every batch carries the epoch its offset falls in (so a client's KIP-320 check,
    answered from the history, agrees with the batches it read)."""
    entries = plog.epoch_entries()
    if not entries or entries[-1][0] != plog.leader_epoch:
        raise Violation(f"{name}: epoch history {entries} does not end at {plog.leader_epoch}")
    rising = all(a[0] < b[0] and a[1] < b[1] for a, b in itertools.pairwise(entries))
    if not rising or entries[0][1] < start or entries[-1][1] > plog.log_end_offset:
        raise Violation(f"{name}: epoch history {entries} out of order or outside the log")
    for batch in batches:
        expected = plog.epoch_of_offset(max(batch.base, start))
        if batch.leader_epoch != expected:
            raise Violation(
                f"{name}: batch at {batch.base} stamped with epoch {batch.leader_epoch}, "
                f"the history says {expected}"
            )
