"""The checker on hand-made histories: each anomaly it claims to find, found; none invented."""

from __future__ import annotations

from tests.reliability.checker import Log, check
from tests.reliability.history import Commit, History, Read, Resume, Write, value_of


def _history(*events: Write | Read | Resume | Commit) -> History:
    history = History()
    for event in events:
        history.record(event)
    return history


def _acked(producer: str, sequence: int, partition: int, offset: int, idem: bool = True) -> Write:
    return Write(producer, idem, value_of(producer, sequence), partition, True, offset)


def _log(*values: str, partition: int = 0) -> Log:
    return {partition: list(enumerate(values))}


A0, A1, A2 = (value_of("a", n) for n in range(3))


def test_a_clean_history_has_no_anomalies() -> None:
    history = _history(
        _acked("a", 0, 0, 0),
        _acked("a", 1, 0, 1),
        Resume("c", 1, 0, None),
        Read("c", 1, 0, 0, A0),
        Read("c", 1, 0, 1, A1),
        Commit("c", 0, 2),
        Resume("c", 2, 0, 2),
    )
    report = check(history, _log(A0, A1))
    assert report.valid, report.anomalies
    assert (report.acknowledged, report.stored, report.read_by_group) == (2, 2, 2)


def test_an_acknowledged_write_missing_from_the_log_is_lost() -> None:
    report = check(_history(_acked("a", 0, 0, 0), _acked("a", 1, 0, 1)), _log(A0))
    assert list(report.anomalies) == ["lost"]
    assert A1 in report.lost[0]


def test_a_different_value_at_the_acknowledged_offset_is_lost() -> None:
    report = check(_history(_acked("a", 0, 0, 0)), _log(A1))
    assert report.lost


def test_an_unacknowledged_write_may_or_may_not_be_stored() -> None:
    failed = Write("a", True, A0, 0, False, None)
    assert check(_history(failed), _log()).valid
    assert check(_history(failed), _log(A0)).valid


def test_idempotent_duplicates_are_anomalies_plain_ones_are_counted() -> None:
    report = check(_history(_acked("a", 0, 0, 0)), _log(A0, A0))
    assert list(report.anomalies) == ["duplicated"]
    plain = value_of("p", 0)
    report = check(_history(_acked("p", 0, 0, 0, idem=False)), _log(plain, plain))
    assert report.valid
    assert report.plain_duplicates == 1


def test_an_idempotent_producers_values_out_of_order_are_reordered() -> None:
    report = check(_history(_acked("a", 1, 0, 0), _acked("a", 0, 0, 1)), _log(A1, A0))
    assert list(report.anomalies) == ["reordered"]


def test_offsets_going_back_within_one_assignment_are_non_monotonic() -> None:
    history = _history(
        _acked("a", 0, 0, 0),
        _acked("a", 1, 0, 1),
        Read("c", 1, 0, 1, A1),
        Read("c", 1, 0, 0, A0),
        # Going back in a new assignment (after a rebalance) is allowed.
        Read("c", 2, 0, 0, A0),
    )
    report = check(history, _log(A0, A1))
    assert list(report.anomalies) == ["non-monotonic"]
    assert len(report.non_monotonic) == 1


def test_a_rewind_over_records_a_crash_erased_is_a_truncation_rewind_not_an_anomaly() -> None:
    # c was handed a0@0 and an unacknowledged b0@1; a power loss erased b0 (never fsynced), a1
    # was then stored at 1, and c's client, past the log end, sought back to it (KIP-320).
    b0 = value_of("b", 0)
    history = _history(
        _acked("a", 0, 0, 0),
        Read("c", 1, 0, 0, A0),
        Read("c", 1, 0, 1, b0),
        _acked("a", 1, 0, 1),
        Read("c", 1, 0, 1, A1),
    )
    report = check(history, _log(A0, A1))
    assert report.valid, report.anomalies
    assert report.truncation_rewinds == 1


