"""The circuit breaker's state machine, driven by a FakeClock (no test waits for real time)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.app.resilience.breaker import (
    WINDOW_BUCKETS,
    Breaker,
    BreakerRegistry,
    BreakerState,
    State,
)
from shoal.testing.clock import FakeClock


class Boom(Exception):
    pass


def make(**policy: Any) -> tuple[BreakerState, FakeClock]:
    clock = FakeClock()
    return BreakerState(Breaker(**policy), clock), clock


def fail(breaker: BreakerState, times: int = 1, exc: BaseException | None = None) -> None:
    for _ in range(times):
        breaker.record_failure(exc or Boom())


def trip(breaker: BreakerState) -> None:
    fail(breaker, breaker.policy.failures)
    assert breaker.state == "open"


def test_opens_after_failures_in_the_window_and_refuses_calls() -> None:
    breaker, _ = make(failures=3)
    fail(breaker, 2)
    assert breaker.state == "closed" and breaker.allow()
    fail(breaker)
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.opened_total == 1


def test_successes_do_not_cancel_failures_under_the_count_rule() -> None:
    breaker, _ = make(failures=3)
    for _ in range(3):
        breaker.record_success()
        fail(breaker)
        breaker.record_success()
    assert breaker.state == "open"


def test_failures_older_than_the_window_are_forgotten() -> None:
    breaker, clock = make(failures=3, window_s=10)
    fail(breaker, 2)
    clock.advance(9_999)
    assert breaker.failures_in_window == 2  # still inside the window
    clock.advance(1)
    assert breaker.failures_in_window == 0
    fail(breaker)
    assert breaker.state == "closed"  # one failure in the window, not three


def test_the_window_slides_rather_than_resetting() -> None:
    breaker, clock = make(failures=3, window_s=10)
    fail(breaker)
    clock.advance(6_000)
    fail(breaker)
    clock.advance(6_000)  # the first failure (12 s old) is gone, the second (6 s) is not
    assert breaker.failures_in_window == 1
    fail(breaker)
    assert breaker.state == "closed"
    fail(breaker)
    assert breaker.state == "open"


def test_a_long_idle_gap_empties_the_whole_window() -> None:
    breaker, clock = make(failures=2, window_s=1)
    fail(breaker)
    clock.advance(3_600_000)
    fail(breaker)
    assert breaker.state == "closed"
    assert breaker.calls_in_window == 1


def test_ratio_rule_waits_for_min_calls() -> None:
    breaker, _ = make(failure_ratio=0.5, min_calls=4, failures=1)
    fail(breaker, 3)  # 100% failures, but only 3 calls: not enough evidence yet
    assert breaker.state == "closed"
    breaker.record_success()  # 4 calls, 3 failures: 75%
    assert breaker.state == "closed"  # a success never trips the breaker
    fail(breaker)
    assert breaker.state == "open"


def test_ratio_rule_replaces_the_count_rule() -> None:
    breaker, _ = make(failure_ratio=0.5, min_calls=10, failures=2)
    for _ in range(20):
        breaker.record_success()
    fail(breaker, 5)  # 5 failures of 25 calls: well past `failures`, below the ratio
    assert breaker.state == "closed"
    fail(breaker, 15)  # 20 of 40: exactly the ratio
    assert breaker.state == "open"


def test_ratio_window_forgets_old_successes_too() -> None:
    breaker, clock = make(failure_ratio=0.5, min_calls=2, window_s=10)
    for _ in range(10):
        breaker.record_success()
    clock.advance(10_000)
    fail(breaker)
    assert breaker.state == "closed"  # one call in the window: below min_calls
    fail(breaker)
    assert breaker.state == "open"  # the old successes no longer dilute the ratio


def test_open_turns_half_open_after_open_s() -> None:
    breaker, clock = make(failures=1, open_s=30)
    trip(breaker)
    assert breaker.remaining_open_ms() == 30_000
    clock.advance(29_999)
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.remaining_open_ms() == 1
    clock.advance(1)
    assert breaker.state == "half_open"
    assert breaker.remaining_open_ms() == 0


def test_half_open_success_closes_with_an_empty_window() -> None:
    breaker, clock = make(failures=2, open_s=5)
    trip(breaker)
    clock.advance(5_000)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    fail(breaker)  # the failures before the outage do not count towards the next one
    assert breaker.state == "closed"


def test_half_open_failure_reopens_for_a_fresh_open_s() -> None:
    breaker, clock = make(failures=1, open_s=5)
    trip(breaker)
    clock.advance(7_000)
    assert breaker.allow()
    fail(breaker)
    assert breaker.state == "open"
    assert breaker.opened_total == 2
    assert breaker.remaining_open_ms() == 5_000
    clock.advance(4_999)
    assert breaker.state == "open"
    clock.advance(1)
    assert breaker.state == "half_open"


def test_half_open_admits_only_the_probes_and_needs_all_to_succeed() -> None:
    breaker, clock = make(failures=1, open_s=1, half_open_probes=2)
    trip(breaker)
    clock.advance(1_000)
    assert [breaker.allow() for _ in range(3)] == [True, True, False]
    breaker.record_success()
    assert breaker.state == "half_open"  # one of two probes succeeded
    assert breaker.allow()  # its slot is free again
    assert not breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.allow()


def test_any_probe_failure_reopens_even_after_a_success() -> None:
    breaker, clock = make(failures=1, open_s=1, half_open_probes=3)
    trip(breaker)
    clock.advance(1_000)
    assert breaker.allow() and breaker.allow()
    breaker.record_success()
    fail(breaker)
    assert breaker.state == "open"


def test_release_frees_a_probe_slot_without_an_outcome() -> None:
    breaker, clock = make(failures=1, open_s=1)
    trip(breaker)
    clock.advance(1_000)
    assert breaker.allow()
    assert not breaker.allow()
    breaker.release()  # the probe was cancelled
    assert breaker.state == "half_open"
    assert breaker.allow()


def test_outcomes_while_open_change_nothing() -> None:
    breaker, clock = make(failures=1, open_s=10)
    trip(breaker)
    clock.advance(5_000)
    breaker.record_success()  # late results of calls allowed before the breaker opened
    fail(breaker)
    assert breaker.state == "open"
    assert breaker.opened_total == 1
    assert breaker.remaining_open_ms() == 5_000


def test_only_trip_on_exceptions_are_failures() -> None:
    breaker, _ = make(failures=2, trip_on=(TimeoutError, ConnectionError))
    fail(breaker, 5, ValueError("bad input: the dependency answered"))
    assert breaker.state == "closed"
    assert breaker.calls_in_window == 5 and breaker.failures_in_window == 0
    fail(breaker, 1, TimeoutError())
    fail(breaker, 1, ConnectionResetError())  # a subclass counts
    assert breaker.state == "open"


def test_a_non_tripping_exception_is_a_probe_success() -> None:
    breaker, clock = make(failures=1, open_s=1, trip_on=(TimeoutError,))
    fail(breaker, 1, TimeoutError())
    assert breaker.state == "open"
    clock.advance(1_000)
    assert breaker.allow()
    fail(breaker, 1, KeyError("x"))
    assert breaker.state == "closed"


def test_callbacks_see_every_transition_in_order() -> None:
    breaker, clock = make(failures=1, open_s=1)
    seen: list[tuple[str, State, State]] = []
    breaker.on_change.append(lambda old, new: seen.append(("first", old, new)))
    breaker.on_change.append(lambda old, new: seen.append(("second", old, new)))
    fail(breaker)
    clock.advance(1_000)
    breaker.allow()
    fail(breaker)
    clock.advance(1_000)
    breaker.allow()
    breaker.record_success()
    transitions = [(old, new) for who, old, new in seen if who == "first"]
    assert transitions == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    # Each change reaches the callbacks in the order they were added.
    assert [who for who, _, _ in seen[:2]] == ["first", "second"]
    assert seen[0][1:] == seen[1][1:]


def test_callback_sees_the_new_state_already_in_place() -> None:
    breaker, _ = make(failures=1)
    observed: list[State] = []
    breaker.on_change.append(lambda old, new: observed.append(breaker.state))
    fail(breaker)
    assert observed == ["open"]


def test_named_breakers_are_shared_and_unnamed_ones_are_per_owner() -> None:
    registry = BreakerRegistry(FakeClock())
    payments = Breaker(name="payments", failures=2)
    a = registry.get(payments, owner="billing")
    b = registry.get(payments, owner="refunds")
    assert a is b
    fail(a, 2)
    assert b.state == "open"  # every subscriber of the dependency stops
    private = Breaker(failures=2)
    c = registry.get(private, owner="billing")
    d = registry.get(private, owner="refunds")
    assert c is not d and c is not a
    assert registry.get(private, owner="billing") is c
    # An owner called like a named breaker still has its own state.
    assert registry.get(private, owner="payments") is not a
    assert {name for name, _ in registry.items()} == {"payments", "billing", "refunds"}


def test_one_name_with_two_policies_is_refused() -> None:
    registry = BreakerRegistry(FakeClock())
    registry.get(Breaker(name="db", failures=2), owner="a")
    with pytest.raises(ValueError, match="two different policies"):
        registry.get(Breaker(name="db", failures=3), owner="b")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": ""},
        {"failures": 0},
        {"failures": 10**9},
        {"failure_ratio": 0.0},
        {"failure_ratio": 1.5},
        {"failure_ratio": float("nan")},
        {"min_calls": 0},
        {"window_s": 0},
        {"window_s": -1},
        {"window_s": float("inf")},
        {"window_s": float("nan")},
        {"open_s": 0},
        {"open_s": 10**9},
        {"half_open_probes": 0},
        {"half_open_probes": 10**6},
        {"trip_on": ()},
        {"trip_on": (ValueError, "TimeoutError")},
        {"trip_on": (int,)},
        {"trip_on": [ValueError]},
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Breaker(**kwargs)


def test_a_ratio_of_one_is_allowed() -> None:
    breaker, _ = make(failure_ratio=1.0, min_calls=2)
    fail(breaker)
    breaker.record_success()
    fail(breaker)
    assert breaker.state == "closed"  # 2 of 3 failed: not all


# One step of a random workload: advance the clock by ms, then record an outcome or not.
steps = st.lists(
    st.tuples(st.integers(0, 3_000), st.sampled_from(["fail", "ok", "none"])),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(failures=st.integers(1, 6), window_s=st.integers(1, 10), workload=steps)
def test_count_rule_matches_a_model_of_the_window(
    failures: int, window_s: int, workload: list[tuple[int, str]]
) -> None:
    """Safety: never open with fewer than `failures` failures younger than window_s.
    Liveness: open once `failures` failures are younger than window_s minus one bucket."""
    window_ms = window_s * 1000
    width_ms = window_ms / WINDOW_BUCKETS
    breaker, clock = make(failures=failures, window_s=window_s, open_s=2)
    closed_failures: list[float] = []  # failure times recorded since the breaker last closed
    opened_from_closed: list[bool] = []
    breaker.on_change.append(
        lambda old, new: opened_from_closed.append(True) if old == "closed" else None
    )
    breaker.on_change.append(lambda old, new: closed_failures.clear() if new == "closed" else None)
    for advance_ms, outcome in workload:
        clock.advance(advance_ms)
        now = clock.monotonic_ms()
        was_closed = breaker.state == "closed"
        if not breaker.allow():
            continue
        if outcome == "fail":
            if was_closed:
                closed_failures.append(now)
            breaker.record_failure(Boom())
            if was_closed:
                young = [t for t in closed_failures if now - t < window_ms]
                surely_counted = [t for t in closed_failures if now - t < window_ms - width_ms]
                if opened_from_closed:
                    assert len(young) >= failures
                    opened_from_closed.clear()
                    closed_failures.clear()
                else:
                    assert len(surely_counted) < failures
        elif outcome == "ok":
            breaker.record_success()
        else:
            breaker.release()
