"""LogManager: many partitions, bounded descriptors, deletion, group commit, flush policies."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from shoal.storage import FlushPolicy, LogConfig, LogId, LogManager
from shoal.testing.clock import FakeClock
from tests.storage.batches import make_batch
from tests.storage.support import Harness


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_many_partitions_with_many_segments_keep_open_files_bounded(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=400)
    baseline = open_fds()
    with LogManager.open(str(tmp_path), default_config=config, max_open_files=16) as manager:
        logs = [manager.create(f"topic.{i}", p) for i in range(10) for p in range(3)]
        for round_ in range(6):
            for plog in logs:
                plog.append(make_batch(payload=150, seed=round_))
        for plog in logs:
            plog.flush()
        assert sum(p.segment_count for p in logs) >= 60
        # Read every partition from the start: sealed segments open on demand, LRU-closed.
        for plog in logs:
            assert plog.read(0, 10_000).first_offset == 0
        # 30 pinned active segments + at most 16 sealed ones (+ lock file, flusher-free fds).
        assert manager.open_file_count <= 30 + 16
        assert open_fds() - baseline <= 30 + 16 + 4
    assert open_fds() <= baseline + 1


def test_partitions_survive_a_restart_and_names_with_dashes_parse(tmp_path: Path) -> None:
    with LogManager.open(str(tmp_path)) as manager:
        manager.create("orders-eu-west", 7).append(make_batch(records=3))
        manager.create("payments", 0)
    with LogManager.open(str(tmp_path)) as manager:
        assert manager.recovered_cleanly
        assert set(manager.partitions()) == {
            LogId("orders-eu-west", 7),
            LogId("payments", 0),
        }
        plog = manager.get("orders-eu-west", 7)
        assert plog is not None and plog.log_end_offset == 3


def test_a_second_process_cannot_open_the_same_directory(tmp_path: Path) -> None:
    with LogManager.open(str(tmp_path)):
        with pytest.raises(OSError, match="another shoal process"):
            LogManager.open(str(tmp_path))


def test_deleting_a_partition_removes_it_and_an_interrupted_delete_finishes(
    harness: Harness,
) -> None:
    manager = harness.open()
    manager.create("gone", 0).append(make_batch())
    manager.create("kept", 0).append(make_batch())
    manager.delete("gone", 0)
    assert manager.get("gone", 0) is None
    assert not harness.fs.exists("/data/gone-0")
    # A crash between rename and removal leaves a *.deleted directory: removed at start.
    manager.create("half", 0).append(make_batch())
    harness.close()
    harness.fs.rename("/data/half-0", "/data/half-0.123.deleted")
    manager = harness.open()
    assert manager.get("half", 0) is None
    assert not any(n.endswith(".deleted") for n in harness.fs.listdir("/data"))
    assert manager.get("kept", 0) is not None


def test_concurrent_appenders_share_fsyncs(tmp_path: Path) -> None:
    """64 appenders waiting for durability need far fewer fsyncs than appends (group commit)."""
    fsyncs = 0
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        nonlocal fsyncs
        fsyncs += 1
        real_fsync(fd)

    appends_per_thread, threads = 20, 64
    with LogManager.open(str(tmp_path)) as manager:
        plog = manager.create("t", 0)
        os.fsync = counting_fsync  # type: ignore[assignment]
        try:
            barrier = threading.Barrier(threads)

            def appender(seed: int) -> None:
                barrier.wait()
                for i in range(appends_per_thread):
                    info = plog.append(make_batch(payload=1000, seed=seed * 1000 + i))
                    plog.wait_durable(info.last_offset).result(timeout=30)

            workers = [threading.Thread(target=appender, args=(s,)) for s in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
        finally:
            os.fsync = real_fsync
        assert plog.log_end_offset == threads * appends_per_thread
        assert plog.flushed_offset == plog.log_end_offset
    # Each round of fsyncs covers every waiter queued meanwhile.
    assert fsyncs < threads * appends_per_thread / 4


def test_interval_policy_acknowledges_at_once_and_flushes_in_the_background() -> None:
    clock = FakeClock()
    h = Harness(clock=clock, config=LogConfig(flush_policy=FlushPolicy.INTERVAL))
    h.open()
    plog = h.log()
    info = plog.append(make_batch())
    assert plog.wait_durable(info.last_offset).done()
    assert plog.flushed_offset == 0
    clock.advance(1500)
    for _ in range(200):  # the flusher ticks every 50 ms of real time
        if plog.flushed_offset == plog.log_end_offset:
            break
        threading.Event().wait(0.02)
    assert plog.flushed_offset == plog.log_end_offset


def test_retention_deletes_old_segments_and_never_live_data(harness: Harness) -> None:
    harness.config = LogConfig(segment_bytes=500, retention_ms=10_000)
    manager = harness.open()
    plog = harness.log()
    now = harness.clock.now_ms()
    for i in range(12):
        plog.append(make_batch(payload=200, timestamp=now + i))
    harness.clock.advance(5_000)
    assert manager.apply_retention() == 0
    recent = plog.log_end_offset
    plog.append(make_batch(payload=200, timestamp=now + 8_000))
    harness.clock.advance(9_000)  # first 12 batches are now 14 s old, the last one 6 s
    assert manager.apply_retention() > 0
    assert plog.log_start_offset == recent
    assert plog.read(recent, 1000).first_offset == recent


def test_a_cancelled_durability_wait_does_not_stop_the_flusher(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shoal.testing import faultfs

    cancelled = threading.Event()
    real_fsync = faultfs._MemFile.fsync

    def fsync_after_the_cancel(self: faultfs._MemFile) -> None:
        cancelled.wait(10)  # hold the flusher until the waiter has given up
        real_fsync(self)

    harness.open()
    plog = harness.log()
    monkeypatch.setattr(faultfs._MemFile, "fsync", fsync_after_the_cancel)
    abandoned = plog.wait_durable(plog.append(make_batch(seed=1)).last_offset)
    assert abandoned.cancel()  # e.g. a Produce request that timed out
    cancelled.set()
    info = plog.append(make_batch(seed=2))
    plog.wait_durable(info.last_offset).result(timeout=10)  # the flusher still serves waiters
    assert plog.flushed_offset == plog.log_end_offset
