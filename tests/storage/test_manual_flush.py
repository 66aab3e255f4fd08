"""The flusher without its thread (the simulation's seam): nothing is fsynced until the owner
runs a round, and then the waiting appends are released."""

from __future__ import annotations

import errno

import pytest

from shoal.records import SimpleRecord, build_batch
from shoal.storage import LogConfig, LogDirectoryFailedError, LogManager
from shoal.testing.clock import FakeClock
from shoal.testing.faultfs import FaultyFileSystem


def test_appends_wait_for_the_owners_flush_round() -> None:
    fs = FaultyFileSystem()
    logs = LogManager.open(
        "/data",
        fs=fs,
        clock=FakeClock(),
        default_config=LogConfig(checkpoint_interval_ms=10**12),
        threaded_flusher=False,
    )
    plog = logs.create("t", 0)
    info = plog.append(build_batch([SimpleRecord(value=b"v")]))
    durable = plog.wait_durable(info.last_offset)
    assert not durable.done() and plog.flushed_offset == 0
    fsyncs = fs.fsync_count
    logs.flush_pending()
    assert durable.done() and durable.exception() is None
    assert plog.flushed_offset == 1 and fs.fsync_count > fsyncs
    fs.crash()
    logs.abandon()
    reopened = LogManager.open("/data", fs=fs, clock=FakeClock(), threaded_flusher=False)
    assert reopened.get("t", 0) is not None
    assert reopened.get("t", 0).log_end_offset == 1  # type: ignore[union-attr]
    reopened.close()


def test_a_full_disk_at_close_is_a_storage_failure_not_a_crash() -> None:
    """Regression (found by tests/simulation, seed 289): ENOSPC while the close saved a log's
    indexes escaped LogManager.close as a bare OSError, so the other logs were never closed."""
    fs = FaultyFileSystem()
    clock = FakeClock()
    logs = LogManager.open("/data", fs=fs, clock=clock, threaded_flusher=False)
    for partition in (0, 1):
        plog = logs.create("t", partition)
        plog.append(build_batch([SimpleRecord(value=b"v")]))
    fs.fail_next_write(errno.ENOSPC, after_bytes=3)
    logs.close()  # no exception: the failure is logged and the marker left out
    assert not fs.exists("/data/.clean-shutdown")
    reopened = LogManager.open("/data", fs=fs, clock=clock, threaded_flusher=False)
    assert not reopened.recovered_cleanly
    for partition in (0, 1):
        plog = reopened.get("t", partition)
        assert plog is not None and plog.log_end_offset == 1
        assert plog.read(0, 1000).data  # the index is rebuilt, the batch readable
    reopened.close()


def test_a_failed_fsync_during_recovery_fails_the_directory_clearly() -> None:
    """Regression (found by tests/simulation): EIO while recovery fsynced a re-checked segment
    left LogManager.open as a bare OSError instead of the directory's failure."""
    fs = FaultyFileSystem()
    clock = FakeClock()
    logs = LogManager.open("/data", fs=fs, clock=clock, threaded_flusher=False)
    logs.create("t", 0).append(build_batch([SimpleRecord(value=b"v")]))
    logs.abandon()  # a process crash: the unsynced batch is still in the page cache
    fs.fail_next_fsync(errno.EIO)
    with pytest.raises(LogDirectoryFailedError, match="fsync of recovered t-0 failed"):
        LogManager.open("/data", fs=fs, clock=clock, threaded_flusher=False)
