"""The cleaner and transactions (Kafka's CleanedTransactionMetadata rules): one log holding
committed, aborted and open transactions on the same keys, cleaned three times.

What a read_committed consumer sees is computed here from the log alone: a transactional
batch counts once its producer's next marker commits it, and reading stops at the first batch
of a transaction with no marker yet (the last stable offset).
"""

from __future__ import annotations

from collections.abc import Iterator

from shoal.records import DecodedBatch
from shoal.records.builder import build_batch
from shoal.records.control import ControlType, build_control_batch, control_type
from shoal.records.header import BatchHeader
from shoal.records.record import SimpleRecord
from shoal.storage import PartitionLog
from shoal.storage.cleaner_txn import OpenTransactionScan
from tests.storage.cleaning import NOW, append, compact_harness, read_batches, run_clean

RETENTION_MS = 1000
COMMITTED, ABORTER, OPEN = 11, 12, 13
"""Producer ids: one commits, one aborts then commits, one leaves its transaction open."""


def _txn(plog: PartitionLog, pid: int, pairs: list[tuple[bytes, bytes]], seq: int = 0) -> int:
    batch = build_batch(
        [SimpleRecord(k, v, timestamp=NOW) for k, v in pairs],
        producer_id=pid,
        producer_epoch=0,
        base_sequence=seq,
        transactional=True,
    )
    return plog.append(batch).base_offset


def _marker(plog: PartitionLog, pid: int, *, commit: bool) -> int:
    batch = build_control_batch(pid, 0, commit=commit, coordinator_epoch=0, timestamp=NOW)
    return plog.append(batch).base_offset


def _fill(plog: PartitionLog, tag: str, count: int = 12) -> None:
    for i in range(count):
        append(plog, [(f"f{i % 3}".encode(), f"{tag}{i}".encode())])


def _read_committed(batches: list[DecodedBatch]) -> tuple[dict[bytes, bytes | None], int]:
    """Latest value per key a read_committed consumer ends with, and where it stopped."""
    outcome: dict[tuple[int, int], bool] = {}  # (pid, first offset) -> commits
    first: dict[int, int] = {}
    for b in batches:
        h = b.header
        if not h.is_transactional:
            continue
        if h.is_control:
            commit = control_type(b.records[0]) == ControlType.COMMIT
            if h.producer_id in first:
                outcome[(h.producer_id, first.pop(h.producer_id))] = commit
        else:
            first.setdefault(h.producer_id, h.base_offset)
    lso = min(first.values(), default=batches[-1].header.last_offset + 1)
    latest: dict[bytes, bytes | None] = {}
    txn_of: dict[int, int] = {}
    for b in batches:
        h = b.header
        if h.base_offset >= lso:
            break
        if h.is_control:
            txn_of.pop(h.producer_id, None)
            continue
        if h.is_transactional:
            start = txn_of.setdefault(h.producer_id, h.base_offset)
            if not outcome[(h.producer_id, start)]:
                continue
        for r in b.records:
            assert r.key is not None
            latest[r.key] = r.value
    return latest, lso


def _markers(plog: PartitionLog) -> dict[int, tuple[int, bool]]:
    """Marker offset -> (producer id, has a delete horizon)."""
    return {
        b.header.base_offset: (b.header.producer_id, bool(b.header.attributes & 0x40))
        for b in read_batches(plog)
        if b.header.is_control
    }


def _keys_below(plog: PartitionLog, end: int) -> list[tuple[bytes | None, bytes | None]]:
    return [
        (r.key, r.value)
        for b in read_batches(plog)
        for r in b.records
        if r.offset < end and not b.header.is_control
    ]


