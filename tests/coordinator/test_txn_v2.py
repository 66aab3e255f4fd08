"""Transactions V2 (KIP-890 part 2) in the pure coordinator, with a fake clock: the epoch bump
of every EndTxn v5, Kafka's retry/fencing table for it, the implicit add's client transaction
version, epoch exhaustion (a new producer id after the markers of the last epoch), and the
``__transaction_state`` record that carries all of it (old records still read)."""

from __future__ import annotations

import itertools
import json
import struct
from pathlib import Path

import pytest

from shoal.coordinator.producer_state import EPOCH_MAX
from shoal.coordinator.txn_coordinator import TransactionCoordinator, TxnMetadata
from shoal.coordinator.txn_log import TxnLog, _from_value, legacy_json_value, txn_key, txn_value
from shoal.coordinator.txn_log_format import decode_value
from shoal.coordinator.txn_state import TxnState
from shoal.protocol import ErrorCode
from shoal.records import SimpleRecord, build_batch
from shoal.storage import LogConfig, LogManager
from shoal.testing.clock import FakeClock

E = ErrorCode
TIMEOUT_MS = 60_000
TP = ("orders", 0)
V2 = 2


def make() -> TransactionCoordinator:
    ids = itertools.count(1000)
    return TransactionCoordinator(FakeClock(), lambda: next(ids))


def begin(c: TransactionCoordinator, pid: int, epoch: int, txn: str = "t") -> None:
    assert c.add_partitions(txn, pid, epoch, [TP], V2) is E.NONE


def end(c: TransactionCoordinator, pid: int, epoch: int, commit: bool) -> tuple[E, int, int]:
    """EndTxn v5 with its markers written at once: (error, producer id, epoch answered)."""
    result = c.end_txn("t", pid, epoch, commit, bump_epoch=True)
    if result.work is not None:
        c.complete(result.work)
        meta = c.get("t")
        assert meta is not None
        # The answer decided with the end is where the metadata is once the markers are in.
        assert (result.producer_id, result.producer_epoch) == (
            meta.producer_id,
            meta.producer_epoch,
        )
    return result.error, result.producer_id, result.producer_epoch


def test_every_end_bumps_the_epoch_and_the_markers_carry_the_new_one() -> None:
    c = make()
    init = c.init_producer_id("t", TIMEOUT_MS)
    pid = init.producer_id
    begin(c, pid, 0)
    meta = c.get("t")
    assert meta is not None and meta.client_transaction_version == V2
    work = c.end_txn("t", pid, 0, True, bump_epoch=True).work
    assert work is not None and (work.producer_epoch, work.commit) == (1, True)
    c.complete(work)
    begin(c, pid, 1)
    assert end(c, pid, 1, commit=False) == (E.NONE, pid, 2)
    assert c.get("t").state is TxnState.COMPLETE_ABORT  # type: ignore[union-attr]


def test_the_classic_end_keeps_the_epoch() -> None:
    c = make()
    pid = c.init_producer_id("t", TIMEOUT_MS).producer_id
    assert c.add_partitions("t", pid, 0, [TP]) is E.NONE
    assert c.get("t").client_transaction_version == 0  # type: ignore[union-attr]
    work = c.end_txn("t", pid, 0, True).work
    assert work is not None and work.producer_epoch == 0


@pytest.mark.parametrize(
    ("state", "commit", "epoch_offset", "expected"),
    [
        # Kafka's TransactionCoordinator table for Empty and Complete* (offset -1: a retry).
        ("empty", False, -1, E.PRODUCER_FENCED),
        ("empty", False, 0, "bump"),
        ("empty", True, -1, E.PRODUCER_FENCED),
        ("empty", True, 0, E.INVALID_TXN_STATE),
        ("abort", False, -1, E.NONE),
        ("abort", False, 0, "bump"),
        ("abort", True, -1, E.INVALID_TXN_STATE),
        ("abort", True, 0, E.INVALID_TXN_STATE),
        ("commit", False, -1, E.INVALID_TXN_STATE),
        ("commit", False, 0, "bump"),
        ("commit", True, -1, E.NONE),
        ("commit", True, 0, E.INVALID_TXN_STATE),
        # Anything else than the current epoch or one behind is fenced.
        ("commit", True, -2, E.PRODUCER_FENCED),
        ("commit", True, 1, E.PRODUCER_FENCED),
    ],
)
def test_the_v2_table_for_empty_and_complete_states(
    state: str, commit: bool, epoch_offset: int, expected: E | str
) -> None:
    c = make()
    pid = c.init_producer_id("t", TIMEOUT_MS).producer_id
    c.init_producer_id("t", TIMEOUT_MS)  # epoch 1: a retry of epoch 0 is then possible
    epoch = 1
    if state != "empty":
        begin(c, pid, epoch)
        assert end(c, pid, epoch, commit=state == "commit")[0] is E.NONE
        epoch = 2
    error, answered_pid, answered_epoch = end(c, pid, epoch + epoch_offset, commit)
    if expected == "bump":
        assert (error, answered_pid, answered_epoch) == (E.NONE, pid, epoch + 1)
        assert c.get("t").state is TxnState.COMPLETE_ABORT  # type: ignore[union-attr]
    elif expected is E.NONE:
        assert (error, answered_pid, answered_epoch) == (E.NONE, pid, epoch)
    else:
        assert (error, answered_pid, answered_epoch) == (expected, -1, -1)


