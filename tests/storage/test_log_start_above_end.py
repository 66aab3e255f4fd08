"""A log whose segments end below the log start it saved (files damaged or cut behind shoal's
back) opens empty at that start, as Kafka's LogLoader does; it used to move the start down to
the log end and hand out offsets below a start it had answered."""

from __future__ import annotations

import struct

from shoal.storage import LogConfig
from tests.storage.batches import make_batch
from tests.storage.support import DATA, Harness

SEGMENT = f"{DATA}/t-0/00000000000000000000.log"


def cut_to_first_batch(h: Harness) -> None:
    data = h.fs.read_bytes(SEGMENT)
    first = struct.unpack_from(">i", data, 8)[0] + 12
    h.fs.write_bytes(SEGMENT, data[:first])


def cut_below_a_deleted_start(start: int) -> tuple[Harness, int]:
    """Twelve records, DeleteRecords up to ``start``, the broker stopped, then the segment cut
    to its first batch behind shoal's back (the log now ends at offset 2)."""
    h = Harness(config=LogConfig(checkpoint_interval_ms=10**12))
    h.open()
    plog = h.log()
    for i in range(6):
        plog.append(make_batch(records=2, seed=i))
    plog.flush()
    answered = plog.delete_records(start)
    h.close()
    cut_to_first_batch(h)
    return h, answered


def test_a_log_cut_below_its_saved_start_opens_empty_at_the_start() -> None:
    h, answered = cut_below_a_deleted_start(10)

    h.open()
    log = h.log()
    assert (log.log_start_offset, log.log_end_offset) == (answered, answered)
    assert log.append(make_batch(records=1, seed=99)).base_offset == answered
    h.close()
    h.open()
    assert (h.log().log_start_offset, h.log().log_end_offset) == (answered, answered + 1)
    segments = [n for n in h.fs.listdir(f"{DATA}/t-0") if n.endswith(".log")]
    assert segments == [f"{answered:020d}.log"]


def test_a_log_ending_at_its_saved_start_keeps_its_segments() -> None:
    h, answered = cut_below_a_deleted_start(2)

    h.open()
    log = h.log()
    assert (log.log_start_offset, log.log_end_offset) == (answered, 2)
    assert log.append(make_batch(records=1, seed=99)).base_offset == 2
