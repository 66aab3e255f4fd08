"""Producer ids never repeat: not after a restart, a power loss, a full disk or a damaged file."""

from __future__ import annotations

import errno

import pytest

from shoal.coordinator.producer_ids import (
    DAMAGED_FILE_IDS_PER_MS,
    PRODUCER_IDS_FILE,
    ProducerIdAllocator,
)
from shoal.storage import DiskFullError, StorageError
from shoal.testing.clock import FakeClock
from shoal.testing.faultfs import FaultyFileSystem

DATA = "/data"
PATH = f"{DATA}/{PRODUCER_IDS_FILE}"


@pytest.fixture
def fs() -> FaultyFileSystem:
    fs = FaultyFileSystem()
    fs.makedirs(DATA)
    fs.fsync_dir("/")
    return fs


def allocator(fs: FaultyFileSystem, clock: FakeClock | None = None) -> ProducerIdAllocator:
    return ProducerIdAllocator(fs, DATA, clock or FakeClock(), block_size=10)


def test_ids_are_unique_and_blocks_are_reserved_durably(fs: FaultyFileSystem) -> None:
    ids = allocator(fs)
    assert [ids.allocate() for _ in range(25)] == list(range(25))
    written = fs.bytes_written
    ids.allocate()
    ids.allocate()
    assert fs.bytes_written == written  # inside a reserved block: no write


@pytest.mark.parametrize("crash", ["restart", "power loss"])
def test_no_id_repeats_after_a_crash(fs: FaultyFileSystem, crash: str) -> None:
    first = allocator(fs)
    before = {first.allocate() for _ in range(13)}
    if crash == "power loss":
        fs.crash()
    after = {allocator(fs).allocate() for _ in range(1)}
    assert after == {20}  # the rest of the reserved block is skipped, never reused
    assert not before & after


def test_a_full_disk_hands_out_nothing_and_recovers(fs: FaultyFileSystem) -> None:
    ids = allocator(fs)
    fs.fail_next_write(errno.ENOSPC)
    with pytest.raises(DiskFullError):
        ids.allocate()
    assert ids.allocate() == 0
    assert allocator(fs).allocate() == 10


def test_other_io_errors_fail_the_directory(fs: FaultyFileSystem) -> None:
    failures: list[str] = []

    def fail(reason: str) -> StorageError:
        failures.append(reason)
        return StorageError(reason)

    ids = ProducerIdAllocator(fs, DATA, FakeClock(), fail_directory=fail)
    fs.fail_next_fsync(errno.EIO)
    with pytest.raises(StorageError):
        ids.allocate()
    assert len(failures) == 1 and PRODUCER_IDS_FILE in failures[0]


def test_a_damaged_file_jumps_past_every_id_handed_out(fs: FaultyFileSystem) -> None:
    clock = FakeClock()
    ids = allocator(fs, clock)
    for _ in range(5):
        ids.allocate()
    data = bytearray(fs.read_bytes(PATH))
    data[-1] ^= 1
    fs.write_bytes(PATH, bytes(data))
    assert allocator(fs, clock).allocate() == clock.now_ms() * DAMAGED_FILE_IDS_PER_MS