def test_a_retry_while_the_markers_are_written_is_concurrent() -> None:
    c = make()
    pid = c.init_producer_id("t", TIMEOUT_MS).producer_id
    begin(c, pid, 0)
    work = c.end_txn("t", pid, 0, True, bump_epoch=True).work
    assert work is not None
    assert c.end_txn("t", pid, 0, True, bump_epoch=True).error is E.CONCURRENT_TRANSACTIONS
    assert c.end_txn("t", pid, 0, False, bump_epoch=True).error is E.INVALID_TXN_STATE
    assert c.end_txn("t", pid, 1, True, bump_epoch=True).error is E.PRODUCER_FENCED


def test_the_old_epoch_cannot_add_after_the_bump() -> None:
    c = make()
    pid = c.init_producer_id("t", TIMEOUT_MS).producer_id
    begin(c, pid, 0)
    end(c, pid, 0, commit=True)
    assert c.add_partitions("t", pid, 0, [TP], V2) is E.PRODUCER_FENCED
    assert c.verify_produce(pid, 0, TP) is E.INVALID_PRODUCER_EPOCH


def test_the_exhausted_epoch_ends_on_a_new_producer_id() -> None:
    """As Kafka: at epoch EPOCH_MAX - 1 the markers take EPOCH_MAX and the producer goes on
    with a new id at epoch 0; a retry from the old id's last epoch is answered the same."""
    c = make()
    pid = c.init_producer_id("t", TIMEOUT_MS).producer_id
    meta = c.get("t")
    assert meta is not None
    meta.producer_epoch = EPOCH_MAX - 1
    begin(c, pid, EPOCH_MAX - 1)
    work = c.end_txn("t", pid, EPOCH_MAX - 1, True, bump_epoch=True).work
    assert work is not None and (work.producer_id, work.producer_epoch) == (pid, EPOCH_MAX)
    assert meta.next_producer_id not in (-1, pid)
    c.complete(work)
    new_pid = meta.producer_id
    assert new_pid != pid and meta.producer_epoch == 0
    assert (meta.previous_producer_id, meta.next_producer_id) == (pid, -1)
    assert c.by_producer_id(pid) is None and c.by_producer_id(new_pid) is meta
    retried = c.end_txn("t", pid, EPOCH_MAX - 1, True, bump_epoch=True)
    assert (retried.error, retried.producer_id, retried.producer_epoch) == (E.NONE, new_pid, 0)
    init_retry = c.init_producer_id("t", TIMEOUT_MS, pid, EPOCH_MAX - 1)
    assert (init_retry.error, init_retry.producer_id, init_retry.producer_epoch) == (
        E.NONE,
        new_pid,
        0,
    )
    begin(c, new_pid, 0)
    assert end(c, new_pid, 0, commit=True) == (E.NONE, new_pid, 1)


@pytest.mark.parametrize("fenced_by", ["init", "timeout"])
def test_a_v2_transaction_fenced_on_the_exhausted_epoch_rotates_after_its_markers(
    fenced_by: str,
) -> None:
    """As Kafka's coordinator: the abort's markers carry EPOCH_MAX, then the id rotates; the
    fenced client's retry gets the new id at 0, a new instance the next epoch."""
    ids = itertools.count(1000)
    clock = FakeClock()
    c = TransactionCoordinator(clock, lambda: next(ids))
    pid = c.init_producer_id("t", TIMEOUT_MS).producer_id
    meta = c.get("t")
    assert meta is not None
    meta.producer_epoch = EPOCH_MAX - 1
    begin(c, pid, EPOCH_MAX - 1)
    if fenced_by == "init":
        result = c.init_producer_id("t", TIMEOUT_MS)
        assert result.error is E.CONCURRENT_TRANSACTIONS
        work = result.work
    else:
        clock.advance(TIMEOUT_MS + 1)
        (work,) = c.abort_timed_out()
    assert work is not None and (work.producer_id, work.producer_epoch) == (pid, EPOCH_MAX)
    c.complete(work)
    new_pid = meta.producer_id
    assert (new_pid != pid, meta.producer_epoch, meta.previous_producer_id) == (True, 0, pid)
    retry = c.init_producer_id("t", TIMEOUT_MS, pid, EPOCH_MAX - 1)
    assert (retry.error, retry.producer_id, retry.producer_epoch) == (E.NONE, new_pid, 0)
    fresh = c.init_producer_id("t", TIMEOUT_MS)
    assert (fresh.error, fresh.producer_id, fresh.producer_epoch) == (E.NONE, new_pid, 1)


