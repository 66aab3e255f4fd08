"""A clean that empties the first segment of a log.

When every record of the oldest segments is superseded, the cleaner swaps in an empty segment
at their base offset. Kafka keeps such a segment until the log start offset reaches the *next*
segment's base (UnifiedLog's deleteLogStartOffsetBreachedSegments); it never moves the log
start offset, which only retention and DeleteRecords move. These tests pin that: through clean
and crash reopens the log start stays, a read from it returns the next batch, and the batches
that rebuild producer state are all still there.
"""

from __future__ import annotations

from shoal.storage import PartitionLog
from tests.storage.cleaning import append, compact_harness, read_batches, read_records, run_clean
from tests.storage.support import Harness


def _emptied_first_segment(h: Harness) -> PartitionLog:
    """A log whose first segments (offsets 0..) hold only superseded records of producer 9,
    which writes again later, so none of those batches is its last."""
    plog = h.log()
    for i in range(6):
        append(plog, [(f"old{i}".encode(), b"v")], producer=(9, 0, i))
    for i in range(6):
        append(plog, [(f"old{i}".encode(), None)])  # tombstones, removed after the horizon
    append(plog, [(b"live", b"x")], producer=(9, 0, 6))
    for i in range(10):
        append(plog, [(b"filler", str(i).encode())])
    return plog


def _clean_until_first_segment_empty(h: Harness, plog: PartitionLog) -> None:
    # The first clean stamps the tombstones' delete horizon (delete.retention.ms is 1 s here);
    # once it has passed, a second clean removes them and the first group empties.
    run_clean(plog)
    append(plog, [(b"filler", b"more")] * 4)
    for i in range(6):
        append(plog, [(b"other", str(i).encode())])
    run_clean(plog, now_ms=h.clock.now_ms() + 2000)


def _segment_bases(h: Harness, plog: PartitionLog) -> list[int]:
    names = [n for n in h.fs.listdir(plog.directory) if n.endswith(".log")]
    return sorted(int(n.removesuffix(".log")) for n in names)


def test_an_emptied_first_segment_never_moves_the_log_start_offset() -> None:
    h = compact_harness(delete_retention_ms=1000)
    plog = _emptied_first_segment(h)
    _clean_until_first_segment_empty(h, plog)
    first = read_batches(plog)[0]
    assert first.header.base_offset > 0, "the first segments should have been emptied"
    assert _segment_bases(h, plog)[0] == 0
    expected = read_records(plog)
    headers = [(b.base_offset, b.producer_id, b.base_sequence) for b in plog.headers_from(0)]
    assert (12, 9, 6) in headers  # producer 9's last batch, which rebuilds its state

    for reopen in (h.close, h.abandon, h.crash, h.close):
        reopen()
        h.open()
        plog = h.log()
        assert plog.log_start_offset == 0
        assert _segment_bases(h, plog)[0] == 0
        # A Fetch from the log start (what a consumer with auto.offset.reset=earliest sends)
        # gets the first batch that survived.
        assert plog.read(0, 1 << 20).first_offset == first.header.base_offset
        assert read_records(plog) == expected
        again = [(b.base_offset, b.producer_id, b.base_sequence) for b in plog.headers_from(0)]
        assert again == headers
    h.close()


def test_delete_records_past_an_emptied_segment_drops_it() -> None:
    h = compact_harness(delete_retention_ms=1000)
    plog = _emptied_first_segment(h)
    _clean_until_first_segment_empty(h, plog)
    bases = _segment_bases(h, plog)
    second = bases[1]
    plog.delete_records(second - 1)  # inside the emptied segment's span: it stays
    assert _segment_bases(h, plog)[0] == 0
    assert plog.log_start_offset == second - 1
    plog.delete_records(second)
    assert _segment_bases(h, plog)[0] == second
    h.close()
    h.open()
    assert h.log().log_start_offset == second
    h.close()


def test_time_retention_of_compact_delete_passes_an_emptied_segment() -> None:
    # cleanup.policy=compact,delete: retention still deletes old segments. An emptied segment
    # has no record timestamp; like Kafka (which then uses the file's modification time) it
    # ages from when the cleaner wrote it, instead of blocking retention behind it forever.
    retention_ms = 60_000
    h = compact_harness(delete_retention_ms=1000, retention_ms=retention_ms)
    plog = _emptied_first_segment(h)
    _clean_until_first_segment_empty(h, plog)
    assert plog.apply_retention() == 0
    assert plog.log_start_offset == 0 and _segment_bases(h, plog)[0] == 0
    h.clock.advance(retention_ms + 1)
    append(plog, [(b"fresh", b"v")], timestamp=h.clock.now_ms())
    assert plog.apply_retention() > 0
    # Every sealed segment was older than retention.ms, the emptied one first: only the active
    # segment (which holds the fresh record) is left, and the log starts there.
    (active_base,) = _segment_bases(h, plog)
    assert plog.log_start_offset == active_base > 0
    assert read_records(plog)[-1].key == b"fresh"
    h.close()
