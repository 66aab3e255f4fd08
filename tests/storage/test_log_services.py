"""The two generic services storage gives the producer-state rebuild: header walks and side files.

They live in ``shoal.storage`` (PartitionLog.headers_from, offset_before_end,
read_side_file, write_side_file) and know nothing of producers; these tests hold them to what
the rebuild relies on.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest

from shoal.records import SimpleRecord, build_batch
from shoal.storage import (
    DiskFullError,
    LogClosedError,
    LogConfig,
    LogDirectoryFailedError,
    LogManager,
    PartitionLog,
)
from shoal.testing.clock import FakeClock
from shoal.testing.faultfs import FaultyFileSystem

DATA = "/data"


@pytest.fixture
def fs() -> FaultyFileSystem:
    return FaultyFileSystem()


@pytest.fixture
def manager(fs: FaultyFileSystem) -> Iterator[LogManager]:
    m = LogManager.open(DATA, fs=fs, clock=FakeClock(), default_config=LogConfig(segment_bytes=600))
    yield m
    m.abandon()


def fill(plog: PartitionLog, batches: int, records: int = 3) -> None:
    for i in range(batches):
        values = [SimpleRecord(value=b"%d-%d" % (i, r) * 10) for r in range(records)]
        plog.append(build_batch(values, producer_id=9, producer_epoch=0, base_sequence=i * 3))


def test_headers_from_walks_every_batch_from_the_one_holding_the_offset(
    manager: LogManager,
) -> None:
    plog = manager.create("t", 0)
    fill(plog, 12)
    assert plog.segment_count > 3
    every = list(plog.headers_from(0))
    assert [h.base_offset for h in every] == list(range(0, 36, 3))
    assert [h.base_sequence for h in every] == list(range(0, 36, 3))
    assert [h.base_offset for h in plog.headers_from(16)] == list(range(15, 36, 3))
    assert list(plog.headers_from(36)) == []


def test_offset_before_end_covers_at_least_the_bytes_asked(manager: LogManager) -> None:
    plog = manager.create("t", 0)
    fill(plog, 12)
    batch_starts = {h.base_offset for h in plog.headers_from(0)}
    for bytes_back in (0, 1, 100, 599, 600, 601, 1500, plog.size_bytes - 1):
        offset = plog.offset_before_end(bytes_back)
        assert offset in batch_starts
        walked = sum(h.size for h in plog.headers_from(offset))
        assert walked >= bytes_back
    assert plog.offset_before_end(plog.size_bytes) == 0
    assert plog.offset_before_end(10**9) == 0
    plog.delete_records(20)
    assert plog.offset_before_end(10**9) == 20


def test_headers_from_starts_at_the_log_start(manager: LogManager) -> None:
    plog = manager.create("t", 0)
    fill(plog, 12)
    plog.delete_records(20)
    assert next(iter(plog.headers_from(0))).base_offset == 18  # the batch holding offset 20


def test_headers_from_a_closed_log_is_refused(manager: LogManager) -> None:
    plog = manager.create("t", 0)
    plog.close()
    with pytest.raises(LogClosedError):
        plog.headers_from(0)


def test_side_files_round_trip_and_damage_reads_as_none(
    manager: LogManager, fs: FaultyFileSystem
) -> None:
    plog = manager.create("t", 0)
    assert plog.read_side_file("notes") is None
    plog.write_side_file("notes", b"one")
    plog.write_side_file("notes", b"two")
    assert plog.read_side_file("notes") == b"two"
    damaged = bytearray(fs.read_bytes(f"{DATA}/t-0/notes"))
    damaged[0] ^= 1
    fs.write_bytes(f"{DATA}/t-0/notes", bytes(damaged))
    assert plog.read_side_file("notes") is None


def test_side_files_survive_power_loss_whole(manager: LogManager, fs: FaultyFileSystem) -> None:
    plog = manager.create("t", 0)
    plog.write_side_file("notes", b"kept")
    manager.abandon()
    fs.crash()
    again = LogManager.open(DATA, fs=fs, clock=FakeClock())
    try:
        reopened = again.get("t", 0)
        assert reopened is not None and reopened.read_side_file("notes") == b"kept"
    finally:
        again.abandon()


@pytest.mark.parametrize("name", ["checkpoint", "00000000000000000000", "a.log", "../x", "", "A"])
def test_side_file_names_cannot_collide_with_the_log(manager: LogManager, name: str) -> None:
    plog = manager.create("t", 0)
    with pytest.raises(ValueError):
        plog.write_side_file(name, b"x")


def test_side_file_write_errors(manager: LogManager, fs: FaultyFileSystem) -> None:
    plog = manager.create("t", 0)
    plog.write_side_file("notes", b"old")
    fs.fail_next_write(errno.ENOSPC)
    with pytest.raises(DiskFullError):
        plog.write_side_file("notes", b"new")
    assert plog.read_side_file("notes") == b"old"
    fs.fail_next_fsync(errno.EIO)
    with pytest.raises(LogDirectoryFailedError):
        plog.write_side_file("notes", b"new")
    assert manager.health.failure is not None  # a failed fsync is never trusted again
    with pytest.raises(LogDirectoryFailedError):  # and nothing is written there any more
        plog.write_side_file("notes", b"newer")
    assert plog.read_side_file("notes") == b"old"


def test_side_file_write_after_close_is_refused(manager: LogManager) -> None:
    plog = manager.create("t", 0)
    plog.close()
    with pytest.raises(LogClosedError):
        plog.write_side_file("notes", b"late")
