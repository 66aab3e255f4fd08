"""Disk full, I/O errors and power loss, injected by the fault-injecting filesystem."""

from __future__ import annotations

import errno
import random

import pytest

from shoal.storage import (
    DiskFullError,
    FlushPolicy,
    LogConfig,
    LogDirectoryFailedError,
)
from tests.storage.batches import make_batch, payload_of
from tests.storage.support import Harness, read_all

NOW = 1_700_000_000_000


def batch(i: int) -> bytes:
    return make_batch(records=1 + i % 4, payload=30 + (i * 37) % 400, seed=i, timestamp=NOW + i)


@pytest.mark.parametrize("written_before_failure", [0, 1, 20, 60])
def test_enospc_mid_write_appends_nothing_and_the_log_carries_on(
    harness: Harness, written_before_failure: int
) -> None:
    harness.open()
    plog = harness.log()
    kept = [batch(i) for i in range(3)]
    for b in kept:
        plog.append(b)
    end = plog.log_end_offset
    harness.fs.fail_next_write(errno.ENOSPC, after_bytes=written_before_failure)
    with pytest.raises(DiskFullError, match="no space left"):
        plog.append(batch(3))
    assert plog.log_end_offset == end
    assert read_all(harness) == [payload_of(b) for b in kept]
    later = batch(4)  # space came back
    plog.wait_durable(plog.append(later).last_offset).result(timeout=10)
    harness.crash()
    harness.open()
    assert read_all(harness) == [payload_of(b) for b in [*kept, later]]


def test_disk_full_when_rolling_a_segment_is_an_error_not_a_hole() -> None:
    h = Harness(config=LogConfig(segment_bytes=1000, checkpoint_interval_ms=10**12))
    h.open()
    plog = h.log()
    appended = []
    h.fs.space_left_bytes = 5000
    with pytest.raises(DiskFullError):
        for i in range(100):
            b = batch(i)
            plog.append(b)
            appended.append(b)
    h.fs.space_left_bytes = None
    assert read_all(h) == [payload_of(b) for b in appended]
    extra = batch(500)
    plog.append(extra)
    assert read_all(h) == [payload_of(b) for b in [*appended, extra]]


@pytest.mark.parametrize("what", ["checkpoint", "side file"])
def test_a_full_disk_while_saving_a_small_file_keeps_the_old_one_and_the_directory_writable(
    harness: Harness, what: str
) -> None:
    """Found by the reliability suite: a checkpoint written while the disk was full failed the
    whole directory until a restart. Its temporary copy is all that was lost: the old file is
    whole, so the write is refused (DiskFullError) and retried once space is freed."""
    harness.open()
    plog = harness.log()
    kept = [batch(i) for i in range(3)]
    for b in kept:
        plog.append(b)
    plog.flush()
    harness.fs.space_left_bytes = 0
    with pytest.raises(DiskFullError, match="no space"):
        if what == "checkpoint":
            plog.checkpoint()
        else:
            plog.write_side_file("producers", b"state")
    harness.fs.space_left_bytes = None
    assert not any(name.endswith(".tmp") for name in harness.fs.listdir(plog.directory))
    later = batch(3)  # the directory still takes writes
    plog.wait_durable(plog.append(later).last_offset).result(timeout=10)
    plog.checkpoint()
    harness.crash()
    harness.open()
    assert read_all(harness) == [payload_of(b) for b in [*kept, later]]


def test_failed_fsync_fails_waiters_and_makes_the_directory_read_only(harness: Harness) -> None:
    manager = harness.open()
    plog = harness.log()
    info = plog.append(batch(0))
    plog.wait_durable(info.last_offset).result(timeout=10)
    before = read_all(harness)
    harness.fs.fail_next_fsync(errno.EIO)
    info = plog.append(batch(1))
    with pytest.raises(LogDirectoryFailedError, match="read-only"):
        plog.wait_durable(info.last_offset).result(timeout=10)
    assert manager.health.failure is not None
    with pytest.raises(LogDirectoryFailedError):
        plog.append(batch(2))
    with pytest.raises(LogDirectoryFailedError):
        manager.create("other", 0)
    # Reads carry on: what is in the log is still served.
    assert read_all(harness)[: len(before)] == before
    # And a later fsync is never trusted: no new waiter is released.
    with pytest.raises(LogDirectoryFailedError):
        plog.wait_durable(info.last_offset).result(timeout=10)


def test_write_eio_fails_the_directory(harness: Harness) -> None:
    manager = harness.open()
    plog = harness.log()
    harness.fs.fail_next_write(errno.EIO, after_bytes=7)
    with pytest.raises(LogDirectoryFailedError):
        plog.append(batch(0))
    assert manager.health.failure is not None
    assert plog.log_end_offset == 0


def test_failed_undo_of_a_partial_write_fails_the_directory(harness: Harness) -> None:
    manager = harness.open()
    plog = harness.log()
    harness.fs.fail_next_write(errno.ENOSPC, after_bytes=9)
    harness.fs.fail_next_truncate()
    with pytest.raises(LogDirectoryFailedError, match="could not undo"):
        plog.append(batch(0))
    assert manager.health.failure is not None
    # After a restart the partial bytes are a torn tail and are cut.
    harness.abandon()
    harness.open()
    assert read_all(harness) == []


@pytest.mark.parametrize("keep_unsynced", [False, True])
@pytest.mark.parametrize("seed", range(12))
def test_power_loss_under_sync_loses_nothing_acknowledged(seed: int, keep_unsynced: bool) -> None:
    rng = random.Random(seed)
    config = LogConfig(segment_bytes=rng.choice([700, 3000, 1 << 20]), checkpoint_interval_ms=0)
    h = Harness(config=config)
    h.fs = type(h.fs)(seed=seed)
    acknowledged: list[bytes] = []
    for _round in range(4):
        h.open()
        plog = h.log()
        assert read_all(h) == acknowledged  # payloads (without baseOffset)
        for i in range(rng.randint(1, 25)):
            b = batch(len(acknowledged) + i + 1000 * _round)
            info = plog.append(b)
            if rng.random() < 0.7:
                plog.wait_durable(info.last_offset).result(timeout=10)
                acknowledged = [*read_all(h)]  # everything up to here is now durable
        stored_before_crash = read_all(h)
        h.crash(keep_unsynced=keep_unsynced)
        h.open()
        survived = read_all(h)
        assert survived[: len(acknowledged)] == acknowledged
        assert survived == stored_before_crash[: len(survived)]  # a prefix: no hole, no reorder
        acknowledged = survived
        h.close()


@pytest.mark.parametrize("keep_unsynced", [False, True])
@pytest.mark.parametrize("seed", range(12))
def test_power_loss_under_none_loses_only_a_suffix(seed: int, keep_unsynced: bool) -> None:
    rng = random.Random(seed)
    config = LogConfig(
        segment_bytes=rng.choice([600, 2500]),
        flush_policy=FlushPolicy.NONE,
        checkpoint_interval_ms=0,
    )
    h = Harness(config=config)
    h.fs = type(h.fs)(seed=seed)
    h.open()
    plog = h.log()
    for i in range(rng.randint(5, 80)):
        plog.append(batch(i))
    stored = read_all(h)
    h.crash(keep_unsynced=keep_unsynced)
    h.open()
    survived = read_all(h)
    assert survived == stored[: len(survived)]
    assert h.log().log_end_offset == sum(1 + i % 4 for i in range(len(survived)))