def test_clean_respects_committed_aborted_and_open_transactions() -> None:
    h = compact_harness(delete_retention_ms=RETENTION_MS)
    plog = h.log()
    append(plog, [(b"a", b"a0"), (b"b", b"b0")])
    _txn(plog, COMMITTED, [(b"a", b"a1"), (b"b", b"b1")])
    commit_marker = _marker(plog, COMMITTED, commit=True)
    _txn(plog, ABORTER, [(b"a", b"aborted")])
    abort_marker = _marker(plog, ABORTER, commit=False)
    _txn(plog, ABORTER, [(b"z", b"z1")], seq=1)
    _marker(plog, ABORTER, commit=True)
    _fill(plog, "x")
    open_first = _txn(plog, OPEN, [(b"b", b"open")])
    _fill(plog, "y")
    before = read_batches(plog)
    expected, lso = _read_committed(before)
    assert lso == open_first
    assert expected[b"a"] == b"a1" and expected[b"b"] == b"b1" and expected[b"z"] == b"z1"

    assert run_clean(plog, NOW) is not None
    after = read_batches(plog)
    assert _read_committed(after) == (expected, lso)
    # Below the LSO: only the committed latest values; the aborted record is gone.
    below = _keys_below(plog, lso)
    assert (b"a", b"a1") in below and (b"b", b"b1") in below
    assert not {(b"a", b"a0"), (b"b", b"b0"), (b"a", b"aborted")} & set(below)
    # Nothing at or past the LSO was touched (same batches, byte for byte).
    assert [b.header for b in after if b.header.last_offset >= lso] == [
        b.header for b in before if b.header.last_offset >= lso
    ]
    assert [b.records for b in after if b.header.last_offset >= lso] == [
        b.records for b in before if b.header.last_offset >= lso
    ]
    # Both markers stay: the committed one's records remain, and the aborted batch was there
    # when this clean began.
    markers = _markers(plog)
    assert markers[commit_marker] == (COMMITTED, False)
    assert markers[abort_marker] == (ABORTER, False)

    # The open transaction commits: its value becomes the latest, and the log is cleanable
    # past where it began.
    _marker(plog, OPEN, commit=True)
    _fill(plog, "z")
    expected, _ = _read_committed(read_batches(plog))
    assert expected[b"b"] == b"open"
    assert run_clean(plog, NOW + 1) is not None
    assert _read_committed(read_batches(plog))[0] == expected
    assert (b"b", b"b1") not in _keys_below(plog, plog.log_end_offset)
    markers = _markers(plog)
    assert markers[commit_marker] == (COMMITTED, False)  # a1 is still there
    assert markers[abort_marker] == (ABORTER, True)  # nothing of it left: horizon stamped

    _fill(plog, "w")
    run_clean(plog, NOW + 1 + RETENTION_MS - 1)
    assert abort_marker in _markers(plog)  # not before its horizon
    _fill(plog, "v")
    run_clean(plog, NOW + 1 + RETENTION_MS)
    markers = _markers(plog)
    assert abort_marker not in markers
    assert commit_marker in markers
    final, _ = _read_committed(read_batches(plog))
    assert {k: final[k] for k in (b"a", b"b", b"z")} == {b"a": b"a1", b"b": b"open", b"z": b"z1"}
    h.close()


def test_the_open_transaction_scan_walks_only_what_was_appended_since_the_last_look() -> None:
    h = compact_harness()
    plog = h.log()
    walked: list[int] = []

    def headers_from(offset: int) -> Iterator[BatchHeader]:
        for header in plog.headers_from(offset):
            walked.append(header.base_offset)
            yield header

    scan = OpenTransactionScan()
    _fill(plog, "a", 6)
    first = _txn(plog, OPEN, [(b"t", b"1")])
    assert scan.first_unstable_offset(headers_from, 0) == first
    assert len(walked) == 7
    walked.clear()
    _marker(plog, OPEN, commit=True)
    second = _txn(plog, COMMITTED, [(b"u", b"1")])
    # The next look reads the two new batches only: the marker closed the first transaction.
    assert scan.first_unstable_offset(headers_from, 0) == second
    assert len(walked) == 2
    walked.clear()
    assert scan.first_unstable_offset(headers_from, 0) == second
    assert walked == []
    # Another start (a clean moved the first dirty offset) walks again from there.
    assert scan.first_unstable_offset(headers_from, second) == second
    assert walked == [second]
    h.close()
