"""The log cleaner's core: what one clean keeps, and what it keeps of each batch.

Each test builds a compacted log of small segments (400 bytes: a few batches each), cleans it
once or twice with :func:`shoal.storage.cleaner.clean`, and reads the log back through
``PartitionLog.read``, as Fetch does.
"""

from __future__ import annotations

from collections.abc import Iterator

from shoal.coordinator.producer_state import Duplicate
from shoal.coordinator.producers import Producers
from shoal.records.header import BatchHeader
from shoal.storage.cleaner import (
    PRODUCER_ID_EXPIRATION_MS_DEFAULT,
    ProducerLast,
    active_producers,
    assess,
    plan_clean,
    read_cleaner_checkpoint,
)
from shoal.storage.cleaner_thread import CleanerSettings, LogCleaner
from shoal.testing.cleaner_steps import cleaner_step_hook
from tests.storage.cleaning import (
    NOW,
    Seen,
    append,
    compact_harness,
    read_batches,
    read_records,
    run_clean,
)
from tests.storage.support import Harness


def _fill(h: Harness, count: int, keys: int) -> None:
    plog = h.log()
    for i in range(count):
        append(plog, [(f"k{i % keys}".encode(), f"v{i}".encode())])


def test_clean_keeps_the_latest_record_of_each_key_at_its_offset(harness: Harness) -> None:
    h = compact_harness()
    _fill(h, 40, keys=3)
    plog = h.log()
    end_before = plog.log_end_offset
    ctx = run_clean(plog)
    assert ctx is not None
    records = read_records(plog)
    cleaned = [r for r in records if r.offset < 35]  # the active segment starts at 35
    # Before the active segment each key appears once, at its latest offset below it.
    assert cleaned == [Seen(32, b"k2", b"v32"), Seen(33, b"k0", b"v33"), Seen(34, b"k1", b"v34")]
    assert [r.offset for r in records] == sorted(r.offset for r in records)
    assert plog.log_end_offset == end_before
    assert read_cleaner_checkpoint(plog) == 35
    h.close()


def test_a_fetch_from_an_offset_compacted_away_returns_the_next_batch() -> None:
    h = compact_harness()
    _fill(h, 40, keys=3)
    plog = h.log()
    run_clean(plog)
    result = plog.read(5, 1 << 20)
    first = read_batches(plog, 5)[0]
    assert result.first_offset == first.header.base_offset == 32
    h.close()


def test_cleaned_batches_keep_offsets_producer_fields_timestamps_and_headers() -> None:
    h = compact_harness()
    plog = h.log()
    append(plog, [(b"a", b"1"), (b"b", b"2"), (b"a", b"3")], timestamp=NOW - 5, producer=(7, 2, 0))
    append(plog, [(b"c", b"4")], timestamp=NOW - 4, producer=(8, 0, 0))
    for i in range(12):
        append(plog, [(b"filler", str(i).encode())])
    run_clean(plog)
    batches = read_batches(plog)
    first = batches[0].header
    assert (first.base_offset, first.last_offset_delta) == (0, 2)  # the batch's span stays
    assert (first.producer_id, first.producer_epoch, first.base_sequence) == (7, 2, 0)
    assert [(r.offset, r.key, r.timestamp, r.headers) for r in batches[0].records] == [
        (1, b"b", NOW - 5, [("h", b"x")]),
        (2, b"a", NOW - 5, [("h", b"x")]),
    ]
    assert batches[1].header.base_offset == 3 and batches[1].records[0].value == b"4"
    h.close()


def test_a_producers_last_batch_stays_as_an_empty_batch() -> None:
    h = compact_harness()
    plog = h.log()
    append(plog, [(b"k", b"old")], producer=(5, 0, 0))
    append(plog, [(b"k", b"new")], producer=(6, 0, 0))  # replaces producer 5's only record
    for i in range(12):
        append(plog, [(b"filler", str(i).encode())])
    run_clean(plog)
    first = read_batches(plog)[0]
    assert first.header.base_offset == 0 and first.header.producer_id == 5
    assert first.header.record_count == 0 and first.records == []
    assert first.header.size == 61  # header only
    h.close()


