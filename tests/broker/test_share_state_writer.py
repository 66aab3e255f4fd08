"""Share-partition state is written and fsynced on a worker thread, never on the event loop
(shoal.broker.share_state_writer), in the order the state changed, and an acknowledgement's
write is done (durable) before the future the handler awaits is."""

from __future__ import annotations

import asyncio
import errno
import threading
from collections.abc import Callable

import pytest

from shoal.broker.share_groups import ShareGroups
from shoal.broker.share_state_writer import ShareStateWriter, read_stored
from shoal.coordinator.share_partition import AcknowledgementBatch
from shoal.coordinator.share_state import decode_state, state_file_name
from shoal.storage import FlushPolicy, LogConfig, PartitionLog, StorageError
from shoal.storage.fs import File
from shoal.storage.handles import FileHandles
from shoal.storage.log import DirectoryHealth
from shoal.testing.clock import FakeClock
from shoal.testing.faultfs import FaultyFileSystem
from tests.storage.batches import make_batch

DATA = "/data"
GROUP, TOPIC = "workers", "jobs"
ACCEPT, RELEASE = 1, 2


class ThreadRecordingFileSystem(FaultyFileSystem):
    """Remembers the thread of every fsync of a share state file (a test seam, not a clock)."""

    def __init__(self) -> None:
        super().__init__()
        self.state_fsync_threads: list[int] = []

    def open(self, path: str, *, create: bool = False) -> File:
        file = super().open(path, create=create)
        if "/share-" not in path:
            return file
        fsync, threads = file.fsync, self.state_fsync_threads

        def recording_fsync() -> None:
            threads.append(threading.get_ident())
            fsync()

        file.fsync = recording_fsync  # type: ignore[method-assign]
        return file


def _log(fs: FaultyFileSystem, clock: FakeClock) -> PartitionLog:
    plog = PartitionLog.open(
        fs,
        f"{DATA}/{TOPIC}-0",
        LogConfig(flush_policy=FlushPolicy.NONE),
        clock=clock,
        handles=FileHandles(fs, max_open_files=16),
        health=DirectoryHealth(DATA),
    )
    for seed in range(4):
        plog.append(make_batch(payload=10, seed=seed))
    return plog


async def _acquire(shares: ShareGroups, plog: PartitionLog, count: int) -> None:
    await shares.load(GROUP, [(TOPIC, 0, plog)])
    sp = shares.share_partition(GROUP, TOPIC, 0, plog)
    assert sp.acquire("m1", list(range(plog.log_start_offset, plog.log_end_offset)), count)


def _ack(shares: ShareGroups, plog: PartitionLog, offset: int, kind: int) -> None:
    sp = shares.share_partition(GROUP, TOPIC, 0, plog)
    sp.acknowledge("m1", [AcknowledgementBatch(offset, offset, (kind,))])


def test_the_state_fsync_runs_on_a_worker_thread_and_is_done_when_awaited() -> None:
    fs, clock = ThreadRecordingFileSystem(), FakeClock()
    plog = _log(fs, clock)
    shares = ShareGroups(clock, offset_reset="earliest")

    async def scenario() -> int:
        await _acquire(shares, plog, 2)
        _ack(shares, plog, 0, ACCEPT)
        written = shares.persist(GROUP, TOPIC, 0, plog)
        assert written is not None
        assert not written.done()  # nothing was written on the loop, before any await
        await written
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    assert fs.state_fsync_threads, "the state file was not fsynced"
    assert loop_thread not in fs.state_fsync_threads
    state = decode_state(GROUP, read_stored(plog, state_file_name(GROUP)) or b"")
    assert state is not None and state.start_offset == 1  # offset 0 accepted, durably


