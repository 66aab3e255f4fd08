"""The leader-epoch history (Kafka's LeaderEpochFileCache): its answers, its truncation, its
file, and how a partition log keeps it across starts and crashes."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.records import SimpleRecord, build_batch
from shoal.records.header import BatchHeader
from shoal.storage import LogConfig, LogManager, sidefiles
from shoal.storage.epochs import (
    EPOCH_FILE,
    LeaderEpochCache,
    read_epoch_file,
    write_epoch_file,
)
from shoal.storage.fs import OsFileSystem
from shoal.storage.log import PartitionLog
from shoal.testing.clock import FakeClock
from shoal.testing.faultfs import FaultyFileSystem
from tests.storage.batches import make_batch


def test_end_offset_for_answers_as_kafka() -> None:
    cache = LeaderEpochCache([(0, 0), (2, 10), (5, 30)])
    assert cache.end_offset_for(5, 42) == (5, 42)  # current epoch: the log end
    assert cache.end_offset_for(2, 42) == (2, 30)  # ends where the next one starts
    assert cache.end_offset_for(3, 42) == (2, 30)  # unknown epoch: the largest at or below it
    assert cache.end_offset_for(1, 42) == (0, 10)
    assert cache.end_offset_for(6, 42) == (-1, -1)  # newer than all: undefined
    assert cache.end_offset_for(-1, 42) == (-1, -1)
    late = LeaderEpochCache([(3, 7), (4, 9)])
    assert late.end_offset_for(1, 20) == (1, 7)  # older than all: itself, first start
    assert LeaderEpochCache().end_offset_for(0, 5) == (-1, -1)


def test_assign_keeps_epochs_and_offsets_increasing() -> None:
    cache = LeaderEpochCache([(0, 0), (1, 5)])
    assert not cache.assign(1, 8)  # the same epoch going on: nothing new
    assert cache.assign(2, 5)  # a restart with no append since: epoch 1 is empty, dropped
    assert cache.entries() == [(0, 0), (2, 5)]
    assert cache.assign(1, 3)  # a lower epoch replaces every entry at or above it
    assert cache.entries() == [(0, 0), (1, 3)]
    with pytest.raises(ValueError):
        cache.assign(-1, 0)


def test_truncation_from_the_end_and_from_the_start() -> None:
    cache = LeaderEpochCache([(0, 0), (1, 5), (2, 9)])
    assert not cache.truncate_from_end(10)
    assert cache.truncate_from_end(9)  # a crash cut the log at 9: epoch 2 held nothing
    assert cache.entries() == [(0, 0), (1, 5)]
    assert cache.truncate_from_start(7)  # retention: epoch 0's records are gone
    assert cache.entries() == [(1, 7)]
    assert not cache.truncate_from_start(7)
    assert cache.epoch_for(6) == -1 and cache.epoch_for(7) == 1 and cache.epoch_for(99) == 1


def test_the_file_has_kafkas_layout_and_damage_is_not_trusted(tmp_path: Path) -> None:
    cache = LeaderEpochCache([(0, 0), (1, 57)])
    assert cache.encode() == b"0\n2\n0 0\n1 57\n"
    fs, directory = OsFileSystem(), str(tmp_path)
    write_epoch_file(fs, directory, cache)
    loaded = read_epoch_file(fs, directory)
    assert loaded is not None and loaded.entries() == [(0, 0), (1, 57)]
    for damaged in (b"0\n2\n0 0\n", b"1\n1\n0 0\n", b"0\n2\n1 5\n0 9\n", b"0\n1\n0 0", b"\xff"):
        assert LeaderEpochCache.decode(damaged) is None, damaged


def _open(path: str, clock: FakeClock) -> LogManager:
    """Open the directory as a broker start does: recover, then begin a new leader epoch."""
    manager = LogManager.open(path, clock=clock, default_config=LogConfig(), threaded_flusher=False)
    manager.begin_leader_epochs()
    return manager


def _log(manager: LogManager) -> PartitionLog:
    plog = manager.get("t", 0)
    assert plog is not None
    return plog


def _stored_epochs(manager: LogManager) -> list[int]:
    return [h.partition_leader_epoch for h in _log(manager).headers_from(0)]


def test_every_start_opens_an_epoch_and_batches_carry_it(tmp_path: Path) -> None:
    path, clock = str(tmp_path), FakeClock()
    with _open(path, clock) as manager:
        plog = manager.create("t", 0)
        assert plog.leader_epoch == 0 and plog.epoch_entries() == [(0, 0)]
        plog.append(make_batch(3))
    with _open(path, clock) as manager:
        plog = _log(manager)
        assert plog.leader_epoch == 1 and plog.epoch_entries() == [(0, 0), (1, 3)]
        plog.append(make_batch(2))
        assert _stored_epochs(manager) == [0, 1]
        assert plog.end_offset_for_epoch(0) == (0, 3)
        assert plog.end_offset_for_epoch(1) == (1, 5)
    with _open(path, clock) as manager:
        assert _log(manager).epoch_entries() == [(0, 0), (1, 3), (2, 5)]


def test_a_lost_file_is_rebuilt_from_the_batches(tmp_path: Path) -> None:
    path, clock = str(tmp_path), FakeClock()
    with _open(path, clock) as manager:
        manager.create("t", 0).append(make_batch(1))
    with _open(path, clock) as manager:
        _log(manager).append(make_batch(1))
    os.remove(os.path.join(path, "t-0", EPOCH_FILE))
    with _open(path, clock) as manager:
        # Epoch 0 at 0 and 1 at 1 come back from the batches; this start opens epoch 2.
        assert _log(manager).epoch_entries() == [(0, 0), (1, 1), (2, 2)]


def test_the_first_start_after_a_runtime_create_reads_only_the_last_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A partition created at runtime saves no epoch file until its next start; that start
    # must not read every batch header of the log (0.8 s for 200,000 batches) to learn that
    # they all carry epoch 0: the last batch's stamp says so.
    batches = 400  # about 7 index intervals (4096 bytes) of one-record batches
    path, clock = str(tmp_path), FakeClock()
    with _open(path, clock) as manager:
        plog = manager.create("t", 0)
        for _ in range(batches):
            plog.append(make_batch(1))
    assert not (tmp_path / "t-0" / EPOCH_FILE).exists()
    walked = 0
    real_walk = sidefiles.walk_headers

    def counting_walk(*args: Any) -> Iterator[BatchHeader]:
        nonlocal walked
        for header in real_walk(*args):
            walked += 1
            yield header

    monkeypatch.setattr(sidefiles, "walk_headers", counting_walk)
    with _open(path, clock) as manager:
        assert _log(manager).epoch_entries() == [(0, 0), (1, batches)]
    assert 0 < walked < batches // 4


def test_a_directory_from_before_epochs_has_no_epoch_for_its_records(tmp_path: Path) -> None:
    # As Kafka's history, which holds only epochs stamped in batches: the first epoch begins
    # at the log end, so the old records have none (ListOffsets earliest answers -1).
    path, clock = str(tmp_path), FakeClock()
    with _open(path, clock) as manager:
        manager.create("t", 0).append(make_batch(4))
    # Older shoal stored the producer's -1 and wrote no epoch file.
    segment = os.path.join(path, "t-0", "00000000000000000000.log")
    with open(segment, "r+b") as f:
        f.seek(12)
        f.write(b"\xff\xff\xff\xff")
    # (A partition created at runtime saves no file until its next start: none to remove.)
    assert not (tmp_path / "t-0" / EPOCH_FILE).exists()
    with _open(path, clock) as manager:
        plog = _log(manager)
        assert plog.epoch_entries() == [(1, 4)]
        assert plog.first_epoch() == -1 and plog.epoch_of_offset(3) == -1


def test_a_record_found_by_time_has_its_batchs_epoch_none_before_epochs(
    tmp_path: Path,
) -> None:
    """Kafka answers ListOffsets by time with the epoch stamped in the found record's batch
    (FileRecords.searchForTimestamp: none for -1), which is also the history's: no epoch
    covers the records of a directory from before epochs."""
    path, clock = str(tmp_path), FakeClock()
    old = build_batch([SimpleRecord(value=b"old", timestamp=1_000)], base_timestamp=1_000)
    with _open(path, clock) as manager:
        manager.create("t", 0).append(old)
    segment = os.path.join(path, "t-0", "00000000000000000000.log")
    with open(segment, "r+b") as f:  # older shoal stored -1 (outside the CRC)
        f.seek(12)
        f.write(b"\xff\xff\xff\xff")
    with _open(path, clock) as manager:
        plog = _log(manager)
        assert plog.max_timestamp() == (0, 1_000, -1)
        new = build_batch([SimpleRecord(value=b"new", timestamp=2_000)], base_timestamp=2_000)
        plog.append(new)
        assert plog.epoch_of_offset(0) == -1  # the history's view of the old record
        assert plog.offset_for_timestamp(500) == (0, 1_000, -1)
        assert plog.offset_for_timestamp(1_500) == (1, 2_000, 1)
        assert plog.max_timestamp() == (1, 2_000, 1)


def test_opening_alone_changes_no_epoch_and_writes_nothing(tmp_path: Path) -> None:
    path, clock = str(tmp_path), FakeClock()
    with _open(path, clock) as manager:
        manager.create("t", 0).append(make_batch(2))
    _open(path, clock).close()  # a start: epoch 1, saved
    saved = (tmp_path / "t-0" / EPOCH_FILE).read_bytes()
    # A start refused after the logs opened (a newer document format) must change no file.
    manager = LogManager.open(path, clock=clock, default_config=LogConfig(), threaded_flusher=False)
    manager.abandon()
    assert (tmp_path / "t-0" / EPOCH_FILE).read_bytes() == saved == b"0\n2\n0 0\n1 2\n"


def test_an_epoch_whose_records_a_crash_erased_is_never_used_again(tmp_path: Path) -> None:
    # Epoch 1 began at 2 and held 3 records that were never fsynced: a crash erased them all,
    # so recovery cuts epoch 1 from the history. The next start must not call itself epoch 1
    # again: a consumer that read those records (epoch 1) would see no change, and skip.
    path = str(tmp_path)
    fs = FaultyFileSystem(seed=1)
    clock = FakeClock()

    def start() -> LogManager:
        manager = LogManager.open(
            path, fs=fs, clock=clock, default_config=LogConfig(), threaded_flusher=False
        )
        manager.begin_leader_epochs()
        return manager

    manager = start()
    plog = manager.create("t", 0)
    plog.append(make_batch(2))
    manager.flush_pending()  # nothing waits: fsync explicitly
    plog.flush()
    manager.close()
    manager = start()
    assert _log(manager).epoch_entries() == [(0, 0), (1, 2)]
    _log(manager).append(make_batch(3))  # epoch 1, never fsynced
    manager.abandon()
    fs.crash(keep_unsynced=False)
    manager = start()
    try:
        assert _log(manager).log_end_offset == 2
        assert _log(manager).epoch_entries() == [(0, 0), (2, 2)]
        assert _log(manager).end_offset_for_epoch(1) == (0, 2)  # where the reader goes back
    finally:
        manager.close()


def _crash_start(path: str, fs: FaultyFileSystem, clock: FakeClock) -> LogManager:
    manager = LogManager.open(
        path, fs=fs, clock=clock, default_config=LogConfig(), threaded_flusher=False
    )
    manager.begin_leader_epochs()
    return manager


def test_a_lost_epoch_file_after_a_crash_erased_the_last_epoch_reuses_no_number(
    tmp_path: Path,
) -> None:
    # The reviewer's probe: epoch 1's records were never fsynced and a crash erased them;
    # then the partition's epoch file was lost too (a backup restored without it, damage).
    # Nothing in the partition remembers epoch 1: the broker-wide floor does.
    path, fs, clock = str(tmp_path), FaultyFileSystem(seed=1), FakeClock()
    manager = _crash_start(path, fs, clock)
    plog = manager.create("t", 0)
    plog.append(make_batch(2))
    manager.flush_pending()
    plog.flush()
    manager.close()
    manager = _crash_start(path, fs, clock)  # epoch 1 at 2
    assert _log(manager).leader_epoch == 1
    _log(manager).append(make_batch(3))  # epoch 1, never fsynced; a consumer reads them
    manager.abandon()
    fs.crash(keep_unsynced=False)
    fs.remove(os.path.join(path, "t-0", EPOCH_FILE))
    manager = _crash_start(path, fs, clock)
    try:
        assert _log(manager).log_end_offset == 2
        assert _log(manager).epoch_entries() == [(0, 0), (2, 2)]
    finally:
        manager.close()


def test_a_log_recreated_at_start_begins_above_every_epoch_used(tmp_path: Path) -> None:
    # The metadata names a partition whose directory is gone (lost, or a crash mid-create):
    # clients may have seen its epochs up to the last start's, so it must not begin at 0
    # again. One created at runtime (a new topic) starts at 0, as in a new Kafka cluster.
    path, clock = str(tmp_path), FakeClock()
    with _open(path, clock) as manager:
        manager.create("t", 0).append(make_batch(1))
    with _open(path, clock) as manager:
        assert _log(manager).leader_epoch == 1
    shutil.rmtree(tmp_path / "t-0")
    manager = LogManager.open(path, clock=clock, default_config=LogConfig(), threaded_flusher=False)
    with manager:
        manager.create("t", 0, elect=True)
        manager.begin_leader_epochs()
        assert _log(manager).epoch_entries() == [(2, 0)]
        assert manager.create("new", 0).epoch_entries() == [(0, 0)]
