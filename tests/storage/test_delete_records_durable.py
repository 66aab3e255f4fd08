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


def test_a_delete_whose_checkpoint_failed_moves_nothing() -> None:
    """The new start is saved before it is used: a DeleteRecords whose checkpoint write hit
    ENOSPC used to move the start in memory only, where the producer-state rebuild and a
    later DeleteRecords trusted it until a power loss undid it (simulation full mode, seeds
    646 and 860: an answered start undone, a retry stored twice)."""
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
    assert plog.log_start_offset == 0
    assert plog.delete_records(0) == 0

    assert plog.delete_records(target) == target  # the retry, with space again
    h.crash()
    h.open()
    assert h.log().log_start_offset == target
