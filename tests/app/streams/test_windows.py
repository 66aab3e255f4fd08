"""Windowed aggregation against a brute-force model, over any arrival order of the events.

The model restates the rules from scratch: an event is late when it is older than the newest
event time seen before it minus the allowed lateness; every other event counts in each window
that holds its time (for sessions: the sessions of all counted events of its key). The
aggregate is the sorted tuple of event ids, so equality means exactly the same events counted,
each once, and every window emitted exactly once.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.app.streams.aggregate import Aggregation, WindowedAggregator
from shoal.app.streams.windows import Hopping, Session, Tumbling, Window

Event = tuple[str, int, int]  # key, event time ms, id

IDS: Aggregation[int, tuple[int, ...]] = Aggregation(
    initial=tuple,
    add=lambda agg, value, _ts: tuple(sorted((*agg, value))),
    merge=lambda a, b: tuple(sorted(a + b)),
    encode=list,
    decode=tuple,
)

events_st = st.lists(
    st.tuples(st.sampled_from(["A", "B", "C"]), st.integers(0, 6_000)), max_size=60
).map(lambda raw: [(k, ts, i) for i, (k, ts) in enumerate(raw)])
specs = st.one_of(
    st.integers(1, 2_000).map(Tumbling),
    st.tuples(st.integers(10, 500), st.integers(1, 5), st.integers(0, 9)).map(
        # any size from one advance up, not only multiples of it
        lambda p: Hopping(p[0] * p[1] + p[0] * p[2] // 10, p[0])
    ),
    st.integers(1, 1_500).map(Session),
)


def _brute_force(
    events: list[Event], spec: Hopping | Session, lateness_ms: int
) -> tuple[dict[tuple[str, Window], tuple[int, ...]], list[int]]:
    newest: int | None = None
    counted: list[Event] = []
    late: list[int] = []
    for key, ts, ident in events:
        if newest is not None and ts < newest - lateness_ms:
            late.append(ident)
            continue
        newest = ts if newest is None else max(newest, ts)
        counted.append((key, ts, ident))
    members: dict[tuple[str, Window], list[int]] = defaultdict(list)
    if isinstance(spec, Session):
        by_key: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for key, ts, ident in counted:
            by_key[key].append((ts, ident))
        for key, items in by_key.items():
            items.sort()
            group = [items[0]]
            for item in items[1:]:
                if item[0] - group[-1][0] < spec.gap_ms:
                    group.append(item)
                else:
                    members[(key, Window(group[0][0], group[-1][0] + 1))] = [i for _, i in group]
                    group = [item]
            members[(key, Window(group[0][0], group[-1][0] + 1))] = [i for _, i in group]
    else:
        for key, ts, ident in counted:
            for start in range(0, ts + 1, spec.advance_ms):
                if start <= ts < start + spec.size_ms:
                    members[(key, Window(start, start + spec.size_ms))].append(ident)
    return {w: tuple(sorted(ids)) for w, ids in members.items()}, late


def _run(
    events: list[Event], spec: Hopping | Session, lateness_ms: int
) -> tuple[dict[tuple[str, Window], tuple[int, ...]], list[int]]:
    agg = WindowedAggregator(spec, IDS, allowed_lateness_ms=lateness_ms)
    emitted: dict[tuple[str, Window], tuple[int, ...]] = {}
    late: list[int] = []

    def record(results: list) -> None:  # type: ignore[type-arg]
        for r in results:
            assert (r.key, r.window) not in emitted, f"{r.window} of {r.key} emitted twice"
            emitted[(r.key, r.window)] = r.value

    for key, ts, ident in events:
        step = agg.add(key, ts, ident)
        record(step.closed)
        if step.late:
            late.append(ident)
    record(agg.flush())
    return emitted, late


@settings(max_examples=300, deadline=None)
@given(events=events_st, spec=specs, lateness_ms=st.integers(0, 3_000), data=st.data())
def test_windows_equal_brute_force_over_any_arrival_order(
    events: list[Event], spec: Hopping | Session, lateness_ms: int, data: st.DataObject
) -> None:
    arrival = data.draw(st.permutations(events))
    assert _run(arrival, spec, lateness_ms) == _brute_force(arrival, spec, lateness_ms)


@settings(max_examples=100, deadline=None)
@given(events=events_st, spec=specs, data=st.data())
def test_with_enough_lateness_the_arrival_order_does_not_matter(
    events: list[Event], spec: Hopping | Session, data: st.DataObject
) -> None:
    in_time_order = sorted(events, key=lambda e: e[1])
    shuffled = data.draw(st.permutations(events))
    assert _run(shuffled, spec, 10_000) == _run(in_time_order, spec, 0)
    assert _run(shuffled, spec, 10_000)[1] == []


@settings(max_examples=200, deadline=None)
@given(events=events_st, spec=specs, lateness_ms=st.integers(0, 3_000), cut=st.integers(0, 60))
def test_a_snapshot_restored_midway_gives_the_same_results(
    events: list[Event], spec: Hopping | Session, lateness_ms: int, cut: int
) -> None:
    """A restart: the state of every key (and the newest event time) is copied into a fresh
    aggregator, which then takes the rest of the events."""
    first = WindowedAggregator(spec, IDS, allowed_lateness_ms=lateness_ms)
    emitted = []
    for key, ts, ident in events[:cut]:
        emitted += first.add(key, ts, ident).closed
    second = WindowedAggregator(spec, IDS, allowed_lateness_ms=lateness_ms)
    second.max_event_ms = first.max_event_ms
    for key in {k for k, _, _ in events}:
        second.load(key, first.snapshot(key))
    for key, ts, ident in events[cut:]:
        emitted += second.add(key, ts, ident).closed
    emitted += second.flush()
    expected, _ = _brute_force(events, spec, lateness_ms)
    assert {(r.key, r.window): r.value for r in emitted} == expected
    assert len(emitted) == len(expected)


def test_hopping_windows_of_an_event() -> None:
    assert Hopping(1_000, 500).windows_of(1_200) == [Window(500, 1_500), Window(1_000, 2_000)]
    assert Tumbling(1_000).windows_of(999) == [Window(0, 1_000)]
    assert Tumbling(1_000).windows_of(1_000) == [Window(1_000, 2_000)]


def test_sessions_split_at_the_gap() -> None:
    assert Session(100).sessions([0, 99, 300, 198]) == [Window(0, 199), Window(300, 301)]
    assert Session(100).sessions([0, 100]) == [Window(0, 1), Window(100, 101)]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Hopping(100, 200), "cannot exceed"),
        (lambda: Tumbling(0), "positive"),
        (lambda: Hopping(10_000, 1), "over 1000"),
        (lambda: Session(0), "positive"),
        (lambda: WindowedAggregator(Tumbling(10), IDS, allowed_lateness_ms=-1), "negative"),
        (lambda: WindowedAggregator(Session(10), Aggregation(tuple, IDS.add)), "merge"),
    ],
)
def test_bad_window_settings_are_refused(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]
