"""Side journals (shoal.storage.journals) on the fault-injecting file system: each version is
one append and one fsync, and after a power cut at any moment (a write torn after any byte, an
fsync that never happened, the page cache having written back any prefix of what was not
fsynced, a compaction cut half-way) a reader gets the last version whose append returned, or
the one being appended, whole: never an older one, never garbage."""

from __future__ import annotations

import errno
import random

import pytest

from shoal.storage import journals
from shoal.storage.errors import DiskFullError
from shoal.storage.handles import FileHandles
from shoal.storage.journals import Journals, encode_record, journal_path, last_record, read_journal
from shoal.storage.sidefiles import read_side_file, write_side_file
from shoal.testing.faultfs import FaultyFileSystem

DIRECTORY = "/data/jobs-0"
NAME = "share-state"
SMALL_COMPACT_BYTES = 600
"""The compaction threshold for these tests: a few records, so that runs cross many."""
SEEDS = 200
VERSIONS_PER_RUN = 40


@pytest.fixture
def small_journals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journals, "JOURNAL_MIN_COMPACT_BYTES", SMALL_COMPACT_BYTES)


def _journals(fs: FaultyFileSystem) -> Journals:
    """A process's journals, through a pool of open files smaller than what they use."""
    return Journals(fs, DIRECTORY, FileHandles(fs, max_open_files=1))


def _fs() -> FaultyFileSystem:
    fs = FaultyFileSystem()
    fs.makedirs(DIRECTORY)
    return fs


def _version(rng: random.Random, number: int) -> bytes:
    """A payload that names its version, of a random size (some cross the threshold)."""
    return b"v%05d:" % number + bytes([number % 251]) * rng.randint(0, 200)


def test_the_newest_version_is_read_and_each_append_is_one_fsync() -> None:
    fs = _fs()
    journal = _journals(fs)
    assert read_journal(fs, DIRECTORY, NAME) is None
    journal.append(NAME, b"one")  # the first append of a process rewrites the journal whole
    before = fs.fsync_count
    journal.append(NAME, b"two")
    journal.append(NAME, b"")
    assert fs.fsync_count - before == 2  # no temporary file, no directory fsync
    assert read_journal(fs, DIRECTORY, NAME) == b""
    journal.append(NAME, b"three")
    assert read_journal(fs, DIRECTORY, NAME) == b"three"


def test_a_journal_is_compacted_once_it_grows(small_journals: None) -> None:
    fs = _fs()
    journal = _journals(fs)
    for number in range(100):
        journal.append(NAME, b"%03d" % number + b"x" * 50)
        assert len(fs.read_bytes(journal_path(DIRECTORY, NAME))) <= SMALL_COMPACT_BYTES
    assert read_journal(fs, DIRECTORY, NAME) == b"099" + b"x" * 50


def test_a_torn_or_damaged_last_record_is_skipped() -> None:
    whole = encode_record(b"first") + encode_record(b"second")
    assert last_record(whole) == b"second"
    for cut in range(len(encode_record(b"first")), len(whole)):
        assert last_record(whole[:cut]) == b"first"
    damaged = bytearray(whole)
    damaged[-1] ^= 0xFF
    assert last_record(bytes(damaged)) == b"first"
    assert last_record(b"") is None
    assert last_record(whole[:3]) is None


def test_a_new_process_never_appends_behind_a_torn_record() -> None:
    """A torn record left by a crash ends what a reader trusts: the first append after the
    restart rewrites the journal, or its records would be unreadable behind the torn one."""
    fs = _fs()
    _journals(fs).append(NAME, b"kept")
    fs.fail_next_write(errno.EIO, after_bytes=5)
    with pytest.raises(OSError):
        _journals(fs).append(NAME, b"torn")  # the first append compacts: intact
    path = journal_path(DIRECTORY, NAME)
    fs.write_bytes(path, fs.read_bytes(path) + encode_record(b"torn")[:6])  # a torn tail
    restarted = _journals(fs)
    restarted.append(NAME, b"after")
    assert read_journal(fs, DIRECTORY, NAME) == b"after"
    restarted.append(NAME, b"later")
    assert read_journal(fs, DIRECTORY, NAME) == b"later"


