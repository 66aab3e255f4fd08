"""The flusher's workers fsync different logs at once, each log by one worker at a time.

The fault layer holds the fsyncs under one partition's directory (a slow disk region): what
another partition appends meanwhile must still be acknowledged, a failure released into the
held fsync fails only the appends it covers, and the appends queued behind a held fsync of the
same log share the next one (group commit). A bug in one log's flush does not stop the workers.
The periodic duties (INTERVAL flushes, checkpoints) of the other logs go on while one log's
fsync is held: the ticks that queue them wait for no fsync.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Final

import pytest

from shoal.invariant import InvariantError
from shoal.records import SimpleRecord, build_batch
from shoal.storage import FlushPolicy, LogConfig, LogDirectoryFailedError, LogManager, PartitionLog
from shoal.storage.checkpoint import CHECKPOINT_FILE, read_checkpoint
from shoal.storage.flush import TICK_MS, Flusher
from shoal.testing.clock import FakeClock
from shoal.testing.faultfs import FaultyFileSystem, FsyncHold

DATA: Final = "/data"
WAIT_S: Final = 30.0
"""Bound on a wait that only a bug makes long (the test then fails instead of hanging)."""


@pytest.fixture
def fs() -> FaultyFileSystem:
    return FaultyFileSystem()


def _open(fs: FaultyFileSystem, **kwargs: int) -> LogManager:
    return LogManager.open(
        DATA,
        fs=fs,
        clock=FakeClock(),
        default_config=LogConfig(checkpoint_interval_ms=10**12),
        **kwargs,
    )


@pytest.fixture
def logs(fs: FaultyFileSystem) -> Iterator[LogManager]:
    manager = _open(fs)
    yield manager
    fs.release_hold()  # a fsync left held by a failing test must not hang the stop
    manager.abandon()


def _append(plog: PartitionLog, value: bytes) -> Future[None]:
    info = plog.append(build_batch([SimpleRecord(value=value)]))
    return plog.wait_durable(info.last_offset)


def _held_append(fs: FaultyFileSystem, plog: PartitionLog) -> tuple[FsyncHold, Future[None]]:
    """An append to ``plog`` whose fsync has begun and is held (with every later one under
    the log's directory) until the hold is released."""
    hold = fs.hold_fsyncs_under(plog.directory)
    durable = _append(plog, b"held")
    assert hold.wait_held(1, WAIT_S), f"the fsync of {plog.name} never started"
    return hold, durable


def test_an_append_is_acknowledged_while_another_logs_fsync_is_held(
    fs: FaultyFileSystem, logs: LogManager
) -> None:
    slow, fast = logs.create("t", 0), logs.create("t", 1)
    hold, held = _held_append(fs, slow)
    # One flusher thread would be stuck in the held fsync: this would never be acknowledged.
    _append(fast, b"fast").result(WAIT_S)
    assert fast.flushed_offset == 1
    assert not held.done() and slow.flushed_offset == 0
    hold.release()
    held.result(WAIT_S)
    assert slow.flushed_offset == 1


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def timed_logs(fs: FaultyFileSystem, clock: FakeClock) -> Iterator[LogManager]:
    """Logs whose flusher's clock the test advances (the periodic duties come due)."""
    manager = LogManager.open(
        DATA, fs=fs, clock=clock, default_config=LogConfig(checkpoint_interval_ms=10**12)
    )
    yield manager
    fs.release_hold()
    manager.abandon()


def test_another_logs_interval_flush_runs_while_one_fsync_is_held(
    fs: FaultyFileSystem, clock: FakeClock, timed_logs: LogManager
) -> None:
    """Found in review: one worker kept the ticks; stuck in a slow fsync, it queued no other
    log's periodic duty, and an INTERVAL log was not fsynced until that fsync ended."""
    interval_ms = 1_000
    slow = timed_logs.create("t", 0)
    lazy = timed_logs.create(
        "t",
        1,
        LogConfig(
            flush_policy=FlushPolicy.INTERVAL,
            flush_interval_ms=interval_ms,
            checkpoint_interval_ms=10**12,
        ),
    )
    hold, held = _held_append(fs, slow)
    lazy.append(build_batch([SimpleRecord(value=b"lazy")]))
    probe = fs.hold_fsyncs_under(lazy.directory)  # reports the INTERVAL flush's fsync
    clock.advance(interval_ms + TICK_MS)
    assert probe.wait_held(1, WAIT_S), "no INTERVAL flush while another log's fsync was held"
    assert hold.held == 1 and not held.done()
    fs.release_hold()
    held.result(WAIT_S)
    timed_logs.abandon()  # the workers are done: the INTERVAL flush finished
    assert lazy.flushed_offset == 1
    fs.crash()
    reopened = LogManager.open(DATA, fs=fs, clock=clock)
    try:
        kept = reopened.get("t", 1)
        assert kept is not None and kept.log_end_offset == 1
    finally:
        reopened.close()


def test_another_logs_checkpoint_is_saved_while_one_fsync_is_held(
    fs: FaultyFileSystem, clock: FakeClock, timed_logs: LogManager
) -> None:
    interval_ms = 1_000
    slow = timed_logs.create("t", 0)
    steady = timed_logs.create("t", 1, LogConfig(checkpoint_interval_ms=interval_ms))
    _append(steady, b"acknowledged").result(WAIT_S)
    hold, held = _held_append(fs, slow)
    probe = fs.hold_fsyncs_under(steady.directory)  # reports the checkpoint's fsync
    clock.advance(interval_ms + TICK_MS)
    assert probe.wait_held(1, WAIT_S), "no checkpoint while another log's fsync was held"
    assert any(CHECKPOINT_FILE in path for path in probe.paths), probe.paths
    assert hold.held == 1 and not held.done()
    fs.release_hold()
    held.result(WAIT_S)
    timed_logs.abandon()  # the workers are done, and abandoning writes no checkpoint
    saved = read_checkpoint(fs, steady.directory)
    assert saved is not None and saved.recovery_point == 1


def test_a_failed_fsync_fails_only_the_appends_of_its_own_file(
    fs: FaultyFileSystem, logs: LogManager
) -> None:
    bad, good = logs.create("t", 0), logs.create("t", 1)
    hold, first = _held_append(fs, bad)
    queued = _append(bad, b"lost-2")  # behind the held fsync of its own log
    acknowledged = [_append(good, f"kept-{n}".encode()) for n in range(3)]
    for future in acknowledged:
        future.result(WAIT_S)
    hold.release(errno.EIO)
    for future in (first, queued):
        with pytest.raises(LogDirectoryFailedError):
            future.result(WAIT_S)
    assert logs.health.failure is not None
    with pytest.raises(LogDirectoryFailedError):
        good.append(build_batch([SimpleRecord(value=b"refused")]))
    # A power cut now keeps what was acknowledged, and only that.
    logs.abandon()
    fs.crash()
    reopened = _open(fs)
    try:
        kept = reopened.get("t", 1)
        assert kept is not None and kept.log_end_offset == 3
        lost = reopened.get("t", 0)
        assert lost is not None and lost.log_end_offset == 0
    finally:
        reopened.close()


def test_appends_queued_behind_a_held_fsync_share_the_next_one(
    fs: FaultyFileSystem, logs: LogManager
) -> None:
    plog = logs.create("t", 0)
    hold, first = _held_append(fs, plog)
    queued = [_append(plog, f"queued-{n}".encode()) for n in range(10)]
    # One log is fsynced by one worker at a time: no second fsync of it started meanwhile.
    assert hold.held == 1
    flushes = plog.flush_count
    hold.release()
    for future in (first, *queued):
        future.result(WAIT_S)
    assert plog.flush_count == flushes + 2  # the held flush, then one for all ten


def test_no_more_logs_are_fsynced_at_once_than_the_flusher_has_threads(
    fs: FaultyFileSystem,
) -> None:
    logs = _open(fs, flush_threads=3)
    try:
        plogs = [logs.create("t", p) for p in range(6)]
        hold = fs.hold_fsyncs_under(DATA)
        waits = [_append(plog, b"v") for plog in plogs]
        assert hold.wait_held(3, WAIT_S), f"only {hold.held} fsyncs ran at once"
        assert hold.held == 3 and not any(w.done() for w in waits)
        hold.release()
        for future in waits:
            future.result(WAIT_S)
        assert hold.most_held == 3
        assert logs.stats.flush.fsync_duration_s.count >= 6
    finally:
        fs.release_hold()
        logs.close()


def test_fsyncs_failing_at_once_fail_the_directory_once(
    fs: FaultyFileSystem, logs: LogManager, caplog: pytest.LogCaptureFixture
) -> None:
    plogs = [logs.create("t", p) for p in range(4)]
    hold = fs.hold_fsyncs_under(DATA)
    waits = [_append(plog, b"v") for plog in plogs]
    assert hold.wait_held(len(plogs), WAIT_S), f"only {hold.held} fsyncs ran at once"
    hold.release(errno.EIO)  # the whole disk gives up under every worker at once
    for future in waits:
        with pytest.raises(LogDirectoryFailedError):
            future.result(WAIT_S)
    critical = [r for r in caplog.records if r.levelname == "CRITICAL"]
    assert len(critical) == 1, [r.getMessage() for r in critical]


class _Flushes:
    """A Flushable that counts its flushes, or fails them with a bug (not a StorageError)."""

    def __init__(self, *, fails: bool = False) -> None:
        self.fails = fails
        self.flushed = threading.Event()
        self.failed_after: Exception | None = None

    def flush(self) -> None:
        if self.fails:
            raise RuntimeError("a bug in a flush")
        self.flushed.set()

    def periodic(self, now_monotonic_ms: float) -> bool:
        return False

    def fail_after_bug(self, exc: Exception) -> None:
        self.failed_after = exc


def test_a_bug_in_one_flush_does_not_stop_the_flusher(caplog: pytest.LogCaptureFixture) -> None:
    flusher = Flusher(FakeClock(), threads=1)
    try:
        broken, fine = _Flushes(fails=True), _Flushes()
        for plog in (broken, fine):
            flusher.register(plog)
        flusher.request(broken)
        flusher.request(fine)
        assert fine.flushed.wait(WAIT_S), "the only worker died with the broken flush"
        assert "failed unexpectedly" in caplog.text
        assert isinstance(broken.failed_after, RuntimeError)  # its appenders are answered
        assert fine.failed_after is None
    finally:
        flusher.stop()


def test_without_threads_a_bug_reaches_the_owner_and_the_other_logs_wait_for_the_next_round() -> (
    None
):
    flusher = Flusher(FakeClock(), threaded=False)
    broken, fine = _Flushes(fails=True), _Flushes()
    for plog in (broken, fine):
        flusher.register(plog)
    flusher.request(broken)
    flusher.request(fine)
    with pytest.raises(RuntimeError, match="a bug in a flush"):
        flusher.run_pending()  # the simulation sees the bug
    assert not fine.flushed.is_set()
    flusher.run_pending()
    assert fine.flushed.is_set()


def test_a_bug_after_a_real_logs_fsync_answers_its_waiting_append(
    logs: LogManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review: a bug raised inside a flush (here the stats, after the fsync) was only
    logged, and the append waiting for that flush waited until the log's next append."""
    plog = logs.create("t", 0)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug in the flush stats")

    monkeypatch.setattr(type(logs.stats.flush), "observe", broken)
    with pytest.raises(LogDirectoryFailedError, match="failed unexpectedly"):
        _append(plog, b"v").result(WAIT_S)
    assert logs.health.failure is not None


class _Recorded:
    """A Flushable that notes its flushes in a shared list."""

    def __init__(self, name: str, done: list[str]) -> None:
        self.name = name
        self.done = done

    def flush(self) -> None:
        self.done.append(self.name)

    def periodic(self, now_monotonic_ms: float) -> bool:
        return False

    def fail_after_bug(self, exc: Exception) -> None:
        raise AssertionError(f"unexpected bug in {self.name}: {exc!r}")


def test_without_threads_a_round_finishes_the_chosen_logs_in_the_chosen_order() -> None:
    flusher = Flusher(FakeClock(), threaded=False)
    done: list[str] = []
    a, b, c = (_Recorded(name, done) for name in "abc")
    for plog in (a, b, c):
        flusher.register(plog)
        flusher.request(plog)
    offered: list[int] = []

    def last_then_first(logs: int) -> list[int]:
        offered.append(logs)
        return list(dict.fromkeys([logs - 1, 0]))  # the last, then the first

    flusher.run_pending(last_then_first)
    assert done == ["c", "a"]
    flusher.run_pending(last_then_first)  # b waited for this round
    assert done == ["c", "a", "b"] and offered == [3, 1]


def test_without_threads_a_round_refuses_a_choice_of_logs_it_does_not_have() -> None:
    flusher = Flusher(FakeClock(), threaded=False)
    done: list[str] = []
    plog = _Recorded("a", done)
    flusher.register(plog)
    flusher.request(plog)
    with pytest.raises(InvariantError, match="distinct logs"):
        flusher.run_pending(lambda logs: [0, 0])
    with pytest.raises(InvariantError, match="distinct logs"):
        flusher.run_pending(lambda logs: [1])
    flusher.run_pending()
    assert done == ["a"]
