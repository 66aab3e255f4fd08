"""Share-partition state across power loss (issue 16): each acknowledgement's state is one
append to the partition's side journal (shoal.storage.journals), and after a power cut at any
moment (a write torn after any byte, an fsync that failed, any prefix of what was not fsynced
written back) the state a restarted broker loads is the last one whose write the
acknowledgement awaited, or the one being written when the power went: every acknowledged
outcome is there, and nothing else (never garbage, never an older state). State files of the
format before journals still load (an upgrade)."""

from __future__ import annotations

import asyncio
import errno
import random

import pytest

from shoal.broker.share_groups import ShareGroups
from shoal.coordinator.share_partition import (
    AcknowledgementBatch,
    SharePartition,
    SharePartitionSettings,
    ShareState,
)
from shoal.coordinator.share_state import encode_state, state_file_name
from shoal.storage import FlushPolicy, LogConfig, PartitionLog, StorageError, journals
from shoal.storage.handles import FileHandles
from shoal.storage.log import DirectoryHealth
from shoal.testing.clock import FakeClock
from shoal.testing.faultfs import FaultyFileSystem
from tests.storage.batches import make_batch

DATA = "/data"
GROUP, TOPIC = "workers", "jobs"
MEMBER = "m1"
RECORDS = 60
ROUNDS = 25
SEEDS = 40
SMALL_COMPACT_BYTES = 2048
"""The journal compaction threshold here: the runs cross many compactions."""
ACKNOWLEDGE_TYPES = (1, 2, 3)  # ACCEPT, RELEASE, REJECT


def _open_log(fs: FaultyFileSystem, clock: FakeClock) -> PartitionLog:
    return PartitionLog.open(
        fs,
        f"{DATA}/{TOPIC}-0",
        LogConfig(flush_policy=FlushPolicy.NONE),
        clock=clock,
        handles=FileHandles(fs, max_open_files=16),
        health=DirectoryHealth(DATA),
    )


