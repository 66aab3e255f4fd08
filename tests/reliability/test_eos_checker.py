"""The exactly-once checker (eos_checker.py) on hand-made outputs: each anomaly it claims to
find, found; none invented."""

from __future__ import annotations

from pathlib import Path

from tests.reliability.eos_checker import Output, check_copy

SOURCE = [("a", "a:0"), ("b", "b:0"), ("a", "a:1"), ("b", "b:1")]


def _out(*values: str) -> list[Output]:
    return [Output(0, v.partition(":")[0], v) for v in values]


def _events(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "events.txt"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_an_exact_copy_in_key_order_is_valid(tmp_path: Path) -> None:
    # Keys interleave differently than in the source: only each key's order counts.
    output = _out("b:0|1.0", "a:0|1.0", "b:1|1.1", "a:1|1.1")
    events = _events(tmp_path, "P 1.0 2", "C 1.0", "P 1.1 2", "C 1.1")
    report = check_copy("raw", SOURCE, output, events)
    assert report.valid, report.anomalies
    assert report.transactions == {"committed": 2, "aborted": 0, "unknown": 0}


def test_lost_duplicated_reordered_and_unexpected_records_are_found() -> None:
    output = _out("a:1|fw", "a:0|fw", "b:0|fw", "b:0|fw", "c:0|fw")
    report = check_copy("framework", SOURCE, output)
    assert report.anomalies == {
        "duplicates": ["b:0 copied 2 times"],
        "missing": ["b:1"],
        "unexpected": ["c:0"],
        "reordered": ["key a: ['a:1', 'a:0'] where ['a:0', 'a:1']"],
    }


def test_aborted_uncommitted_partial_and_lost_transactions_are_found(tmp_path: Path) -> None:
    # 1.0 aborted but visible; 1.1 never asked to commit; 1.2 (unknown outcome) half visible;
    # 1.3 committed with 2 records, 1 visible.
    output = _out("a:0|1.0", "b:0|1.1", "a:1|1.2", "b:1|1.3")
    events = _events(tmp_path, "A 1.0", "P 1.2 2", "P 1.3 2", "C 1.3")
    report = check_copy("raw", SOURCE, output, events)
    assert set(report.anomalies) == {
        "aborted reads",
        "uncommitted reads",
        "partial",
        "lost commits",
    }
    assert report.transactions == {"committed": 1, "aborted": 1, "unknown": 1}
