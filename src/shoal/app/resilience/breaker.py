"""Circuit breakers: stop calling a dependency that keeps failing, and probe it before resuming.

Sans-IO: a :class:`BreakerState` is told about outcomes and asked for permission; it reads the
time from an injected :class:`~shoal.clock.Clock` and never sleeps. The App asks ``allow()``
before a handler call, reports the outcome with ``record_success()``/``record_failure()``, and
pauses the consumer for ``remaining_open_ms()`` while the breaker is open.

    closed ──(too many failures in the window)──▶ open
    open ──(open_s passed; noticed lazily)──▶ half_open
    half_open ──(half_open_probes successes)──▶ closed
    half_open ──(any failure)──▶ open (a fresh open_s)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from shoal.clock import SYSTEM_CLOCK, Clock
from shoal.invariant import invariant

State = Literal["closed", "open", "half_open"]
ChangeCallback = Callable[[State, State], None]

TRANSITIONS: Final[frozenset[tuple[State, State]]] = frozenset(
    {
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
        ("half_open", "open"),
    }
)
"""Every allowed state change; anything else is a bug in this module and raises."""

WINDOW_BUCKETS: Final = 20
"""The window is kept as this many time buckets, so memory does not grow with the call rate.
The price is granularity: an outcome is forgotten up to window_s / 20 (5%) early, never late,
so the breaker never counts an outcome older than window_s."""

COUNT_MAX: Final = 1_000_000
"""Bound for failures and min_calls: beyond it a threshold is a typo, not a policy."""
HALF_OPEN_PROBES_MAX: Final = 1_000
"""Probes run against a dependency that was just failing; more than this is a flood, not a probe."""
DURATION_S_MAX: Final = 7 * 24 * 3600.0
"""A window or open time beyond a week is almost certainly a unit mistake (ms given as s)."""


def _check_duration(field: str, value: float) -> None:
    # `not 0 < value` also refuses NaN, which every comparison answers False.
    if not 0 < value <= DURATION_S_MAX:
        raise ValueError(f"{field} must be > 0 and <= {DURATION_S_MAX:g} seconds, got {value!r}")


@dataclass(frozen=True, slots=True)
class Breaker:
    """A breaker policy, the user-facing part: ``@app.subscriber(..., breaker=Breaker())``.

    Breakers with the same ``name`` share one state across subscribers: name the dependency
    ("payments-api") and every handler that calls it stops when it is down. Without a name each
    subscriber has its own breaker.

    By default the breaker opens after ``failures`` failures within ``window_s``. With
    ``failure_ratio`` set, that rule is replaced by a ratio: it opens once at least
    ``min_calls`` outcomes are in the window and failures / calls >= ``failure_ratio`` (a busy
    handler with a steady 1% failure rate should not trip a count of 5). Only exceptions in
    ``trip_on`` are failures; any other exception is the handler's own business and counts as
    a success (the dependency answered).
    """

    name: str | None = None
    failures: int = 5
    failure_ratio: float | None = None
    min_calls: int = 10
    window_s: float = 60.0
    open_s: float = 30.0
    half_open_probes: int = 1
    trip_on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise ValueError("name must be a non-empty string, or None for a private breaker")
        if not 1 <= self.failures <= COUNT_MAX:
            raise ValueError(f"failures must be in 1..{COUNT_MAX}, got {self.failures!r}")
        if self.failure_ratio is not None and not 0 < self.failure_ratio <= 1:
            raise ValueError(f"failure_ratio must be in (0, 1], got {self.failure_ratio!r}")
        if not 1 <= self.min_calls <= COUNT_MAX:
            raise ValueError(f"min_calls must be in 1..{COUNT_MAX}, got {self.min_calls!r}")
        _check_duration("window_s", self.window_s)
        _check_duration("open_s", self.open_s)
        if not 1 <= self.half_open_probes <= HALF_OPEN_PROBES_MAX:
            raise ValueError(
                f"half_open_probes must be in 1..{HALF_OPEN_PROBES_MAX}, "
                f"got {self.half_open_probes!r}"
            )
        if not isinstance(self.trip_on, tuple) or not self.trip_on:
            raise ValueError("trip_on must be a non-empty tuple of exception classes")
        for kind in self.trip_on:
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise ValueError(f"trip_on holds {kind!r}, which is not an exception class")


class _Window:
    """Calls and failures of the last ``window_ms``, in a fixed ring of time buckets."""

    def __init__(self, window_ms: float) -> None:
        self._width_ms = window_ms / WINDOW_BUCKETS
        self._calls = [0] * WINDOW_BUCKETS
        self._failures = [0] * WINDOW_BUCKETS
        self._newest = 0  # absolute bucket number (time // width) of the newest bucket

    def _advance(self, now_ms: float) -> int:
        bucket = int(now_ms // self._width_ms)
        invariant(bucket >= self._newest, "the breaker's clock went backwards")
        if bucket - self._newest >= WINDOW_BUCKETS:
            self.clear()
        else:
            # Empty the slots of the buckets that passed since the last outcome: they are
            # reused for the new time and must not carry outcomes older than the window.
            for passed in range(self._newest + 1, bucket + 1):
                slot = passed % WINDOW_BUCKETS
                self._calls[slot] = 0
                self._failures[slot] = 0
        self._newest = bucket
        return bucket % WINDOW_BUCKETS

    def record(self, now_ms: float, failed: bool) -> None:
        slot = self._advance(now_ms)
        self._calls[slot] += 1
        if failed:
            self._failures[slot] += 1

    def counts(self, now_ms: float) -> tuple[int, int]:
        """(calls, failures) younger than the window at ``now_ms``."""
        self._advance(now_ms)
        return sum(self._calls), sum(self._failures)

    def clear(self) -> None:
        self._calls = [0] * WINDOW_BUCKETS
        self._failures = [0] * WINDOW_BUCKETS


class BreakerState:
    """The runtime state of one breaker. Not thread-safe: it lives on the App's event loop.

    Time is read from ``clock.monotonic_ms()``: the breaker measures intervals, and a wall
    clock stepped by NTP must not open or close it.
    """

    def __init__(self, policy: Breaker, clock: Clock) -> None:
        self.policy = policy
        self._clock = clock
        self._state: State = "closed"
        self._window = _Window(policy.window_s * 1000.0)
        self._open_ms = policy.open_s * 1000.0
        self._opened_at_ms = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0
        self.on_change: list[ChangeCallback] = []
        """Called with (old, new) after every state change, in the order appended (metrics)."""
        self.opened_total = 0
        """How many times the breaker has opened, half-open re-opens included."""

    @property
    def state(self) -> State:
        self._expire_open()
        return self._state

    @property
    def calls_in_window(self) -> int:
        """Outcomes counted in the closed state's window (for metrics and debugging)."""
        return self._window.counts(self._clock.monotonic_ms())[0]

    @property
    def failures_in_window(self) -> int:
        return self._window.counts(self._clock.monotonic_ms())[1]

    def allow(self) -> bool:
        """May a call go ahead now? In half-open a True reserves a probe slot, which the call's
        ``record_success``/``record_failure`` (or ``release``) gives back."""
        state = self.state
        if state == "closed":
            return True
        if state == "open":
            return False
        if self._probes_in_flight < self.policy.half_open_probes:
            self._probes_in_flight += 1
            return True
        return False

    def record_success(self) -> None:
        state = self.state
        if state == "closed":
            self._window.record(self._clock.monotonic_ms(), failed=False)
        elif state == "half_open":
            self._end_probe()
            self._probe_successes += 1
            if self._probe_successes >= self.policy.half_open_probes:
                self._move("closed")
        # In the open state an outcome can only come from a call allowed before the breaker
        # opened; it says nothing new, and must not shorten or extend the open time.

    def record_failure(self, exc: BaseException) -> None:
        """Count ``exc`` as a failure if it is one of ``trip_on``, else as a success."""
        if not isinstance(exc, self.policy.trip_on):
            self.record_success()
            return
        state = self.state
        if state == "closed":
            now_ms = self._clock.monotonic_ms()
            self._window.record(now_ms, failed=True)
            if self._should_trip(now_ms):
                self._move("open")
        elif state == "half_open":
            self._end_probe()
            self._move("open")

    def release(self) -> None:
        """An allowed call ended without an outcome (cancelled at shutdown): free its probe
        slot and count nothing. Without this a cancelled probe would hold half-open forever."""
        if self.state == "half_open":
            self._end_probe()

    def remaining_open_ms(self) -> int:
        """Milliseconds until the breaker turns half-open; 0 unless it is open."""
        if self.state != "open":
            return 0
        left = self._opened_at_ms + self._open_ms - self._clock.monotonic_ms()
        return max(1, math.ceil(left))

    def _should_trip(self, now_ms: float) -> bool:
        calls, failures = self._window.counts(now_ms)
        ratio = self.policy.failure_ratio
        if ratio is None:
            return failures >= self.policy.failures
        return calls >= self.policy.min_calls and failures >= ratio * calls

    def _end_probe(self) -> None:
        # A late outcome of a call allowed while still closed may arrive in half-open; it is
        # real evidence about the dependency and counts, but it held no probe slot.
        if self._probes_in_flight > 0:
            self._probes_in_flight -= 1

    def _expire_open(self) -> None:
        if (
            self._state == "open"
            and self._clock.monotonic_ms() >= self._opened_at_ms + self._open_ms
        ):
            self._move("half_open")

    def _move(self, new: State) -> None:
        old = self._state
        invariant((old, new) in TRANSITIONS, f"breaker transition {old} -> {new} is not allowed")
        self._state = new
        if new == "open":
            self.opened_total += 1
            self._opened_at_ms = self._clock.monotonic_ms()
        elif new == "half_open":
            self._probes_in_flight = 0
            self._probe_successes = 0
        else:
            # Failures from before the outage must not count towards the next one.
            self._window.clear()
        for callback in list(self.on_change):
            callback(old, new)


class BreakerRegistry:
    """One :class:`BreakerState` per breaker name, or per owner (subscriber) when unnamed."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        # Names and owners live in separate namespaces: an owner that happens to be called
        # like a named breaker must not share its state.
        self._states: dict[tuple[bool, str], BreakerState] = {}

    def get(self, policy: Breaker, owner: str) -> BreakerState:
        key = (True, policy.name) if policy.name is not None else (False, owner)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = BreakerState(policy, self._clock)
        elif state.policy != policy:
            raise ValueError(
                f"breaker {key[1]!r} is shared but registered with two different policies: "
                f"{state.policy!r} and {policy!r}; give them the same settings or other names"
            )
        return state

    def items(self) -> list[tuple[str, BreakerState]]:
        """(name or owner, state) of every breaker, for metrics."""
        return [(key[1], state) for key, state in self._states.items()]