def test_an_expired_producers_last_batch_is_cleaned_like_any_other() -> None:
    """Kafka keeps a producer's last batch only while the producer is in the producer state:
    once its last batch is producer.id.expiration.ms old (1 day by default) the producer has
    expired and its emptied batch goes; one a millisecond younger stays, as does the dedup
    state the broker rebuilds from it."""
    h = compact_harness()
    plog = h.log()
    day_ms = 24 * 3600 * 1000
    append(plog, [(b"k", b"old")], timestamp=NOW - day_ms, producer=(5, 0, 0))  # expired
    append(plog, [(b"j", b"old")], timestamp=NOW - day_ms + 1, producer=(7, 0, 0))  # live
    append(plog, [(b"k", b"new"), (b"j", b"new")], timestamp=NOW, producer=(6, 0, 0))
    for i in range(12):
        append(plog, [(b"filler", str(i).encode())])
    run_clean(plog, NOW)
    heads = [
        (b.header.base_offset, b.header.producer_id, b.header.record_count)
        for b in read_batches(plog)[:2]
    ]
    assert heads == [(1, 7, 0), (2, 6, 2)]

    # The broker's idempotence state rebuilt from the cleaned log (after a restart, no
    # snapshot): the live producers' retries are still duplicates; the expired one is unknown.
    h.close()
    manager = h.open()
    state = Producers(h.fs, manager, h.clock).state("t", 0, h.log())
    assert isinstance(state.check(7, 0, 0, 0), Duplicate)
    assert isinstance(state.check(6, 0, 0, 1), Duplicate)
    assert state.get(5) is None
    h.close()


def test_a_producer_with_an_open_transaction_never_expires() -> None:
    """Kafka's isProducerExpired: only a producer with no transaction open can expire."""
    old = ProducerLast(last_data_offset=4, epoch=0, last_timestamp=NOW - 10_000)
    young = ProducerLast(last_data_offset=9, epoch=0, last_timestamp=NOW - 9_999)
    producers = {1: old, 2: old, 3: young}
    active = active_producers(producers, open_transactions={2}, now_ms=NOW, expiration_ms=10_000)
    assert active == {2: old, 3: young}


def test_tombstones_stay_until_their_delete_horizon_then_go() -> None:
    h = compact_harness(delete_retention_ms=1000)
    plog = h.log()
    append(plog, [(b"gone", b"v")])
    append(plog, [(b"gone", None)])
    append(plog, [(b"kept", b"v")])
    for i in range(12):
        append(plog, [(b"filler", str(i).encode())])
    run_clean(plog, NOW)
    tombstone = [b for b in read_batches(plog) if b.records and b.records[0].key == b"gone"]
    assert [r.value for b in tombstone for r in b.records] == [None]
    # The first clean that kept it stamped the horizon (KIP-534): attribute bit 6, and the
    # delete horizon stored as baseTimestamp; the record's own timestamp is unchanged.
    header = tombstone[0].header
    assert header.attributes & 0x40 and header.base_timestamp == NOW + 1000
    assert tombstone[0].records[0].timestamp == NOW
    append(plog, [(b"filler", b"more")] * 3)  # make the log dirty again
    for i in range(6):
        append(plog, [(b"other", str(i).encode())])
    run_clean(plog, NOW + 999)
    assert any(r.key == b"gone" for r in read_records(plog))
    append(plog, [(b"other", b"x")] * 3)
    for i in range(6):
        append(plog, [(b"other2", str(i).encode())])
    run_clean(plog, NOW + 1000)
    assert not any(r.key == b"gone" for r in read_records(plog))
    assert any(r.key == b"kept" for r in read_records(plog))
    h.close()


def test_a_small_offset_map_cleans_in_several_passes() -> None:
    # 1 KiB of map holds 37 keys (42 slots of 24 bytes at load factor 0.9).
    h = compact_harness()
    plog = h.log()
    for i in range(120):
        append(plog, [(f"key{i % 60}".encode(), str(i).encode())])
    plog.flush()
    first = run_clean(plog, map_bytes=1024)
    assert first is not None
    end = read_cleaner_checkpoint(plog)
    assert end is not None and end < assess(plog, None, NOW).first_uncleanable
    assert len(first.offset_map) == first.offset_map.capacity == 37
    while run_clean(plog, map_bytes=1024) is not None:
        pass
    records = read_records(plog)
    limit = assess(plog, None, NOW).first_uncleanable
    model = {f"key{i % 60}".encode(): i for i in range(limit)}  # offset i holds key i % 60
    assert [(r.key, r.offset) for r in records if r.offset < limit] == sorted(
        model.items(), key=lambda item: item[1]
    )
    h.close()