def test_a_classic_transaction_fenced_on_the_exhausted_epoch_rotates_at_the_next_init() -> None:
    c = make()
    pid = c.init_producer_id("t", TIMEOUT_MS).producer_id
    meta = c.get("t")
    assert meta is not None
    meta.producer_epoch = EPOCH_MAX - 1
    assert c.add_partitions("t", pid, EPOCH_MAX - 1, [TP]) is E.NONE
    work = c.init_producer_id("t", TIMEOUT_MS).work
    assert work is not None and work.producer_epoch == EPOCH_MAX
    c.complete(work)
    assert (meta.producer_id, meta.producer_epoch) == (pid, EPOCH_MAX)
    again = c.init_producer_id("t", TIMEOUT_MS)
    assert again.producer_id != pid and again.producer_epoch == 0


def v2_meta() -> TxnMetadata:
    return TxnMetadata(
        "t", 7, 3, TIMEOUT_MS, TxnState.PREPARE_COMMIT, 2, {TP, ("orders", 3), ("b", 0)}, 10, 20,
        client_transaction_version=2, previous_producer_id=5, next_producer_id=9,
    )  # fmt: skip


def test_the_state_record_is_kafkas_with_the_v2_fields() -> None:
    meta = v2_meta()
    key, value = txn_key("t"), txn_value(meta)
    assert key == b"\x00\x00\x00\x01t"  # TransactionLogKey v0
    assert value is not None and value[:2] == b"\x00\x01"  # TransactionLogValue v1
    decoded = decode_value(value)
    assert (decoded.previous_producer_id, decoded.next_producer_id) == (5, 9)
    assert decoded.client_transaction_version == 2
    assert decoded.state is TxnState.PREPARE_COMMIT and value[16] == 2  # Kafka's state id
    assert _from_value("t", decoded) == meta
    # Defaults are left out, as Kafka's writer leaves them: the tagged section is then empty.
    empty = TxnMetadata("t", 7, 0, TIMEOUT_MS)
    plain = txn_value(empty)
    assert plain is not None and plain[-1] == 0
    assert plain[17] == 0  # an Empty transaction's partitions: null
    assert _from_value("t", decode_value(plain)) == empty


def test_a_kafka_v0_value_reads() -> None:
    """The non-flexible form Kafka writes while transaction.version is 0."""
    value = (
        struct.pack(">hqhib", 0, 7, 3, TIMEOUT_MS, 1)
        + struct.pack(">i", 1) + struct.pack(">h", 6) + b"orders" + struct.pack(">ii", 1, 0)
        + struct.pack(">qq", 20, 10)
    )  # fmt: skip
    decoded = decode_value(value)
    assert (decoded.state, decoded.partitions) == (TxnState.ONGOING, frozenset({TP}))
    assert (decoded.last_update_ms, decoded.start_ms, decoded.next_producer_id) == (20, 10, -1)


def test_old_json_records_still_load(tmp_path: Path) -> None:
    """A log shoal wrote before it used Kafka's format, then a newer record of the same id."""
    logs = LogManager.open(str(tmp_path))
    plog = logs.create("__transaction_state", 0, LogConfig())
    old = v2_meta()
    legacy = legacy_json_value(old)
    assert legacy is not None
    doc = json.loads(legacy)
    for key in ("tv", "prev_pid", "next_pid"):  # written before transactions V2
        del doc[key]
    records = [
        SimpleRecord(json.dumps({"id": "t", "k": "txn"}).encode(), json.dumps(doc).encode()),
        SimpleRecord(json.dumps({"id": "u", "k": "txn"}).encode(), legacy),
        SimpleRecord(txn_key("u"), txn_value(TxnMetadata("u", 8, 4, TIMEOUT_MS))),
    ]
    plog.append(build_batch(records))
    state = TxnLog(plog, lambda batch: plog.append(batch), lambda: 0).replay()
    assert state["t"].producer_id == 7 and state["t"].client_transaction_version == 0
    assert (state["t"].previous_producer_id, state["t"].next_producer_id) == (-1, -1)
    assert (state["u"].producer_id, state["u"].producer_epoch) == (8, 4)
    logs.close()


# -- review findings: fencing that must never hand two instances the same id and epoch -------


