"""A DeleteRecords answered is never undone by a power loss (found by tests/simulation).

The records below the new log start were not fsynced yet (acks=1, or before the flusher's
round): the power loss erased them, recovery found the log ending below the saved start and
moved the start back down to the log end.
"""

from __future__ import annotations

import errno

import pytest

from shoal.storage import FlushPolicy, LogConfig, StorageError
from tests.storage.batches import make_batch
from tests.storage.support import Harness

BATCHES: int = 6


@pytest.mark.parametrize("keep_unsynced", [False, True])
def test_the_log_start_survives_a_power_loss_over_unsynced_records(keep_unsynced: bool) -> None:
    h = Harness(config=LogConfig(flush_policy=FlushPolicy.NONE, checkpoint_interval_ms=10**12))
    h.open()
    plog = h.log()
    for i in range(BATCHES):
        plog.append(make_batch(records=2, seed=i))
    end = plog.log_end_offset
    assert plog.flushed_offset < end  # nothing fsynced yet: the case that lost the start

    answered = plog.delete_records(end)

    h.crash(keep_unsynced=keep_unsynced)
    h.open()
    recovered = h.log()
    assert answered == end
    assert recovered.log_start_offset == end
    assert recovered.log_end_offset == end


def test_a_start_whose_checkpoint_failed_is_saved_before_a_later_answer() -> None:
    """A DeleteRecords whose checkpoint write hit ENOSPC moved the start in memory only; a
    later DeleteRecords below it answered that start without saving it (seed 646 of the
    simulation's full mode), and a power loss brought the start back under the answer."""
    h = Harness(config=LogConfig(checkpoint_interval_ms=10**12))
    h.open()
    plog = h.log()
    for i in range(BATCHES):
        plog.append(make_batch(records=2, seed=i))
    plog.flush()
    target = plog.log_end_offset - 2
    h.fs.fail_next_write(errno.ENOSPC, after_bytes=0)
    with pytest.raises(StorageError):
        plog.delete_records(target)

    answered = plog.delete_records(0)

    h.crash()
    h.open()
    assert answered == target
    assert h.log().log_start_offset == target
