"""Producer state across restarts: rebuilt from snapshot + log, bounded, never trusting a
snapshot the log no longer backs.

The produce path is played by :func:`produce`: check, append, record, as the Produce handler
does, on a log in the fault-injecting filesystem. A "process crash" keeps every written byte (the
page cache survives SIGKILL); a "power loss" keeps only what was fsynced.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from shoal.coordinator.partition_txns import AbortedTxn, PartitionTxns
from shoal.coordinator.producer_snapshot import decode_snapshot
from shoal.coordinator.producer_state import Append, Duplicate, Rejected
from shoal.coordinator.producers import SNAPSHOT_FILE, Producers
from shoal.protocol import ErrorCode
from shoal.records import build_batch, read_header
from shoal.records.control import build_control_batch
from shoal.records.header import BatchHeader
from shoal.records.record import SimpleRecord
from shoal.storage import LogConfig, LogManager, PartitionLog
from shoal.testing.clock import FakeClock
from shoal.testing.faultfs import FaultyFileSystem

DATA = "/data"
DAY_MS = 24 * 3600 * 1000


@dataclass
class World:
    fs: FaultyFileSystem = field(default_factory=FaultyFileSystem)
    clock: FakeClock = field(default_factory=FakeClock)
    config: LogConfig = field(default_factory=LogConfig)
    snapshot_interval_bytes: int = 10**12
    snapshot_interval_batches: int = 10**12
    replay_bytes_without_snapshot: int = 10**12
    manager: LogManager | None = None
    producers: Producers | None = None
    replays: list[int] = field(default_factory=list)
    """Start offset of every header walk (each rebuild walks once)."""

    def start(self) -> None:
        self.manager = LogManager.open(
            DATA, fs=self.fs, clock=self.clock, default_config=self.config
        )
        self.producers = Producers(
            self.fs,
            self.manager,
            self.clock,
            snapshot_interval_bytes=self.snapshot_interval_bytes,
            snapshot_interval_batches=self.snapshot_interval_batches,
            replay_bytes_without_snapshot=self.replay_bytes_without_snapshot,
        )

    @property
    def log(self) -> PartitionLog:
        assert self.manager is not None
        plog = self.manager.get("t", 0)
        return plog if plog is not None else self.manager.create("t", 0)

    def process_crash(self) -> None:
        assert self.manager is not None
        self.manager.abandon()
        self.manager = self.producers = None

    def power_loss(self) -> None:
        self.process_crash()
        self.fs.crash()

    def produce(self, pid: int, epoch: int, seq: int, count: int = 3) -> int | str:
        """Base offset of the batch (new or duplicate), or the error's name."""
        assert self.producers is not None
        records = [SimpleRecord(value=f"{pid}-{epoch}-{seq + i}".encode()) for i in range(count)]
        batch = build_batch(
            records,
            base_timestamp=self.clock.now_ms(),
            producer_id=pid,
            producer_epoch=epoch,
            base_sequence=seq,
        )
        header = read_header(batch)
        plog = self.log
        verdict = self.producers.check("t", 0, plog, header, batch)
        if isinstance(verdict, Rejected):
            return verdict.error_code.name
        if isinstance(verdict, Duplicate):
            return verdict.original.first_offset
        assert isinstance(verdict, Append)
        info = plog.append(batch, header)
        job = self.producers.on_append("t", 0, plog, header, info, batch)
        if job is not None:
            job.run()
        return info.base_offset

    def headers(self) -> list[BatchHeader]:
        return list(self.log.headers_from(0))

    def snapshot_offset(self) -> int | None:
        raw = self.log.read_side_file(SNAPSHOT_FILE)
        snapshot = decode_snapshot(raw) if raw is not None else None
        return None if snapshot is None else snapshot.log_offset


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    w = World()
    original = PartitionLog.headers_from

    def spy(plog: PartitionLog, offset: int) -> Iterator[BatchHeader]:
        w.replays.append(offset)
        return original(plog, offset)

    monkeypatch.setattr(PartitionLog, "headers_from", spy)
    yield w
    if w.manager is not None:
        w.manager.abandon()


def test_retry_after_a_process_crash_gets_the_original_offset(world: World) -> None:
    world.start()
    assert [world.produce(1, 0, seq) for seq in (0, 3, 6)] == [0, 3, 6]
    world.process_crash()  # between the append of seq 6 and its acknowledgement
    world.start()
    assert world.produce(1, 0, 6) == 6  # the client's retry: a duplicate
    assert world.produce(1, 0, 3) == 3
    assert world.produce(1, 0, 9) == 9
    assert world.produce(1, 0, 20) == "OUT_OF_ORDER_SEQUENCE_NUMBER"
    assert [h.base_sequence for h in world.headers()] == [0, 3, 6, 9]