def test_a_rewind_that_hands_a_stored_record_again_is_non_monotonic() -> None:
    # Going back past the erased record to a0, which the log still holds, is no truncation
    # rewind: the client was handed a stored offset twice.
    b0 = value_of("b", 0)
    history = _history(
        _acked("a", 0, 0, 0),
        Read("c", 1, 0, 0, A0),
        Read("c", 1, 0, 1, b0),
        Read("c", 1, 0, 0, A0),
    )
    report = check(history, _log(A0))
    assert list(report.anomalies) == ["non-monotonic"]
    assert report.truncation_rewinds == 0


def test_reads_passing_over_a_stored_record_within_one_assignment_skipped_it() -> None:
    history = _history(
        _acked("a", 0, 0, 0),
        _acked("a", 1, 0, 1),
        _acked("a", 2, 0, 2),
        Read("c", 1, 0, 0, A0),
        Read("c", 1, 0, 2, A2),
    )
    report = check(history, _log(A0, A1, A2))
    assert list(report.anomalies) == ["skipped"]


def test_going_on_past_an_erased_record_is_a_truncation_skip() -> None:
    # c was handed an unacknowledged b0@1; a crash erased it, a1 and a2 were stored at 1 and 2
    # before c fetched again at 2, so c never saw a1 (what a restart without a new leader
    # epoch let happen).
    b0 = value_of("b", 0)
    history = _history(
        _acked("a", 0, 0, 0),
        Read("c", 1, 0, 0, A0),
        Read("c", 1, 0, 1, b0),
        _acked("a", 1, 0, 1),
        _acked("a", 2, 0, 2),
        Read("c", 1, 0, 2, A2),
    )
    report = check(history, _log(A0, A1, A2))
    assert list(report.anomalies) == ["truncation skips"]
    assert len(report.truncation_skips) == 1 and A1 in report.truncation_skips[0]


def test_reading_on_within_the_erased_tail_is_no_truncation_skip() -> None:
    # c was handed b0@1 and b1@2 in one fetch; a crash erased both, a1 and a2 took their
    # offsets, and c's assignment ended there (the group resumed from a commit): no skip yet.
    b0, b1 = value_of("b", 0), value_of("b", 1)
    history = _history(
        _acked("a", 0, 0, 0),
        Read("c", 1, 0, 0, A0),
        Read("c", 1, 0, 1, b0),
        Read("c", 1, 0, 2, b1),
        _acked("a", 1, 0, 1),
        _acked("a", 2, 0, 2),
    )
    report = check(history, _log(A0, A1, A2))
    assert report.valid, report.anomalies


def test_a_skip_between_two_crashes_is_a_truncation_skip() -> None:
    # c was handed an unacknowledged b0@1; crash 1 erased it and a1 was stored at 1; c went
    # on (no new epoch) to b1@2, past a1; crash 2 erased b1 and a2 took 2. Both reads are of
    # erased tails, but of two different ones: c never saw a1.
    b0, b1 = value_of("b", 0), value_of("b", 1)
    history = _history(
        _acked("a", 0, 0, 0),
        Read("c", 1, 0, 0, A0),
        Read("c", 1, 0, 1, b0),
        _acked("a", 1, 0, 1),
        Read("c", 1, 0, 2, b1),
        _acked("a", 2, 0, 2),
    )
    report = check(history, _log(A0, A1, A2))
    assert list(report.anomalies) == ["truncation skips"]
    assert len(report.truncation_skips) == 1 and A1 in report.truncation_skips[0]


def test_a_resume_that_starts_past_the_committed_offset_skipped_records() -> None:
    history = _history(
        _acked("a", 0, 0, 0),
        _acked("a", 1, 0, 1),
        _acked("a", 2, 0, 2),
        Resume("c", 1, 0, 1),
        Read("c", 1, 0, 2, A2),
    )
    report = check(history, _log(A0, A1, A2))
    assert list(report.anomalies) == ["skipped"]


def test_a_resume_from_before_an_acknowledged_commit_lost_the_commit() -> None:
    history = _history(
        _acked("a", 0, 0, 0),
        _acked("a", 1, 0, 1),
        Commit("c1", 0, 2),
        Resume("c2", 1, 0, 1),
        Read("c2", 1, 0, 1, A1),
    )
    report = check(history, _log(A0, A1))
    assert list(report.anomalies) == ["lost commits"]