def test_the_end_answer_is_decided_with_the_end_not_read_back_after_the_markers() -> None:
    """A new instance's InitProducerId between the markers and the EndTxn v5 answer bumps the
    epoch; the old instance must still be answered the epoch its end made, not the new one's."""
    c = make()
    pid = c.init_producer_id("t", TIMEOUT_MS).producer_id
    begin(c, pid, 0)
    result = c.end_txn("t", pid, 0, True, bump_epoch=True)
    assert result.work is not None
    c.complete(result.work)
    newcomer = c.init_producer_id("t", TIMEOUT_MS)
    assert (newcomer.error, newcomer.producer_id, newcomer.producer_epoch) == (E.NONE, pid, 2)
    assert (result.error, result.producer_id, result.producer_epoch) == (E.NONE, pid, 1)


def test_a_rotation_asked_by_a_new_instance_fences_the_old_id_at_its_last_epoch() -> None:
    """Kafka's prepareProducerIdRotation keeps the old epoch as the last one only when the
    request named the producer: a zombie presenting the old id is then fenced, not handed the
    new instance's id and epoch."""
    c = make()
    old = c.init_producer_id("t", TIMEOUT_MS)
    meta = c.get("t")
    assert meta is not None
    meta.producer_epoch = EPOCH_MAX - 1
    newcomer = c.init_producer_id("t", TIMEOUT_MS)
    assert newcomer.error is E.NONE and newcomer.producer_id != old.producer_id
    zombie = c.init_producer_id("t", TIMEOUT_MS, old.producer_id, EPOCH_MAX - 1)
    assert zombie.error is E.PRODUCER_FENCED


def test_a_rotation_asked_by_the_producer_itself_answers_its_retry() -> None:
    c = make()
    old = c.init_producer_id("t", TIMEOUT_MS)
    meta = c.get("t")
    assert meta is not None
    meta.producer_epoch = EPOCH_MAX - 1
    first = c.init_producer_id("t", TIMEOUT_MS, old.producer_id, EPOCH_MAX - 1)
    assert first.error is E.NONE and first.producer_id != old.producer_id
    retry = c.init_producer_id("t", TIMEOUT_MS, old.producer_id, EPOCH_MAX - 1)
    assert (retry.error, retry.producer_id, retry.producer_epoch) == (E.NONE, first.producer_id, 0)


def test_a_fenced_instance_is_not_handed_the_epoch_that_fenced_it() -> None:
    """Kafka's prepareFenceProducerEpoch clears the last epoch: the fenced instance's
    InitProducerId with its old epoch is PRODUCER_FENCED (not a retry of a bump)."""
    c = make()
    pid = c.init_producer_id("t", TIMEOUT_MS).producer_id
    begin(c, pid, 0)
    fencing = c.init_producer_id("t", TIMEOUT_MS)
    assert fencing.error is E.CONCURRENT_TRANSACTIONS and fencing.work is not None
    c.complete(fencing.work)
    zombie = c.init_producer_id("t", TIMEOUT_MS, pid, 0)
    assert zombie.error is E.PRODUCER_FENCED
    newcomer = c.init_producer_id("t", TIMEOUT_MS)
    assert (newcomer.error, newcomer.producer_id, newcomer.producer_epoch) == (E.NONE, pid, 2)


def test_no_epoch_past_the_last_is_ever_handed_out_or_logged() -> None:
    """A transaction opened the classic way and fenced by its timeout on the exhausted epoch
    ends on EPOCH_MAX: an EndTxn v5 retry is then fenced (InitProducerId rotates the id) and
    the state stays loggable."""
    clock = FakeClock()
    ids = itertools.count(1000)
    c = TransactionCoordinator(clock, lambda: next(ids))
    pid = c.init_producer_id("t", TIMEOUT_MS).producer_id
    meta = c.get("t")
    assert meta is not None
    meta.producer_epoch = EPOCH_MAX - 1
    assert c.add_partitions("t", pid, EPOCH_MAX - 1, [TP]) is E.NONE  # classic: version 0
    clock.advance(TIMEOUT_MS + 1)
    for work in c.abort_timed_out():
        c.complete(work)
    assert meta.producer_epoch == EPOCH_MAX
    retry = c.end_txn("t", pid, EPOCH_MAX - 1, False, bump_epoch=True)
    assert retry.error is E.PRODUCER_FENCED
    assert c.end_txn("t", pid, EPOCH_MAX, True, bump_epoch=True).error is not E.NONE
    assert meta.producer_epoch == EPOCH_MAX
    txn_value(meta)  # still encodable: the epoch fits the record's int16
    rotated = c.init_producer_id("t", TIMEOUT_MS)
    assert rotated.error is E.NONE and (rotated.producer_id, rotated.producer_epoch) != (pid, 0)