def test_rebuild_replays_only_after_the_snapshot(world: World) -> None:
    world.snapshot_interval_bytes = 1  # a snapshot after every append
    world.start()
    for seq in range(0, 30, 3):
        world.produce(1, 0, seq)
    assert world.snapshot_offset() == 30
    world.process_crash()
    world.snapshot_interval_bytes = 10**12  # no more snapshots: seq 30 and 33 only in the log
    world.start()
    world.produce(2, 0, 0)
    world.produce(1, 0, 30)
    world.produce(1, 0, 33)
    world.process_crash()
    world.start()
    world.replays.clear()
    assert world.produce(1, 0, 27) == 27  # from the snapshot
    assert world.produce(1, 0, 33) == 36  # from the replay
    assert world.produce(2, 0, 0) == 30
    assert world.replays == [30]


@pytest.mark.parametrize("by", ["batches", "bytes"])
def test_snapshots_are_due_by_batches_or_bytes(world: World, by: str) -> None:
    if by == "batches":
        world.snapshot_interval_batches = 4
    else:
        world.snapshot_interval_bytes = 4 * 80  # each test batch here is 97-100 bytes
    world.start()
    for seq in range(0, 9, 3):
        world.produce(1, 0, seq)
    assert world.snapshot_offset() is None
    world.produce(1, 0, 9)
    assert world.snapshot_offset() == 12
    for seq in range(12, 21, 3):
        world.produce(1, 0, seq)
    assert world.snapshot_offset() == 12
    world.produce(1, 0, 21)
    assert world.snapshot_offset() == 24


def test_snapshot_newer_than_the_log_is_replaced_before_any_append(world: World) -> None:
    world.snapshot_interval_bytes = 1
    world.start()
    world.produce(1, 0, 0)
    world.log.flush()
    world.produce(1, 0, 3)  # in the page cache only; the snapshot (fsynced) covers it
    assert world.snapshot_offset() == 6
    world.power_loss()
    world.snapshot_interval_bytes = 10**12
    world.start()
    assert world.log.log_end_offset == 3
    # The lost batch is new data again, not a duplicate of a batch that is gone.
    assert world.produce(1, 0, 3) == 3
    assert world.snapshot_offset() == 3  # replaced as part of the rebuild
    # Refill past the old snapshot's offset, crash, and come back: a stale snapshot at 6 would
    # now describe batches that are not in the log.
    world.produce(7, 0, 0)
    world.produce(7, 0, 3)
    world.process_crash()
    world.start()
    assert world.produce(7, 0, 3) == 9
    assert world.produce(1, 0, 3) == 3
    assert world.produce(1, 0, 6) == 12


def test_damaged_snapshot_means_a_longer_replay_not_a_wrong_state(world: World) -> None:
    world.snapshot_interval_bytes = 1
    world.start()
    for seq in (0, 3, 6):
        world.produce(1, 0, seq)
    path = f"{DATA}/t-0/{SNAPSHOT_FILE}"
    data = bytearray(world.fs.read_bytes(path))
    data[10] ^= 0xFF
    world.fs.write_bytes(path, bytes(data))
    world.process_crash()
    world.start()
    world.replays.clear()
    assert world.produce(1, 0, 6) == 6
    assert world.replays == [0]


def test_without_a_snapshot_only_the_newest_bytes_rebuild_producers(world: World) -> None:
    world.replay_bytes_without_snapshot = 2000
    world.start()
    world.produce(1, 0, 0)  # producer 1 appears only at the start of the log
    seq = 0
    while world.log.size_bytes < 10_000:
        world.produce(2, 0, seq)
        seq += 3
    world.process_crash()
    world.start()
    world.replays.clear()
    end = world.log.log_end_offset
    assert world.produce(2, 0, seq - 3) == end - 3  # still a duplicate
    # One header walk, from the log start: transactions are rebuilt from the whole log (an
    # aborted range is never forgotten), producers only from the newest 2000 bytes.
    assert world.replays == [0] and world.log.offset_before_end(2000) > 0
    # Producer 1 was forgotten (the documented bound): a retry of its batch is taken as new.
    assert world.produce(1, 0, 0) == end


def test_expired_producers_are_forgotten(world: World) -> None:
    world.snapshot_interval_bytes = 1
    world.start()
    world.produce(1, 0, 0)
    world.clock.advance(DAY_MS - 1000)
    world.produce(2, 0, 0)
    world.process_crash()
    world.clock.advance(1000)  # producer 1 now silent for a day, producer 2 for a second
    world.start()
    assert world.produce(2, 0, 0) == 3
    assert world.produce(1, 0, 5) == 6  # unknown again: any sequence is accepted
    assert world.produce(1, 0, 0) == "OUT_OF_ORDER_SEQUENCE_NUMBER"


def test_a_recreated_partition_starts_empty(world: World) -> None:
    world.start()
    world.produce(1, 0, 0)
    world.produce(1, 0, 3)
    assert world.manager is not None
    world.manager.delete("t", 0)
    assert world.produce(1, 0, 3) == 0  # new log, no state: appended, not a duplicate
    assert world.produce(1, 0, 0) == "OUT_OF_ORDER_SEQUENCE_NUMBER"


