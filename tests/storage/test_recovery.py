"""Recovery after a crash: torn tails are cut, indexes rebuilt, damage below the checkpoint
refused. Runs on the fault-injecting filesystem so each case starts from exact bytes."""

from __future__ import annotations

import pytest

from shoal.storage import CorruptLogError, LogConfig
from tests.storage.batches import make_batch, payload_of
from tests.storage.support import DATA, Harness, read_all

NOW = 1_700_000_000_000
SEGMENT = f"{DATA}/t-0/00000000000000000000.log"


def write_batches(h: Harness, count: int, *, checkpoint_after: int | None = None) -> list[bytes]:
    """Append ``count`` batches durably; optionally save the recovery point after some."""
    h.open()
    plog = h.log()
    batches = []
    for i in range(count):
        batch = make_batch(records=1 + i % 3, payload=40 + 13 * i, seed=i, timestamp=NOW + i)
        info = plog.append(batch)
        plog.wait_durable(info.last_offset).result(timeout=10)
        batches.append(batch)
        if checkpoint_after is not None and i + 1 == checkpoint_after:
            plog.checkpoint()
    return batches


def expected(batches: list[bytes]) -> list[bytes]:
    return [payload_of(b) for b in batches]


def test_torn_tail_is_cut_at_every_byte_of_the_last_batch() -> None:
    h = Harness()
    batches = write_batches(h, 6)
    h.abandon()
    original = h.fs.read_bytes(SEGMENT)
    last_start = len(original) - len(batches[-1])
    for cut in range(last_start, len(original)):
        h.fs.write_bytes(SEGMENT, original[:cut])
        h.open()
        plog = h.log()
        assert plog.log_end_offset == sum(1 + i % 3 for i in range(5))
        assert read_all(h) == expected(batches[:5])
        assert h.fs.read_bytes(SEGMENT) == original[:last_start]
        h.abandon()


def test_garbage_after_the_last_batch_is_cut_and_appends_continue(harness: Harness) -> None:
    batches = write_batches(harness, 4)
    harness.abandon()
    original = harness.fs.read_bytes(SEGMENT)
    harness.fs.write_bytes(SEGMENT, original + b"\x00\x01garbage" * 50)
    harness.open()
    assert read_all(harness) == expected(batches)
    more = make_batch(records=2, seed=99)
    info = harness.log().append(more)
    assert info.base_offset == sum(1 + i % 3 for i in range(4))
    assert read_all(harness) == [*expected(batches), payload_of(more)]


def test_zeroed_tail_is_cut(harness: Harness) -> None:
    batches = write_batches(harness, 5)
    harness.abandon()
    original = harness.fs.read_bytes(SEGMENT)
    harness.fs.write_bytes(SEGMENT, original + bytes(4096))
    harness.open()
    assert read_all(harness) == expected(batches)


@pytest.mark.parametrize("which", ["last", "middle"])
def test_bit_flip_after_the_checkpoint_cuts_from_the_damaged_batch(which: str) -> None:
    h = Harness()
    batches = write_batches(h, 8, checkpoint_after=2)
    h.abandon()
    original = h.fs.read_bytes(SEGMENT)
    victim = 7 if which == "last" else 4
    victim_start = sum(len(b) for b in batches[:victim])
    for bit_at in range(victim_start + 21, victim_start + len(batches[victim]), 7):
        damaged = bytearray(original)
        damaged[bit_at] ^= 0x10
        h.fs.write_bytes(SEGMENT, bytes(damaged))
        h.open()
        assert read_all(h) == expected(batches[:victim])
        h.abandon()


def test_bit_flip_below_the_checkpoint_is_refused_and_files_are_kept() -> None:
    h = Harness()
    batches = write_batches(h, 8, checkpoint_after=6)
    h.abandon()
    original = h.fs.read_bytes(SEGMENT)
    victim_start = sum(len(b) for b in batches[:3])
    damaged = bytearray(original)
    damaged[victim_start + 30] ^= 0x01
    h.fs.write_bytes(SEGMENT, bytes(damaged))
    manager = h.open()
    assert manager.get("t", 0) is None
    reason = manager.offline[next(iter(manager.offline))]
    assert "CRC mismatch" in reason and "00000000000000000000.log" in reason
    assert "offline" in reason
    assert h.fs.read_bytes(SEGMENT) == bytes(damaged)  # nothing cut
    with pytest.raises(CorruptLogError):
        manager.create("t", 0)


def test_truncated_sealed_segment_below_the_checkpoint_is_refused() -> None:
    h = Harness(config=LogConfig(segment_bytes=600, checkpoint_interval_ms=10**12))
    write_batches(h, 30)
    plog = h.log()
    assert plog.segment_count > 3
    plog.checkpoint()
    h.abandon()
    sealed = f"{DATA}/t-0/{plog._segments[1].base_offset:020d}.log"
    data = h.fs.read_bytes(sealed)
    h.fs.write_bytes(sealed, data[: len(data) - 5])
    manager = h.open()
    assert manager.get("t", 0) is None
    assert sealed.rsplit("/", 1)[1] in next(iter(manager.offline.values()))
    assert h.fs.read_bytes(sealed) == data[: len(data) - 5]


