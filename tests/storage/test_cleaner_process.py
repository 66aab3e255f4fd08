"""The log cleaner in a process of its own (the broker's setting): what a clean does cannot
stall the broker's threads, and the clean's result is the same as on the cleaner's thread.

The hold is a step of the clean that keeps the GIL while it blocks (:class:`GilHold`): on the
cleaner's thread it froze the whole broker process, so an acks=all append to another log was
acknowledged only once the watchdog released the hold; in the cleaner's process it is
acknowledged while the hold stands. The watchdog's delay only bounds how long a broken broker
keeps the test waiting: nothing here measures time.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shoal.storage import LogConfig, LogDirectoryFailedError, LogManager, PartitionLog
from shoal.storage.cleaner_thread import CleanerSettings, LogCleaner
from shoal.testing.cleaner_steps import cleaner_step_hook
from shoal.testing.gil_hold import GilHold
from tests.storage.cleaning import Seen, append, read_records

WATCHDOG_S = 60.0
"""Longest the hold can stand: past it the watchdog releases it (and the test fails)."""
DEADLINE_S = 120.0
"""Bound on the waits for the clean to start and to finish."""
COMPACT = LogConfig(segment_bytes=400, compact=True, retention_ms=-1, checkpoint_interval_ms=10**12)


def _wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def _dirty_log(manager: LogManager, *, lasting_keys: int = 0) -> PartitionLog:
    """A compacted log of 40 records over 3 keys whose sealed segments are cleanable, after
    ``lasting_keys`` records of keys written once (which every clean keeps)."""
    dirty = manager.create("dirty", 0, COMPACT)
    for i in range(lasting_keys):
        append(dirty, [(f"once{i}".encode(), b"kept")])
    for i in range(40):
        append(dirty, [(f"k{i % 3}".encode(), f"v{i}".encode())])
    dirty.flush()  # only sealed, fsynced segments are cleanable
    return dirty


@contextmanager
def _held_clean(manager: LogManager, hold: GilHold) -> Iterator[LogCleaner]:
    """The cleaner in its process, once its clean stands at the hold; the watchdog bounds how
    long the hold can stand."""
    watchdog = hold.release_later(WATCHDOG_S)
    try:
        with cleaner_step_hook(hold):
            cleaner = manager.start_cleaner(CleanerSettings(backoff_ms=50), separate_process=True)
            _wait_for(hold.has_started, "the clean to reach its hold")
        yield cleaner
    finally:
        os.killpg(watchdog.pid, signal.SIGKILL)
        watchdog.wait()


def _cleaned_files(plog: PartitionLog) -> list[str]:
    return [f for f in os.listdir(plog.directory) if f.endswith(".cleaned")]


def test_an_append_to_another_log_is_durable_while_a_clean_holds_the_gil(tmp_path: Path) -> None:
    hold = GilHold(tmp_path)
    with LogManager.open(str(tmp_path / "data")) as manager:
        dirty = _dirty_log(manager)
        other = manager.create("other", 0)
        with _held_clean(manager, hold) as cleaner:
            offset = append(other, [(b"k", b"acknowledged while the clean holds")])
            other.wait_durable(offset).result(timeout=DEADLINE_S)
            assert not hold.was_released(), "the append waited for the clean's hold"
            hold.release()
            _wait_for(lambda: cleaner.metrics.cleans >= 1, "the clean to finish")
        # The clean done in the process is swapped in here: each key once below the active
        # segment (which starts at 35), at its latest offset, and no .cleaned file is left.
        cleaned = [r for r in read_records(dirty) if r.offset < 35]
        assert cleaned == [
            Seen(32, b"k2", b"v32"),
            Seen(33, b"k0", b"v33"),
            Seen(34, b"k1", b"v34"),
        ]
        assert not _cleaned_files(dirty)


def test_stopping_the_cleaner_mid_clean_leaves_the_log_as_it_was(tmp_path: Path) -> None:
    with LogManager.open(str(tmp_path / "data")) as manager:
        dirty = _dirty_log(manager, lasting_keys=5)
        before = read_records(dirty)
        # Held once the first group's .cleaned segment has records in it (the lasting keys),
        # before its swap.
        hold = GilHold(tmp_path, after_cleaned_in=dirty.directory)
        with _held_clean(manager, hold) as cleaner:
            assert _cleaned_files(dirty), "the hold came before the process wrote anything"
            cleaner.stop()  # kills the process, held or not
            assert not hold.was_released(), "the stop waited for the hold"
        assert cleaner.metrics.cleans == 0
        assert read_records(dirty) == before
        assert not _cleaned_files(dirty)


def test_the_cleaners_metrics_move_during_a_clean_in_its_process(tmp_path: Path) -> None:
    """Bytes cleaned arrive with each group swapped in, not only when the whole clean ends."""
    with LogManager.open(str(tmp_path / "data")) as manager:
        dirty = _dirty_log(manager, lasting_keys=5)
        # Held in a later group than the first (based at 0): the first was swapped in.
        hold = GilHold(tmp_path, after_cleaned_in=dirty.directory, base_at_least=1)
        with _held_clean(manager, hold) as cleaner:
            totals = cleaner.metrics.totals
            assert totals.bytes_read > 0
            assert totals.bytes_written > 0
            assert cleaner.metrics.cleans == 0, "the clean ended before its hold"
            hold.release()
            _wait_for(lambda: cleaner.metrics.cleans >= 1, "the clean to finish")
    # The reports add up to what the same clean counts on the cleaner's thread: nothing twice.
    with LogManager.open(str(tmp_path / "thread")) as manager:
        _dirty_log(manager, lasting_keys=5)
        on_thread = manager.start_cleaner(CleanerSettings(backoff_ms=50))
        _wait_for(lambda: on_thread.metrics.cleans >= 1, "the clean on the thread")
        assert totals == on_thread.metrics.totals


def test_a_process_that_never_cleans_leaves_the_cleaning_to_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An embedding host whose ``sys.executable`` is not a Python interpreter (uwsgi, a frozen
    app) cannot run the cleaner's process: compaction goes on, on the cleaner's thread, with a
    warning, instead of failing every clean for ever."""
    monkeypatch.setattr(sys, "executable", "/bin/false")  # starts, then exits at once
    with LogManager.open(str(tmp_path / "data")) as manager:
        dirty = _dirty_log(manager)
        with caplog.at_level(logging.WARNING, logger="shoal.storage.cleaner_thread"):
            cleaner = manager.start_cleaner(CleanerSettings(backoff_ms=50), separate_process=True)
            _wait_for(lambda: cleaner.metrics.cleans >= 1, "the clean on the thread")
        cleaned = [r for r in read_records(dirty) if r.offset < 35]
        assert [r.offset for r in cleaned] == [32, 33, 34]
        assert any("cleaning on the broker's thread" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("separate_process", [True, False], ids=["process", "thread"])
def test_an_io_error_in_a_clean_fails_the_data_directory(
    tmp_path: Path, separate_process: bool
) -> None:
    """As Kafka's cleaner takes the log directory offline on an IOException, in its process as
    on its thread: the directory turns read-only (the log's own I/O errors do the same)."""
    with LogManager.open(str(tmp_path / "data")) as manager:
        dirty = _dirty_log(manager)
        other = manager.create("other", 0)
        # The first group's cleaned segment cannot be created: its name is taken by a folder.
        os.mkdir(os.path.join(dirty.directory, "00000000000000000000.log.cleaned"))
        cleaner = manager.start_cleaner(
            CleanerSettings(backoff_ms=50), separate_process=separate_process
        )
        _wait_for(lambda: dirty.name in cleaner.metrics.uncleanable, "the clean to fail")
        assert "Is a directory" in cleaner.metrics.uncleanable[dirty.name]
        with pytest.raises(LogDirectoryFailedError):
            append(other, [(b"k", b"refused: the directory failed")])
