"""A partition handed over between two instances of a processor, on a real broker: the
Kafka transport's rebalance callbacks tell each instance; the one losing the partition
finishes its fetch in progress, writes its changelog, commits, and drops the partition's
state, and writes nothing of it afterwards; the one gaining it restores it from the changelog
to exactly the state the other had at the handover, and goes on without losing or counting
twice any record while records keep arriving."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import confluent_kafka
import pytest

from shoal import App, Message
from shoal.app.streams.processor import Outputs
from shoal.app.streams.table import PARTITION_HEADER, Table
from shoal.embedded import EmbeddedBroker

pytestmark = pytest.mark.integration

SOURCE = "handover.events"
PARTITIONS = 2
KEYS = [f"K{i}" for i in range(6)]
FIRST = 300
SECOND = 300
CHUNK = 20
WAIT_S_MAX = 60.0
"""A hang guard, not a timing expectation."""
SLOW_HANDLER_S = 0.001
"""Each record takes this long, so a fetch is usually in progress when the group moves."""
HEARTBEAT_INTERVAL_MS = 200
"""The first instance hears of the second's join at its next heartbeat (default 3 s)."""

Journal = list[tuple[str, int]]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(
        str(tmp_path_factory.mktemp("handover-broker")), group_initial_rebalance_delay_ms=0
    ) as running:
        yield running


class RecordingTable(Table):
    """A table that notes, in its instance's journal, each partition it gives up, and keeps
    its state the first time it gave it up and the first time it restored it."""

    def __init__(self, source: str, journal: Journal) -> None:
        super().__init__(f"{source}.counts", source=source)
        self.journal = journal
        self.handed_over: dict[int, dict[str, tuple[Any, int]]] = {}
        self.restored: dict[int, dict[str, tuple[Any, int]]] = {}
        self._restoring = False

    def restore(self, records: list[Message], partitions: set[int]) -> None:
        self._restoring = True
        try:
            super().restore(records, partitions)
        finally:
            self._restoring = False
        for p in partitions:
            self.restored.setdefault(p, self.state_of(p))

    def forget(self, partitions: set[int]) -> None:
        if not self._restoring:
            for p in partitions:
                self.handed_over.setdefault(p, self.state_of(p))  # the first: the handover
                self.journal.append(("revoked", p))
        super().forget(partitions)


def _instance(
    bootstrap: str, source: str, exactly_once: bool
) -> tuple[App, RecordingTable, Journal]:
    journal: Journal = []
    table = RecordingTable(source, journal)
    app = App(
        f"kafka://{bootstrap}?heartbeat.interval.ms={HEARTBEAT_INTERVAL_MS}",
        name="handover",
        lag_interval_s=0,
    )
    send = app.transport.send

    async def journaled_send(topic: str, value: bytes, key: bytes | None, headers: Any) -> None:
        if topic == table.changelog:
            partition = next(int(v) for k, v in headers if k == PARTITION_HEADER)
            journal.append(("write", partition))
        await send(topic, value, key, headers)

    app.transport.send = journaled_send  # type: ignore[method-assign]

    @app.processor(
        source,
        group=f"{source}.group",
        stores=[table],
        fetch_records_max=CHUNK,
        exactly_once=exactly_once,
    )
    async def count(msg: Message, out: Outputs) -> None:
        key = (msg.key or b"").decode()
        table.put(msg, key, table.get(key, 0) + 1)
        await asyncio.sleep(SLOW_HANDLER_S)

    return app, table, journal


def _send(producer: Any, source: str, first: int, count: int) -> None:
    for i in range(first, first + count):
        k = i % len(KEYS)
        producer.produce(source, str(i).encode(), KEYS[k].encode(), partition=k % PARTITIONS)
    assert producer.flush(30) == 0


async def _wait(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S_MAX
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _ends(tables: list[RecordingTable]) -> dict[int, int]:
    """Per partition, the next offset of the instance that owns it now (0 if nobody)."""
    return {
        p: max((o for t in tables for _, o in t.state_of(p).values()), default=0)
        for p in range(PARTITIONS)
    }


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_a_partition_moves_with_its_exact_state_and_the_zombie_writes_nothing(
    broker: EmbeddedBroker, exactly_once: bool
) -> None:
    """Exactly-once: each fetch is a transaction, committed before the revocation returns;
    a fetch a rebalance fenced would abort with everything it wrote."""
    bootstrap = broker.bootstrap_servers
    source = f"{SOURCE}.{'eos' if exactly_once else 'alo'}"
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    admin = confluent_kafka.admin.AdminClient({"bootstrap.servers": bootstrap})
    topic = confluent_kafka.admin.NewTopic(source, num_partitions=PARTITIONS)
    for future in admin.create_topics([topic]).values():
        future.result(30)
    total = FIRST + SECOND
    per_partition = Counter(i % len(KEYS) % PARTITIONS for i in range(total))

    async def scenario() -> None:
        a, table_a, journal_a = _instance(bootstrap, source, exactly_once)
        b, table_b, _ = _instance(bootstrap, source, exactly_once)
        await a.start()
        try:
            _send(producer, source, 0, FIRST)
            await _wait(lambda: sum(_ends([table_a]).values()) == FIRST, "a's first pass")
            # Records keep arriving while b joins and the group moves a partition to it.
            feeding = asyncio.create_task(_feed())
            await b.start()
            try:
                await _wait(lambda: bool(table_b.restored), "b's restore of its partition")
                await feeding
                await _wait(lambda: _ends([table_a, table_b]) == per_partition, "every record")
                final = {p: {**table_a.state_of(p), **table_b.state_of(p)} for p in per_partition}
                journal = list(journal_a)
            finally:
                await b.stop()
        finally:
            await a.stop()

        (moved,) = table_b.restored
        # b started from exactly what a had of the partition when a let it go.
        assert table_b.restored[moved] == table_a.handed_over[moved]
        assert table_a.handed_over[moved], "the handover should carry state"
        # a wrote its changelog for the partition up to the handover, and not once after.
        revoked_at = journal.index(("revoked", moved))
        assert ("write", moved) in journal[:revoked_at]
        assert ("write", moved) not in journal[revoked_at:]
        # No record lost, none counted twice: the counts are those of the records.
        expected = Counter(KEYS[i % len(KEYS)] for i in range(total))
        got = {k: v for state in final.values() for k, (v, _) in state.items()}
        assert got == dict(expected)

    async def _feed() -> None:
        for first in range(FIRST, total, CHUNK):
            await asyncio.to_thread(_send, producer, source, first, CHUNK)
            await asyncio.sleep(0.02)

    asyncio.run(scenario())
