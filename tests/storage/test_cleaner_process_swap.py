"""One I/O error at any step of the broker's side of a clean done in the cleaner's process:
after a restart each group of segments holds its data from before the clean or from after it,
nothing lost (the process-path twin of test_cleaner_crash.py's one-error test).

In the broker the records are rewritten in the cleaner's own process, which the
fault-injecting file system cannot reach; but the swap (adopting the process's ``.cleaned``
segment, the manifest, the renames, the directory fsyncs) and the clean-up after a broken-off
exchange run in the broker's process, on the log's file system. Here that file system is the
real one behind a switch that fails exactly one call with EIO; the process writes real
``.cleaned`` segments beside the log, and the log is reopened on the plain file system after.

Every group's swap makes the same calls, and each error costs a process start: the errors
fall on every call up to the third group's swap and on the last calls of the clean (the last
swap and the checkpoint).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from shoal.clock import SystemClock
from shoal.storage import LogManager, OsFileSystem, StorageError
from shoal.storage.cleaner_thread import CleanerSettings, LogCleaner
from tests.storage.cleaning import Seen, read_records
from tests.storage.test_cleaner_crash import CONFIG, OneErrorSwitch, _swapped_up_to
from tests.storage.test_cleaner_sigkill import _build


class RecordingSwitch(OneErrorSwitch):
    """Also keeps the path of each call since :meth:`arm`."""

    def __init__(self, fs: OsFileSystem) -> None:
        super().__init__(fs)  # type: ignore[arg-type]
        self.paths: list[str] = []

    def arm(self, cut_at: int | None) -> None:
        super().arm(cut_at)
        self.paths = []

    def _check(self, path: str) -> None:
        self.paths.append(path)
        super()._check(path)


def _clean_in_process(directory: Path, cut_at: int | None) -> list[str]:
    """One clean of the log by the cleaner's process, the broker's ``cut_at``-th file-system
    call of it failing; returns the paths of the calls the broker's side made."""
    switch = RecordingSwitch(OsFileSystem())
    manager = LogManager.open(str(directory), fs=switch, default_config=CONFIG)
    plog = manager.get("t", 0)
    assert plog is not None
    cleaner = LogCleaner(lambda: [plog], SystemClock(), CleanerSettings(), separate_process=True)
    switch.arm(cut_at)
    try:
        # The cleaner thread's loop logs what escapes a round (a header walk after the clean
        # that met the error) and goes on: so does this.
        with contextlib.suppress(StorageError) if cut_at is not None else contextlib.nullcontext():
            assert cleaner.clean_dirtiest() or cut_at is not None, "the reference did not clean"
    finally:
        cleaner.stop()  # ends the process
        calls = switch.paths
        switch.arm(None)
        with contextlib.suppress(OSError, StorageError):  # a failed directory: a restart next
            manager.abandon()
    return calls


def _records(directory: Path) -> list[Seen]:
    with LogManager.open(str(directory), default_config=CONFIG) as manager:
        plog = manager.get("t", 0)
        assert plog is not None
        return read_records(plog)


def _base(path: str) -> int:
    return int(os.path.basename(path).split(".")[0])


def _cleaned_files(directory: Path) -> list[str]:
    folder = directory / "t-0"
    return [f for f in os.listdir(folder) if f.endswith(".cleaned")]


def test_one_io_error_in_the_brokers_side_of_a_process_clean_loses_nothing(
    tmp_path: Path,
) -> None:
    reference = tmp_path / "reference"
    _build(reference)
    before = _records(reference)
    calls = _clean_in_process(reference, None)
    after = _records(reference)
    groups = list(dict.fromkeys(_base(p) for p in calls if p.endswith(".cleaned")))
    assert after != before and len(groups) >= 3
    third_group = next(
        i for i, p in enumerate(calls, 1) if p.endswith(".cleaned") and _base(p) == groups[2]
    )
    chosen = sorted(set(range(1, third_group)) | set(range(len(calls) - 12, len(calls) + 1)))
    outcomes = set()
    for cut_at in chosen:
        directory = tmp_path / f"error-{cut_at}"
        _build(directory)
        _clean_in_process(directory, cut_at)
        records = _records(directory)  # a restart: recovery finishes or forgets a swap
        assert _swapped_up_to(records, before, after) is not None, (
            f"data lost or mixed after an I/O error at the broker's call {cut_at}"
        )
        assert not _cleaned_files(directory), f".cleaned files left after call {cut_at}"
        outcomes.add("after" if records == after else "before" if records == before else "part")
    assert outcomes == {"before", "part", "after"}