def test_a_failed_append_is_followed_by_a_rewrite() -> None:
    fs = _fs()
    journal = _journals(fs)
    journal.append(NAME, b"one")
    journal.append(NAME, b"two")
    fs.fail_next_write(errno.ENOSPC, after_bytes=3)
    with pytest.raises(DiskFullError):
        journal.append(NAME, b"three")
    assert read_journal(fs, DIRECTORY, NAME) == b"two"  # the torn record is skipped
    journal.append(NAME, b"four")
    assert read_journal(fs, DIRECTORY, NAME) == b"four"


@pytest.mark.parametrize("seed", range(SEEDS))
def test_power_loss_at_any_moment_keeps_the_last_returned_version(
    seed: int, small_journals: None
) -> None:
    rng = random.Random(seed)
    fs = FaultyFileSystem(seed)
    fs.makedirs(DIRECTORY)
    journal = _journals(fs)
    returned: bytes | None = None
    for number in range(VERSIONS_PER_RUN):
        payload = _version(rng, number)
        if rng.random() < 0.1:  # a fault in this append (or its compaction), then the power cut
            if rng.random() < 0.5:
                fs.fail_next_write(errno.EIO, after_bytes=rng.randint(0, len(payload) + 8))
            else:
                fs.fail_next_fsync(errno.EIO)
            with pytest.raises(OSError):
                journal.append(NAME, payload)
            fs.crash(keep_unsynced=rng.random() < 0.7)
            found = read_journal(fs, DIRECTORY, NAME)
            # The version being appended may have reached the disk whole; nothing else may.
            assert found in (returned, payload), (seed, number, found)
            returned = found
            journal = _journals(fs)  # the restarted process
            continue
        journal.append(NAME, payload)
        returned = payload
        if rng.random() < 0.1:  # a power cut between appends loses nothing returned
            fs.crash(keep_unsynced=rng.random() < 0.7)
            assert read_journal(fs, DIRECTORY, NAME) == returned, (seed, number)
            journal = _journals(fs)
    fs.crash(keep_unsynced=True)
    assert read_journal(fs, DIRECTORY, NAME) == returned


def test_more_journals_than_the_pool_of_open_files() -> None:
    """Journals hold no descriptor of their own: with a pool of one open file, two journals
    appended in turn evict each other's handle and each still gets its versions."""
    fs = _fs()
    handles = FileHandles(fs, max_open_files=1)
    journal = Journals(fs, DIRECTORY, handles)
    for number in range(10):
        for name in ("share-a", "share-b"):
            journal.append(name, b"%s %d" % (name.encode(), number))
            assert handles.open_count <= 1
    assert read_journal(fs, DIRECTORY, "share-a") == b"share-a 9"
    assert read_journal(fs, DIRECTORY, "share-b") == b"share-b 9"
    fs.crash()
    assert read_journal(fs, DIRECTORY, "share-b") == b"share-b 9"


def test_the_side_file_a_journal_replaces_is_removed_once_the_journal_is_durable() -> None:
    """The format before journals (a whole side file of the same name) goes after the
    journal's first write, durably; a crash after the journal's fsync and before the removal's
    leaves both (the journal wins in readers: shoal.broker.share_state_writer.read_stored)."""
    fs = _fs()
    write_side_file(fs, DIRECTORY, NAME, b"old format")
    fs.fail_next_fsync(errno.EIO)  # the journal's own fsync: the old file must stay
    with pytest.raises(OSError):
        _journals(fs).append(NAME, b"new")
    fs.crash()
    assert read_side_file(fs, DIRECTORY, NAME) == b"old format"
    journal = _journals(fs)
    journal.append(NAME, b"new")
    assert read_side_file(fs, DIRECTORY, NAME) is None
    fs.crash()  # the removal was fsynced with its directory
    assert read_side_file(fs, DIRECTORY, NAME) is None
    assert read_journal(fs, DIRECTORY, NAME) == b"new"