def test_epoch_bump_survives_a_restart(world: World) -> None:
    world.start()
    world.produce(1, 0, 0)
    world.produce(1, 1, 0)
    world.process_crash()
    world.start()
    assert world.produce(1, 0, 3) == ErrorCode.INVALID_PRODUCER_EPOCH.name
    assert world.produce(1, 1, 0) == 3


def _transactional(world: World, pid: int, epoch: int, seq: int) -> int:
    assert world.producers is not None
    batch = build_batch(
        [SimpleRecord(value=b"x")],
        base_timestamp=world.clock.now_ms(),
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
        transactional=True,
    )
    return _append(world, batch)


def _marker(world: World, pid: int, epoch: int, *, commit: bool) -> int:
    batch = build_control_batch(
        pid, epoch, commit=commit, coordinator_epoch=0, timestamp=world.clock.now_ms()
    )
    return _append(world, batch)


def _append(world: World, batch: bytes) -> int:
    assert world.producers is not None
    header = read_header(batch)
    plog = world.log
    assert isinstance(world.producers.check("t", 0, plog, header, batch), Append)
    info = plog.append(batch, header)
    job = world.producers.on_append("t", 0, plog, header, info, batch)
    if job is not None:
        job.run()
    return info.base_offset


def _txns(world: World) -> PartitionTxns:
    assert world.producers is not None
    return world.producers.txns("t", 0, world.log)


@pytest.mark.parametrize("snapshot", ["every append", "none", "damaged"])
def test_open_and_aborted_transactions_survive_a_crash(world: World, snapshot: str) -> None:
    if snapshot == "every append":
        world.snapshot_interval_bytes = 1
    world.start()
    _transactional(world, 7, 0, 0)  # 0: aborted below
    world.produce(1, 0, 0)  # 1-3: not transactional
    _marker(world, 7, 0, commit=False)  # 4
    _transactional(world, 8, 0, 0)  # 5: committed
    _marker(world, 8, 0, commit=True)  # 6
    _transactional(world, 9, 2, 0)  # 7: still open at the crash
    world.produce(1, 0, 3)  # 8-10
    if snapshot == "damaged":
        world.snapshot_interval_bytes = 1
        world.produce(1, 0, 6)  # 11-13, and a snapshot
        path = f"{DATA}/t-0/{SNAPSHOT_FILE}"
        world.fs.write_bytes(path, b"garbage")
    world.process_crash()
    world.start()
    txns = _txns(world)
    assert txns.ongoing == {9: 7}
    assert txns.aborted == [AbortedTxn(7, 0, 4)]
    assert txns.last_stable_offset(world.log.log_end_offset, world.log.log_start_offset) == 7
    # The fenced epoch of producer 9 is known again once its marker is replayed.
    _marker(world, 9, 3, commit=False)
    world.process_crash()
    world.start()
    txns = _txns(world)
    assert txns.ongoing == {}
    assert (
        txns.last_stable_offset(world.log.log_end_offset, world.log.log_start_offset)
        == world.log.log_end_offset
    )
    assert [a.producer_id for a in txns.aborted] == [7, 9]
    assert world.producers is not None
    entry = world.producers.state("t", 0, world.log).get(9)
    assert entry is not None and entry.epoch == 3 and entry.last_sequence == -1


def test_a_batch_straddling_the_log_start_is_replayed(world: World) -> None:
    """DeleteRecords put the log start inside a batch; without a snapshot the rebuild walked
    from the log start and skipped that batch, so its producer's retry was stored twice
    (found by tests/simulation, full mode, seeds 477, 1248 and 1366)."""
    world.start()
    assert world.produce(1, 0, 0, count=5) == 0
    world.log.delete_records(2)  # inside the batch [0, 5)
    world.process_crash()  # no snapshot was written (huge intervals)
    world.start()
    assert world.snapshot_offset() is None
    assert world.produce(1, 0, 0, count=5) == 0  # the client's retry: a duplicate
    assert [h.base_offset for h in world.headers()] == [0]


def test_the_last_stable_offset_is_never_below_the_log_start(world: World) -> None:
    """DeleteRecords (or a snapshot of __consumer_offsets) may delete the start of a
    transaction still open: the last stable offset is then the log start, as Kafka's
    UnifiedLog clamps it, not an offset no reader can fetch (OFFSET_OUT_OF_RANGE)."""
    world.start()
    world.produce(1, 0, 0)  # 0-2
    _transactional(world, 9, 0, 0)  # 3: open
    world.produce(1, 0, 3)  # 4-6
    assert _txns(world).last_stable_offset(world.log.log_end_offset, 0) == 3
    world.log.delete_records(5)
    start = world.log.log_start_offset
    assert start == 5
    assert _txns(world).last_stable_offset(world.log.log_end_offset, start) == 5
    _marker(world, 9, 0, commit=True)
    assert (
        _txns(world).last_stable_offset(world.log.log_end_offset, start) == world.log.log_end_offset
    )
