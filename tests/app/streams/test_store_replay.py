"""The stores' replay rule without a broker: a processor crashed at any point (any subset of a
fetch's changelog records durable, its watermarks and offsets not) and restarted from the
changelog and the committed offsets ends with the state and window results of a run that never
crashed. The changelog and the offsets are plain lists here; the broker tests
(test_table_restore.py) do the same with real processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.app.message import Message
from shoal.app.streams import Aggregation, Hopping, Session, Tumbling
from shoal.app.streams.table import ChangelogRecord, Table, WindowedTable

SOURCE = "src"
PARTITIONS = 2
BATCH = 4
IDS: Aggregation[int, list[int]] = Aggregation(
    initial=list,
    add=lambda agg, value, _ts: sorted([*agg, value]),
    merge=lambda a, b: sorted(a + b),
)


def _stores(spec: Hopping | Session) -> tuple[WindowedTable[int, list[int]], Table]:
    windows = WindowedTable(
        "w", source=SOURCE, windows=spec, aggregation=IDS, allowed_lateness_ms=30
    )
    return windows, Table("t", source=SOURCE)


@dataclass
class World:
    """What survives a crash: the source partitions, the changelog, the committed offsets."""

    source: list[list[Message]]
    changelogs: dict[str, list[Message]] = field(default_factory=dict)
    committed: list[int] = field(default_factory=lambda: [0] * PARTITIONS)
    emitted: dict[tuple[str, int], list[int]] = field(default_factory=dict)

    def write(self, topic: str, records: list[ChangelogRecord]) -> None:
        log = self.changelogs.setdefault(topic, [])
        for r in records:
            log.append(Message(topic, 0, len(log), r.key, r.value, r.headers))

    def changelog(self, topic: str) -> list[Message]:
        return self.changelogs.get(topic, [])


def _source(events: list[tuple[str, int]]) -> list[list[Message]]:
    parts: list[list[Message]] = [[] for _ in range(PARTITIONS)]
    for ident, (key, ts) in enumerate(events):
        part = parts["abc".index(key) % PARTITIONS]  # a key lives in one partition, as in Kafka
        value = f"{ts}/{ident}".encode()
        part.append(Message(SOURCE, "abc".index(key) % PARTITIONS, len(part), key.encode(), value))
    return parts


def _run(world: World, spec: Hopping | Session, crash: tuple[int, set[int]] | None) -> bool:
    """Process from the committed offsets to the end; with ``crash`` = (fetch number, durable
    key records), stop inside that fetch's write. True if it ran to the end."""
    windows, counts = _stores(spec)
    windows.restore(world.changelog(windows.changelog), set(range(PARTITIONS)))
    counts.restore(world.changelog(counts.changelog), set(range(PARTITIONS)))
    position = list(world.committed)
    fetch = 0
    while any(position[p] < len(world.source[p]) for p in range(PARTITIONS)):
        batch: list[Message] = []
        for p in range(PARTITIONS):  # a fetch takes a little of each partition
            batch += world.source[p][position[p] : position[p] + BATCH]
            position[p] = min(position[p] + BATCH, len(world.source[p]))
        outputs: list[tuple[tuple[str, int], list[int]]] = []
        for msg in batch:
            key = (msg.key or b"").decode()
            ts, ident = (int(x) for x in msg.value.decode().split("/"))
            step = windows.add(msg, key, ts, ident)
            outputs += [((r.key, r.window.start_ms), r.value) for r in step.closed]
            counts.put(msg, key, counts.get(key, 0) + 1)
        for window, ids in outputs:  # outputs are durable before the state is written
            assert world.emitted.setdefault(window, ids) == ids, "a result changed on replay"
        window_keys, watermarks = windows.take_changes()
        count_keys, _ = counts.take_changes()
        if crash is not None and crash[0] == fetch:
            # Sends in flight at the crash: any of them may have made it.
            durable = crash[1]
            world.write(windows.changelog, [r for i, r in enumerate(window_keys) if i in durable])
            offset = len(window_keys)
            world.write(
                counts.changelog, [r for i, r in enumerate(count_keys) if i + offset in durable]
            )
            return False
        world.write(windows.changelog, window_keys)
        world.write(counts.changelog, count_keys)
        world.write(windows.changelog, watermarks)  # once the key records are durable
        for msg in batch:
            world.committed[msg.partition] = msg.offset + 1
        fetch += 1
    return True


def _final_state(world: World, spec: Hopping | Session) -> tuple[object, ...]:
    windows, counts = _stores(spec)
    windows.restore(world.changelog(windows.changelog), set(range(PARTITIONS)))
    counts.restore(world.changelog(counts.changelog), set(range(PARTITIONS)))
    open_windows = {k: windows.open_windows(k) for k in windows.keys()}
    marks = [windows.watermark_ms(p) for p in range(PARTITIONS)]
    return open_windows, marks, dict(counts.items()), world.emitted


events_st = st.lists(
    st.tuples(st.sampled_from("abc"), st.integers(0, 400)),
    min_size=1,
    max_size=40,
)
specs = st.sampled_from([Tumbling(50), Hopping(60, 20), Session(25)])


@settings(max_examples=150, deadline=None)
@given(
    events=events_st,
    spec=specs,
    crashes=st.lists(st.tuples(st.integers(0, 6), st.sets(st.integers(0, 12))), max_size=3),
)
def test_crashes_anywhere_leave_the_state_of_an_uninterrupted_run(
    events: list[tuple[str, int]],
    spec: Hopping | Session,
    crashes: list[tuple[int, set[int]]],
) -> None:
    clean = World(_source(events))
    assert _run(clean, spec, None)
    crashed = World(_source(events))
    for crash in crashes:
        if _run(crashed, spec, crash):
            break
    else:
        assert _run(crashed, spec, None)
    assert _final_state(crashed, spec) == _final_state(clean, spec)


def test_a_key_seen_on_two_partitions_is_refused() -> None:
    """A store's replay rule needs each key in one source partition (records keyed by the
    store's key): anything else is a programming error, refused loudly."""
    windows, counts = _stores(Tumbling(50))
    counts.put(Message(SOURCE, 0, 0, b"a", b""), "a", 1)
    windows.add(Message(SOURCE, 0, 0, b"a", b""), "a", 10, 1)
    with pytest.raises(ValueError, match="partition"):
        counts.put(Message(SOURCE, 1, 0, b"a", b""), "a", 2)
    with pytest.raises(ValueError, match="partition"):
        windows.add(Message(SOURCE, 1, 0, b"a", b""), "a", 10, 2)