def test_writes_land_in_the_order_the_state_changed() -> None:
    """Acknowledgements arriving while a write is in flight are covered by one later write of
    the newest state; an older state never overwrites a newer one."""
    clock = FakeClock()
    fs = FaultyFileSystem()
    plog = _log(fs, clock)
    gate = threading.Event()
    calls: list[int] = []

    async def gated_thread(call: object) -> None:
        calls.append(len(calls))
        if len(calls) == 2:  # the first is the fresh share-partition's start, before acquiring
            await asyncio.to_thread(gate.wait)
        await asyncio.to_thread(call)  # type: ignore[arg-type]

    shares = ShareGroups(clock, offset_reset="earliest", writer=ShareStateWriter(gated_thread))

    async def scenario() -> None:
        await _acquire(shares, plog, 4)
        _ack(shares, plog, 0, ACCEPT)
        first = shares.persist(GROUP, TOPIC, 0, plog)
        await asyncio.sleep(0)  # the first write starts and blocks on the gate
        later = []
        for offset in (1, 2):
            _ack(shares, plog, offset, ACCEPT)
            later.append(shares.persist(GROUP, TOPIC, 0, plog))
        _ack(shares, plog, 3, RELEASE)
        later.append(shares.persist(GROUP, TOPIC, 0, plog))
        assert first is not None and not any(f is None or f.done() for f in later)
        gate.set()
        await asyncio.gather(first, *later)  # type: ignore[arg-type]
        assert shares.writer.pending == 0

    asyncio.run(scenario())
    # The fresh start's write, one for the first acknowledgement, one for the three behind it.
    assert len(calls) == 3
    state = decode_state(GROUP, read_stored(plog, state_file_name(GROUP)) or b"")
    assert state is not None and state.start_offset == 3  # 3 released: Available again


def test_a_failed_write_fails_the_acknowledgements_it_covers() -> None:
    fs, clock = FaultyFileSystem(), FakeClock()
    plog = _log(fs, clock)
    shares = ShareGroups(clock, offset_reset="earliest")

    async def scenario() -> None:
        await _acquire(shares, plog, 1)
        _ack(shares, plog, 0, ACCEPT)
        fs.fail_next_fsync(errno.EIO)
        written = shares.persist(GROUP, TOPIC, 0, plog)
        assert written is not None
        with pytest.raises(StorageError):
            await written
        await shares.writer.drain()

    asyncio.run(scenario())
    assert shares.writer.pending == 0


class ReadRecordingFileSystem(FaultyFileSystem):
    """Remembers the thread of every open of a share state file for reading (a test seam)."""

    def __init__(self) -> None:
        super().__init__()
        self.state_read_threads: list[int] = []
        self.before_read: list[object] = []
        """Called (once each, in order) on the reading thread before a read: a test's hook."""

    def open(self, path: str, *, create: bool = False) -> File:
        if "/share-" in path and not create:
            self.state_read_threads.append(threading.get_ident())
            if self.before_read:
                self.before_read.pop(0)()  # type: ignore[operator]
        return super().open(path, create=create)


def _written_state(fs: FaultyFileSystem, clock: FakeClock) -> PartitionLog:
    """A partition whose group state (offset 0 accepted) is on disk, as before a restart."""
    plog = _log(fs, clock)
    shares = ShareGroups(clock, offset_reset="earliest")

    async def write() -> None:
        await _acquire(shares, plog, 2)
        _ack(shares, plog, 0, ACCEPT)
        written = shares.persist(GROUP, TOPIC, 0, plog)
        assert written is not None
        await written

    asyncio.run(write())
    return plog


def test_the_first_read_of_a_state_file_runs_on_a_worker_thread() -> None:
    """After a restart the first touch of a share-partition reads its state file: ShareFetch and
    ShareAcknowledge load it (ShareGroups.load) off the event loop before their checks."""
    fs, clock = ReadRecordingFileSystem(), FakeClock()
    plog = _written_state(fs, clock)
    fs.state_read_threads.clear()
    restarted = ShareGroups(clock, offset_reset="earliest")

    async def scenario() -> int:
        await restarted.load(GROUP, [(TOPIC, 0, plog)])
        # Loaded: later calls use memory, and read nothing more on the loop.
        assert restarted.share_partition(GROUP, TOPIC, 0, plog).start_offset == 1
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    assert len(fs.state_read_threads) == 1
    assert loop_thread not in fs.state_read_threads