def _log_with_records(fs: FaultyFileSystem, clock: FakeClock) -> PartitionLog:
    plog = _open_log(fs, clock)
    for seed in range(RECORDS // 5):
        plog.append(make_batch(records=5, payload=10, seed=seed))
    plog.flush()  # the records are durable: only the share state is under test
    return plog


def _loaded(fs: FaultyFileSystem, clock: FakeClock) -> tuple[PartitionLog, ShareGroups, ShareState]:
    """After the power comes back: the log reopened and the group's state loaded from disk."""
    plog = _open_log(fs, clock)
    shares = ShareGroups(clock, offset_reset="earliest")
    asyncio.run(shares.load(GROUP, [(TOPIC, 0, plog)]))
    return plog, shares, shares.share_partition(GROUP, TOPIC, 0, plog).snapshot()


def _round(rng: random.Random, shares: ShareGroups, plog: PartitionLog) -> ShareState:
    """Acquire what is Available, acknowledge a random part of it (random types): the state
    the acknowledgements make, which the next write must persist."""
    asyncio.run(shares.load(GROUP, [(TOPIC, 0, plog)]))  # as ShareFetch does first
    sp = shares.share_partition(GROUP, TOPIC, 0, plog)
    acquired = sp.acquire(MEMBER, list(range(sp.next_fetch_offset(), plog.log_end_offset)), 20)
    offsets = [o for r in acquired for o in range(r.first_offset, r.last_offset + 1)]
    chosen = sorted(rng.sample(offsets, rng.randint(0, len(offsets))))
    sp.acknowledge(
        MEMBER, [AcknowledgementBatch(o, o, (rng.choice(ACKNOWLEDGE_TYPES),)) for o in chosen]
    )
    return sp.snapshot()


async def _persist(shares: ShareGroups, plog: PartitionLog) -> None:
    written = shares.persist(GROUP, TOPIC, 0, plog)
    assert written is not None
    await written


@pytest.mark.parametrize("seed", range(SEEDS))
def test_power_loss_keeps_every_acknowledged_outcome(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journals, "JOURNAL_MIN_COMPACT_BYTES", SMALL_COMPACT_BYTES)
    rng = random.Random(seed)
    fs, clock = FaultyFileSystem(seed), FakeClock()
    plog = _log_with_records(fs, clock)
    shares = ShareGroups(clock, offset_reset="earliest")
    durable: ShareState | None = None
    """The state the last awaited write persisted: an acknowledgement answered after it."""
    for number in range(ROUNDS):
        state = _round(rng, shares, plog)
        faulty = rng.random() < 0.2
        if faulty:
            if rng.random() < 0.5:
                fs.fail_next_write(errno.EIO, after_bytes=rng.randint(0, 400))
            else:
                fs.fail_next_fsync(errno.EIO)
            with pytest.raises(StorageError):  # the acknowledgement is answered with an error
                asyncio.run(_persist(shares, plog))
        else:
            asyncio.run(_persist(shares, plog))
            durable = state
        if faulty or rng.random() < 0.15:
            fs.crash(keep_unsynced=rng.random() < 0.7)
            plog, shares, loaded = _loaded(fs, clock)
            # The state being written when the power went may be whole on disk; no other one.
            allowed = [durable, state] if faulty else [durable]
            if durable is None:
                allowed.append(ShareState(0, ()))  # nothing written yet: from the start
            assert loaded in allowed, (seed, number, loaded)
            durable = loaded
    fs.crash(keep_unsynced=True)
    assert _loaded(fs, clock)[2] == durable


def test_a_state_file_written_before_journals_still_loads() -> None:
    fs, clock = FaultyFileSystem(), FakeClock()
    plog = _log_with_records(fs, clock)
    old = ShareGroups(clock, offset_reset="earliest")
    # Made in memory, not loaded: a load would write the (new) journal of a fresh partition.
    sp = old.partitions[(GROUP, TOPIC, 0)] = SharePartition(clock, SharePartitionSettings(), 0)
    sp.acquire(MEMBER, range(0, 10), 10)
    sp.acknowledge(MEMBER, [AcknowledgementBatch(0, 4, (1,)), AcknowledgementBatch(7, 7, (3,))])
    before = sp.snapshot()
    # What shoal wrote before journals: the whole state as a side file.
    plog.write_side_file(state_file_name(GROUP), encode_state(GROUP, before))
    plog.close()
    plog, shares, loaded = _loaded(fs, clock)
    assert loaded == before
    # The next write goes to the journal, which wins over the old file from then on.
    sp = shares.share_partition(GROUP, TOPIC, 0, plog)
    sp.acquire(MEMBER, range(sp.next_fetch_offset(), 10), 10)
    sp.acknowledge(MEMBER, [AcknowledgementBatch(5, 6, (1,))])
    after = sp.snapshot()
    asyncio.run(_persist(shares, plog))
    assert plog.read_side_file(state_file_name(GROUP)) is None  # the old file is gone
    fs.crash()
    assert plog.read_side_file(state_file_name(GROUP)) is None  # durably
    assert _loaded(fs, clock)[2] == after != before


class CutAfterRemoveFileSystem(FaultyFileSystem):
    """Fails the directory fsync that follows a removal: a power cut then brings the removed
    file back (a test seam for the moment between the journal's write and the removal's)."""

    def remove(self, path: str) -> None:
        super().remove(path)
        self.fail_next_fsync(errno.EIO)


def test_a_crash_before_the_old_state_file_is_removed_loads_the_journal() -> None:
    fs, clock = CutAfterRemoveFileSystem(), FakeClock()
    plog = _log_with_records(fs, clock)
    old = ShareGroups(clock, offset_reset="earliest")
    # Made in memory, not loaded: a load would write the (new) journal of a fresh partition.
    sp = old.partitions[(GROUP, TOPIC, 0)] = SharePartition(clock, SharePartitionSettings(), 0)
    sp.acquire(MEMBER, range(0, 10), 10)
    sp.acknowledge(MEMBER, [AcknowledgementBatch(0, 4, (1,))])
    before = sp.snapshot()
    plog.write_side_file(state_file_name(GROUP), encode_state(GROUP, before))
    sp.acknowledge(MEMBER, [AcknowledgementBatch(5, 6, (1,))])
    after = sp.snapshot()
    with pytest.raises(StorageError):  # the journal is durable, the removal is not
        asyncio.run(_persist(old, plog))
    fs.crash()
    assert plog.read_side_file(state_file_name(GROUP)) is not None  # both files are there
    assert _loaded(fs, clock)[2] == after != before


def test_an_acknowledgement_costs_one_fsync() -> None:
    """The durability of an acknowledgement: one append and one fsync of the journal, where
    the whole-file rewrite took two fsyncs (the file's and its directory's) and a rename."""
    fs, clock = FaultyFileSystem(), FakeClock()
    plog = _log_with_records(fs, clock)
    shares = ShareGroups(clock, offset_reset="earliest")
    _round(random.Random(1), shares, plog)
    asyncio.run(_persist(shares, plog))  # the first write of a process rewrites the journal
    before = fs.fsync_count
    for number in range(5):
        _round(random.Random(number), shares, plog)
        asyncio.run(_persist(shares, plog))
    assert fs.fsync_count - before == 5


def test_records_delivered_before_any_acknowledgement_come_back_after_a_power_loss() -> None:
    """Found by the simulation (tests/simulation/share_steps.py): a share-partition made at
    the log end (share.auto.offset.reset=latest) was first written with its first
    acknowledgement, so records acquired before one, and the power gone, were skipped for
    good: the restart made the partition again at the new log end. Its start is written
    before anything is acquired from it, as Kafka initializes a share-partition's state."""
    fs, clock = FaultyFileSystem(), FakeClock()
    plog = _log_with_records(fs, clock)
    shares = ShareGroups(clock)  # latest: from the log end, RECORDS
    asyncio.run(shares.load(GROUP, [(TOPIC, 0, plog)]))
    assert shares.start_durable(GROUP, TOPIC, 0)
    plog.append(make_batch(records=5, payload=10, seed=100))
    plog.flush()
    sp = shares.share_partition(GROUP, TOPIC, 0, plog)
    acquired = sp.acquire(MEMBER, range(RECORDS, plog.log_end_offset), 10)
    assert [(r.first_offset, r.last_offset) for r in acquired] == [(RECORDS, RECORDS + 4)]
    fs.crash(keep_unsynced=False)  # no acknowledgement was written
    plog = _open_log(fs, clock)
    plog.append(make_batch(records=5, payload=10, seed=101))  # the log end moved on
    restarted = ShareGroups(clock)
    asyncio.run(restarted.load(GROUP, [(TOPIC, 0, plog)]))
    again = restarted.share_partition(GROUP, TOPIC, 0, plog)
    assert (again.start_offset, again.next_fetch_offset()) == (RECORDS, RECORDS)


def test_a_fresh_share_partition_whose_state_cannot_be_written_is_not_acquired_from() -> None:
    fs, clock = FaultyFileSystem(), FakeClock()
    plog = _log_with_records(fs, clock)
    shares = ShareGroups(clock)
    fs.fail_next_fsync(errno.EIO)
    asyncio.run(shares.load(GROUP, [(TOPIC, 0, plog)]))
    # In memory (so that requests naming it are answered), but ShareFetch acquires nothing
    # from it (KAFKA_STORAGE_ERROR) while its start is not on disk.
    assert shares.share_partition(GROUP, TOPIC, 0, plog).start_offset == RECORDS
    assert not shares.start_durable(GROUP, TOPIC, 0)
