"""Power loss at every step of a clean and its swap: each group of segments holds exactly its
data before the clean or exactly its data after, never a mix, never less.

A counting power switch (:class:`~shoal.testing.power.PowerSwitch`) sits between the log and
the fault-injecting file system and cuts the power at the N-th file-system call of the clean;
the fault layer then forgets everything not fsynced, and the log is reopened (recovery finishes
or forgets the swap). N runs over every call the clean makes, so every step is hit: writing the
cleaned segment, its fsyncs, the manifest, each removal and rename, each directory fsync.
"""

from __future__ import annotations

import contextlib
import errno
import os

import pytest

from shoal.storage import LogConfig, LogManager
from shoal.storage.cleaner import assess, read_cleaner_checkpoint
from shoal.testing.clock import FakeClock
from shoal.testing.faultfs import FaultyFileSystem
from shoal.testing.power import PowerSwitch
from tests.storage.cleaning import NOW, Seen, append, read_records, run_clean
from tests.storage.support import DATA

CONFIG = LogConfig(segment_bytes=400, checkpoint_interval_ms=10**12, compact=True, retention_ms=-1)


class CountingSwitch(PowerSwitch):
    """Cuts the power on the ``cut_at``-th call (counting from :meth:`arm`)."""

    def __init__(self, fs: FaultyFileSystem) -> None:
        super().__init__(fs)
        self.raw = fs
        self.calls = 0
        self.cut_at: int | None = None

    def arm(self, cut_at: int | None) -> None:
        self.calls = 0
        self.cut_at = cut_at

    def _check(self, path: str) -> None:
        self.calls += 1
        if self.cut_at is not None and self.calls >= self.cut_at:
            self._on = False
        super()._check(path)


def _build() -> FaultyFileSystem:
    """A compacted log with a tombstone and an idempotent producer, closed cleanly."""
    fs = FaultyFileSystem(seed=1)
    manager = LogManager.open(DATA, fs=fs, clock=FakeClock(), default_config=CONFIG)
    plog = manager.create("t", 0)
    for i in range(30):
        value = None if i == 20 else f"v{i}".encode()
        append(plog, [(f"k{i % 4}".encode(), value)], producer=(3, 0, i) if i % 7 == 0 else None)
    manager.close()
    return fs


def _clean_through(switch: CountingSwitch, cut_at: int | None) -> list[Seen]:
    manager = LogManager.open(DATA, fs=switch, clock=FakeClock(), default_config=CONFIG)
    plog = manager.get("t", 0)
    assert plog is not None
    switch.arm(cut_at)
    with contextlib.suppress(Exception):  # the power cut surfaces as OSError or StorageError
        run_clean(plog, NOW)
    seen = read_records(plog) if switch.cut_at is None else []
    with contextlib.suppress(OSError):  # after a cut even the unlock fails
        manager.abandon()
    switch.raw.unlock(os.path.join(DATA, ".lock"))
    return seen


def _recovered(fs: FaultyFileSystem) -> tuple[list[Seen], int | None, int]:
    manager = LogManager.open(DATA, fs=fs, clock=FakeClock(), default_config=CONFIG)
    try:
        plog = manager.get("t", 0)
        assert plog is not None
        checkpoint = read_cleaner_checkpoint(plog)
        return read_records(plog), checkpoint, assess(plog, checkpoint, NOW).first_uncleanable
    finally:
        manager.close()


def test_power_loss_at_every_step_of_a_clean_leaves_the_old_or_the_new_log() -> None:
    before, _, _ = _recovered(_build())
    reference = CountingSwitch(_build())
    after = _clean_through(reference, None)
    total_calls = reference.calls
    assert after != before and total_calls > 20
    outcomes = set()
    for cut_at in range(1, total_calls + 1):
        fs = _build()
        _clean_through(CountingSwitch(fs), cut_at)
        fs.crash()
        records, _checkpoint, _ = _recovered(fs)
        boundary = _swapped_up_to(records, before, after)
        assert boundary is not None, f"a mix inside a segment after a power cut at call {cut_at}"
        outcomes.add("after" if records == after else "before" if records == before else "part")
        # Cleaning again after recovery reaches the same log as an uninterrupted clean.
        reopened = _clean_through(CountingSwitch(fs), None)
        assert reopened == after, f"a second clean after a cut at call {cut_at} differs"
    assert outcomes == {"before", "part", "after"}


def _swapped_up_to(records: list[Seen], before: list[Seen], after: list[Seen]) -> int | None:
    """The offset up to which ``records`` are the cleaned log and from which the old one, if
    there is one. A clean swaps its groups of segments one at a time, each atomically, so a
    crash between two leaves the first groups cleaned and the rest as they were."""
    for boundary in range(before[-1].offset + 2):
        if records == [r for r in after if r.offset < boundary] + [
            r for r in before if r.offset >= boundary
        ]:
            return boundary
    return None


class OneErrorSwitch(CountingSwitch):
    """Fails only the ``cut_at``-th call with EIO; the calls after it go through (a single
    I/O error, not a power loss: what the clean does after the error reaches the disk)."""

    def _check(self, path: str) -> None:
        self.calls += 1
        if self.cut_at is not None and self.calls == self.cut_at:
            raise OSError(errno.EIO, "one I/O error", path)


@pytest.mark.parametrize("power_loss", [False, True])
def test_one_io_error_at_any_step_of_a_clean_loses_nothing_after_a_restart(
    power_loss: bool,
) -> None:
    before, _, _ = _recovered(_build())
    reference = CountingSwitch(_build())
    after = _clean_through(reference, None)
    for cut_at in range(1, reference.calls + 1):
        fs = _build()
        _clean_through(OneErrorSwitch(fs), cut_at)
        if power_loss:
            fs.crash()  # else a restart: everything the clean did after the error stays
        records, _checkpoint, _ = _recovered(fs)
        assert _swapped_up_to(records, before, after) is not None, (
            f"data lost or mixed after an I/O error at call {cut_at}"
        )