def test_a_state_read_that_a_delete_overtook_is_dropped() -> None:
    """DeleteShareGroupOffsets forgets the partition while its state file is being read: what
    was read (the state before the delete) is not installed; the load reads again and the
    partition starts afresh (where share.auto.offset.reset says: earliest here)."""
    fs, clock = ReadRecordingFileSystem(), FakeClock()
    plog = _written_state(fs, clock)
    restarted = ShareGroups(clock, offset_reset="earliest")
    forgotten = threading.Event()

    async def scenario() -> int:
        loop = asyncio.get_running_loop()

        def forget_on_the_loop() -> None:
            def forget() -> None:
                restarted.forget(GROUP, TOPIC, 0, plog, on_disk=True)  # writes a tombstone
                forgotten.set()

            loop.call_soon_threadsafe(forget)
            assert forgotten.wait(5), "the loop did not run the delete"

        fs.before_read.append(forget_on_the_loop)
        await restarted.load(GROUP, [(TOPIC, 0, plog)])
        start = restarted.share_partition(GROUP, TOPIC, 0, plog).start_offset
        await restarted.writer.drain()
        return start

    assert asyncio.run(scenario()) == 0  # not 1, the start offset of the state read
    assert forgotten.is_set()


def test_the_state_is_encoded_once_per_write_not_once_per_acknowledgement() -> None:
    """A payload given as a function is made when its write starts: the acknowledgements that
    arrive while a write is in flight share the next write and one encoding of the newest
    state (the state is rewritten whole: encoding it per acknowledgement cost a pass over the
    in-flight window each time)."""
    clock = FakeClock()
    plog = _log(FaultyFileSystem(), clock)
    gate = threading.Event()
    made: list[int] = []

    async def gated_thread(call: object) -> None:
        await asyncio.to_thread(gate.wait)
        await asyncio.to_thread(call)  # type: ignore[arg-type]

    writer = ShareStateWriter(gated_thread)

    def payload(version: int) -> Callable[[], bytes]:
        def make() -> bytes:
            made.append(version)
            return b"state %d" % version

        return make

    async def scenario() -> None:
        first = writer.write(plog, "share-test", payload(1))
        await asyncio.sleep(0)  # the first write starts (its payload is made) and waits
        later = [writer.write(plog, "share-test", payload(v)) for v in (2, 3, 4)]
        assert made == [1]
        gate.set()
        await asyncio.gather(first, *later)

    asyncio.run(scenario())
    assert made == [1, 4]  # 2 and 3 were never encoded: 4 replaced them before their write
    assert read_stored(plog, "share-test") == b"state 4"


def test_describe_reads_the_state_files_on_a_worker_thread() -> None:
    """DescribeShareGroupOffsets after a restart (ShareGroups.described): the state files are
    read off the event loop, a partition without state is left out and not made."""
    fs, clock = ReadRecordingFileSystem(), FakeClock()
    plog = _written_state(fs, clock)
    other = PartitionLog.open(
        fs,
        f"{DATA}/{TOPIC}-1",
        LogConfig(flush_policy=FlushPolicy.NONE),
        clock=clock,
        handles=FileHandles(fs, max_open_files=16),
        health=DirectoryHealth(DATA),
    )
    fs.state_read_threads.clear()
    restarted = ShareGroups(clock, offset_reset="earliest")

    async def scenario() -> tuple[int, list[tuple[str, int]]]:
        found = await restarted.described(GROUP, [(TOPIC, 0, plog), (TOPIC, 1, other)])
        assert found[(TOPIC, 0)].start_offset == 1
        return threading.get_ident(), sorted(found)

    loop_thread, found = asyncio.run(scenario())
    assert found == [(TOPIC, 0)]
    assert (GROUP, TOPIC, 1) not in restarted.partitions
    assert fs.state_read_threads and loop_thread not in fs.state_read_threads


def test_a_share_partition_is_never_read_on_the_loop() -> None:
    """The fallback that read a state file on the event loop is gone: a share-partition not
    loaded first is a programming error, not a silent read on the loop."""
    fs, clock = ReadRecordingFileSystem(), FakeClock()
    plog = _written_state(fs, clock)
    fs.state_read_threads.clear()
    with pytest.raises(RuntimeError, match=r"before ShareGroups\.load"):
        ShareGroups(clock).share_partition(GROUP, TOPIC, 0, plog)
    assert fs.state_read_threads == []
