"""Burrow's evaluation rules, one window per rule, in Burrow's order of precedence."""

from __future__ import annotations

from shoal.metrics.burrow import (
    Commit,
    CommitWindows,
    Status,
    explain,
    group_status,
    partition_status,
)

NOW_MS = 1_000_000


def window(*points: tuple[int, int, int]) -> list[Commit]:
    """(offset, seconds before NOW_MS, lag) per commit, oldest first."""
    return [Commit(offset, NOW_MS - ago_s * 1000, lag) for offset, ago_s, lag in points]


def test_lag_zero_now_or_at_any_commit_is_ok() -> None:
    stalled = window((10, 50, 5), (10, 40, 5), (10, 30, 5))
    assert partition_status(stalled, current_lag=0, now_ms=NOW_MS) is Status.OK
    once_caught_up = window((10, 50, 5), (15, 40, 0), (15, 30, 9))
    assert partition_status(once_caught_up, current_lag=9, now_ms=NOW_MS) is Status.OK


def test_an_offset_going_back_is_a_rewind_before_anything_else() -> None:
    # Also stopped (its last commit is old): REWIND wins, as in Burrow.
    rewound = window((100, 500, 5), (50, 490, 60), (60, 480, 55))
    assert partition_status(rewound, current_lag=55, now_ms=NOW_MS) is Status.REWIND


def test_no_commit_for_longer_than_the_window_spans_is_a_stop() -> None:
    stopped = window((10, 100, 5), (20, 90, 4), (30, 80, 3))  # spans 20 s, silent for 80 s
    assert partition_status(stopped, current_lag=3, now_ms=NOW_MS) is Status.STOP
    recent = window((10, 30, 5), (20, 20, 4), (30, 10, 3))
    assert partition_status(recent, current_lag=3, now_ms=NOW_MS) is Status.OK


def test_commits_that_do_not_move_are_a_stall() -> None:
    stalled = window((10, 30, 5), (10, 20, 8), (10, 10, 12))
    assert partition_status(stalled, current_lag=12, now_ms=NOW_MS) is Status.STALL


def test_moving_while_the_lag_never_shrinks_is_a_warning() -> None:
    slow = window((10, 30, 5), (20, 20, 5), (30, 10, 8))
    assert partition_status(slow, current_lag=8, now_ms=NOW_MS) is Status.WARNING
    catching_up = window((10, 30, 9), (20, 20, 5), (30, 10, 8))
    assert partition_status(catching_up, current_lag=8, now_ms=NOW_MS) is Status.OK


def test_a_group_is_its_worst_partition_with_partition_errors_as_error() -> None:
    assert group_status([]) is Status.OK
    assert group_status([Status.OK, Status.WARNING]) is Status.WARNING
    for error in (Status.STOP, Status.STALL, Status.REWIND):
        assert group_status([Status.OK, error, Status.WARNING]) is Status.ERROR


def test_windows_keep_the_last_commits_fold_close_ones_and_forget_dropped_keys() -> None:
    windows = CommitWindows(size=3, min_distance_ms=1000)
    tokens = [object() for _ in range(6)]
    for i, token in enumerate(tokens[:5]):
        windows.record("k", token, Commit(i, i * 2000, 1))
    seen = windows.record("k", tokens[4], Commit(99, 99_000, 1))  # same commit: not added
    assert [c.offset for c in seen] == [2, 3, 4]
    folded = windows.record("k", tokens[5], Commit(5, 8500, 1))  # 500 ms after the last
    assert [c.offset for c in folded] == [2, 3, 5]
    windows.keep_only(set())
    assert list(windows.record("k", tokens[5], Commit(7, 20_000, 1))) == [Commit(7, 20_000, 1)]


def test_each_verdict_is_explained_with_the_figures_behind_it() -> None:
    """The console's tooltip: what made the verdict, in words and numbers."""
    cases = [
        (window((100, 500, 5), (50, 490, 60)), 60, "went back from 100 to 50"),
        (window((10, 100, 5), (20, 90, 4), (30, 80, 3)), 3, "no commit for 80 s"),
        (window((10, 30, 5), (10, 20, 8), (10, 10, 12)), 12, "offset 10 in each of its last 3"),
        (window((10, 30, 5), (20, 20, 5), (30, 10, 8)), 8, "never went down over its last 3"),
        (window((10, 30, 9), (20, 20, 5)), 0, "caught up"),
    ]
    for commits, lag, expected in cases:
        status = partition_status(commits, current_lag=lag, now_ms=NOW_MS)
        assert expected in explain(status, commits, lag, NOW_MS), (status, expected)