def test_min_compaction_lag_leaves_young_segments_dirty() -> None:
    h = compact_harness(min_compaction_lag_ms=60_000)
    plog = h.log()
    for i in range(20):
        append(plog, [(b"k", str(i).encode())], timestamp=NOW - 120_000 if i < 10 else NOW)
    plog.flush()
    cleanable = assess(plog, None, NOW)
    # The segment holding the first young record (offset 10) is where cleaning stops.
    assert cleanable.first_uncleanable <= 10
    run_clean(plog)
    young = [r for r in read_records(plog) if r.value is not None and int(r.value) >= 10]
    assert len(young) == 10
    h.close()


def test_dirty_ratio_and_max_compaction_lag() -> None:
    h = compact_harness(max_compaction_lag_ms=60_000)
    plog = h.log()
    for i in range(20):
        append(plog, [(b"k", str(i).encode())], timestamp=NOW)
    plog.flush()
    fresh = assess(plog, None, NOW)
    assert fresh.clean_bytes == 0 and fresh.dirty_ratio == 1.0 and not fresh.due_by_max_lag
    assert assess(plog, None, NOW + 60_001).due_by_max_lag
    run_clean(plog)
    after = assess(plog, read_cleaner_checkpoint(plog), NOW)
    assert after.dirty_bytes == 0 and after.dirty_ratio == 0.0
    h.close()


def test_small_cleaned_segments_merge() -> None:
    h = compact_harness()
    _fill(h, 60, keys=2)
    plog = h.log()
    before = plog.segment_count
    run_clean(plog)
    append(plog, [(b"k0", b"x")] * 10)  # roll once more so the merged ones are not active
    run_clean(plog)
    assert plog.segment_count < before
    h.close()


def test_a_cleaned_log_survives_power_loss_and_clean_reopen() -> None:
    h = compact_harness()
    _fill(h, 40, keys=3)
    plog = h.log()
    run_clean(plog)
    expected = read_records(plog)
    h.crash()
    h.open()
    assert read_records(h.log()) == expected
    h.close()
    h.open()
    assert read_records(h.log()) == expected
    h.close()


def test_planning_a_clean_walks_each_batch_header_once() -> None:
    """The plan runs on the broker's side (the cleaner thread): its transactions and its
    producers' last batches come from one walk of the log's headers, not one walk each."""
    h = compact_harness()
    plog = h.log()
    for i in range(30):
        append(plog, [(f"k{i % 4}".encode(), b"v")], producer=(7, 0, i))
    plog.flush()
    cleanable = assess(plog, None, NOW)  # the look before (its own scan, kept between looks)
    walked: list[int] = []
    headers_from = plog.headers_from

    def counting(offset: int) -> Iterator[BatchHeader]:
        for header in headers_from(offset):
            walked.append(header.base_offset)
            yield header

    plog.headers_from = counting  # type: ignore[method-assign]
    plan = plan_clean(plog, cleanable, NOW, PRODUCER_ID_EXPIRATION_MS_DEFAULT)
    assert sorted(walked) == list(range(30))
    assert plan.producers[7].last_data_offset == 29  # the one walk still found it


def test_a_segment_removed_during_a_clean_only_postpones_it() -> None:
    """DeleteRecords (or retention) removes a segment the clean is reading: the clean stops and
    is tried again, the partition is not left uncleaned until a restart."""
    h = compact_harness()
    _fill(h, 40, keys=3)
    plog = h.log()
    plog.flush()
    cleaner = LogCleaner(lambda: [plog], h.clock, CleanerSettings())
    deleted: list[int] = []

    def delete_once() -> None:  # at the clean's first step: it is reading the first segment
        if not deleted:
            deleted.append(plog.delete_records(12))

    with cleaner_step_hook(delete_once):
        assert not cleaner.clean_dirtiest()
    assert deleted == [12]
    assert plog.name not in cleaner.metrics.uncleanable
    assert cleaner.clean_dirtiest(), "the clean was not tried again"
    assert [r.offset for r in read_records(plog) if r.offset < 35] == [32, 33, 34]