def test_missing_sealed_segment_below_the_checkpoint_is_refused() -> None:
    h = Harness(config=LogConfig(segment_bytes=600, checkpoint_interval_ms=10**12))
    write_batches(h, 30)
    plog = h.log()
    plog.checkpoint()
    middle = plog._segments[2].base_offset
    h.abandon()
    h.fs.remove(f"{DATA}/t-0/{middle:020d}.log")
    manager = h.open()
    assert manager.get("t", 0) is None
    assert "missing" in next(iter(manager.offline.values()))


@pytest.mark.parametrize("damage", ["delete", "truncate", "zero", "flip", "garbage"])
@pytest.mark.parametrize("clean", [True, False])
def test_damaged_indexes_are_rebuilt(damage: str, clean: bool) -> None:
    config = LogConfig(segment_bytes=2000, index_interval_bytes=150, checkpoint_interval_ms=10**12)
    h = Harness(config=config)
    batches = write_batches(h, 60)
    plog = h.log()
    reference = [(o, plog.read(o, 700).data) for o in range(0, plog.log_end_offset, 3)]
    if clean:
        h.close()
    else:
        plog.checkpoint()
        h.abandon()
    index_files = [n for n in h.fs.listdir(f"{DATA}/t-0") if n.endswith("index")]
    assert len(index_files) >= 4
    for name in index_files:
        path = f"{DATA}/t-0/{name}"
        data = h.fs.read_bytes(path)
        if damage == "delete":
            h.fs.remove(path)
        elif damage == "truncate":
            h.fs.write_bytes(path, data[: len(data) // 2])
        elif damage == "zero":
            h.fs.write_bytes(path, bytes(len(data)))
        elif damage == "flip" and len(data) > 6:
            h.fs.write_bytes(path, data[:5] + bytes([data[5] ^ 0x40]) + data[6:])
        elif damage == "garbage":
            h.fs.write_bytes(path, data + b"\xff" * 13)
    h.open()
    plog = h.log()
    assert read_all(h) == expected(batches)
    assert [(o, plog.read(o, 700).data) for o in range(0, plog.log_end_offset, 3)] == reference


def test_clean_shutdown_skips_the_scan_and_a_crash_after_restart_is_detected(
    harness: Harness,
) -> None:
    batches = write_batches(harness, 5)
    harness.close()
    manager = harness.open()
    assert manager.recovered_cleanly
    more = make_batch(seed=50)
    plog = harness.log()
    plog.wait_durable(plog.append(more).last_offset).result(timeout=10)
    harness.abandon()
    original = harness.fs.read_bytes(SEGMENT)
    harness.fs.write_bytes(SEGMENT, original[:-3])  # torn tail after the restart
    manager = harness.open()
    assert not manager.recovered_cleanly
    assert read_all(harness) == expected(batches)


def test_stray_temporary_and_orphan_index_files_are_removed(harness: Harness) -> None:
    write_batches(harness, 3)
    harness.abandon()
    harness.fs.write_bytes(f"{DATA}/t-0/checkpoint.tmp", b"half")
    harness.fs.write_bytes(f"{DATA}/t-0/00000000000000000099.index", b"orphan")
    harness.open()
    names = harness.fs.listdir(f"{DATA}/t-0")
    assert "checkpoint.tmp" not in names
    assert "00000000000000000099.index" not in names


def test_recovery_makes_every_rechecked_segment_durable_before_checkpointing() -> None:
    """A process crash can leave rolled segments unsynced in the page cache. Recovery re-checks
    them and moves the recovery point past them, so it must fsync them first: a power loss
    right after the restart must then lose nothing."""
    from shoal.storage import FlushPolicy, PartitionLog
    from shoal.storage.handles import FileHandles
    from shoal.storage.log import DirectoryHealth
    from shoal.testing.clock import FakeClock
    from shoal.testing.faultfs import FaultyFileSystem

    fs, clock = FaultyFileSystem(), FakeClock()
    config = LogConfig(segment_bytes=500, flush_policy=FlushPolicy.NONE)
    directory = f"{DATA}/t-0"

    def open_log() -> PartitionLog:
        # No flusher: under NONE nothing is fsynced behind the test's back.
        return PartitionLog.open(
            fs,
            directory,
            config,
            clock=clock,
            handles=FileHandles(fs, max_open_files=64),
            health=DirectoryHealth(DATA),
        )

    plog = open_log()
    batches = [make_batch(payload=150, seed=i, timestamp=NOW + i) for i in range(12)]
    for batch in batches:
        plog.append(batch)
    assert plog.segment_count > 3
    plog = open_log()  # the process crashed and restarted: recovery
    assert plog.log_end_offset == len(batches)
    fs.crash()  # then the power goes
    plog = open_log()
    assert plog.log_end_offset == len(batches)
    offset, stored = 0, []
    while offset < plog.log_end_offset:
        result = plog.read(offset, 1 << 20)
        stored.append(result.data)
        offset = result.next_offset
    assert b"".join(stored).count(b"\x02") >= len(batches)  # crude: every batch is still there
