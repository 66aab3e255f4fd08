"""A revocation that cannot wait for the fetch in progress (the fence), on a real broker.

An exactly-once processor is handling a fetch when a second instance joins and the group takes
its partitions away; the fetch outlasts the revocation's wait (shortened here from 30 s), so
the partitions are fenced. The fetch's transaction holds the outputs of those records: it must
abort, not commit them without their offsets (their next owner reads the records again and
sends the outputs again: duplicates in a read_committed reader). Every record's output is
committed exactly once, and the counts of the instances' tables are exact.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import confluent_kafka
import pytest

from shoal import Message
from shoal.app.streams.processor import Outputs, Processor
from shoal.app.streams.table import Table
from shoal.app.transports.kafka import KafkaTransport
from shoal.embedded import EmbeddedBroker

pytestmark = pytest.mark.integration

SOURCE = "fence.events"
OUTPUT = "fence.out"
GROUP = "fence.group"
PARTITIONS = 2
RECORDS = 6
KEYS = ["a", "b", "c"]
REVOKE_WAIT_S = 0.3
"""The revocation gives up on the fetch in progress after this (the default is 30 s)."""
HEARTBEAT_INTERVAL_MS = 200
"""The first instance hears of the second's join at its next heartbeat (default 3 s)."""
POLL_WAIT_S = 20.0
"""While the test holds a fetch up, the first instance's polls wait this long for a record
(the processor asks for 0.1 s): the poll that runs beside a fetch (the consumer's prefetch)
then still waits when the second instance joins, and serves the revocation. A bound, not a
timing expectation: the test ends it with a record."""
WAIT_S_MAX = 60.0
"""A hang guard, not a timing expectation."""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(
        str(tmp_path_factory.mktemp("fence-broker")), group_initial_rebalance_delay_ms=0
    ) as running:
        yield running


async def _wait(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S_MAX
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


class LongPolls:
    """A consumer whose fetches wait ``POLL_WAIT_S`` for their first record while ``on`` is
    set (and so does the poll a fetch starts for the next batch); ``waiting`` is set once such
    a fetch began."""

    def __init__(self, consumer: Any, on: asyncio.Event, waiting: asyncio.Event) -> None:
        self._consumer = consumer
        self._on = on
        self._waiting = waiting

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)

    async def fetch(self, max_records: int, timeout_s: float) -> Any:
        if self._on.is_set():
            timeout_s = POLL_WAIT_S
            self._waiting.set()
        return await self._consumer.fetch(max_records, timeout_s)


def _long_polls(transport: KafkaTransport, on: asyncio.Event, waiting: asyncio.Event) -> None:
    make = transport.transactional_consumer

    def consumer(topics: list[str], group: str, *, rebalance: Any = None) -> Any:
        return LongPolls(make(topics, group, rebalance=rebalance), on, waiting)

    transport.transactional_consumer = consumer  # type: ignore[method-assign]


def _committed(bootstrap: str) -> int:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP})
    try:
        tps = [confluent_kafka.TopicPartition(SOURCE, p) for p in range(PARTITIONS)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))
    finally:
        consumer.close()


async def _wait_committed(bootstrap: str, records: int) -> None:
    deadline = time.monotonic() + WAIT_S_MAX
    while (committed := await asyncio.to_thread(_committed, bootstrap)) < records:
        assert time.monotonic() < deadline, f"committed {committed} of {records}"
        await asyncio.sleep(0.1)


def test_an_exactly_once_fetch_fenced_by_a_revocation_aborts_instead_of_committing(
    broker: EmbeddedBroker,
) -> None:
    bootstrap = broker.bootstrap_servers
    admin = confluent_kafka.admin.AdminClient({"bootstrap.servers": bootstrap})
    new = confluent_kafka.admin.NewTopic(SOURCE, num_partitions=PARTITIONS)
    for future in admin.create_topics([new]).values():
        future.result(30)
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all"})

    def send(value: str, key: str, partition: int) -> None:
        producer.produce(SOURCE, value.encode(), key.encode(), partition=partition)
        assert producer.flush(30) == 0

    expected = Counter[str]()
    for i in range(RECORDS):
        k = i % len(KEYS)  # a key stays on one partition: the tables' counts add up
        send(str(i), KEYS[k], k % PARTITIONS)
        expected[KEYS[k]] += 1
    expected.update(["a", "b"])  # the held record and the waking one, below

    async def scenario() -> None:
        release = asyncio.Event()
        blocked = asyncio.Event()
        long_polls, long_poll_waits = asyncio.Event(), asyncio.Event()
        transports = [
            KafkaTransport(bootstrap, **{"heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS})
            for _ in range(2)
        ]

        def instance(transport: KafkaTransport, table: Table, hold: bool) -> Processor:
            async def handle(msg: Message, out: Outputs) -> None:
                key = (msg.key or b"").decode()
                table.put(msg, key, table.get(key, 0) + 1)
                out.send(OUTPUT, msg.value, msg.key)
                if hold and msg.value == b"hold" and not release.is_set():
                    blocked.set()
                    await release.wait()  # the fetch outlasts the revocation's wait

            return Processor(
                transport,
                group=GROUP,
                topics=[SOURCE],
                handle=handle,
                stores=[table],
                outputs=[OUTPUT],
                exactly_once=True,
                revoke_fetch_wait_s=REVOKE_WAIT_S,
            )

        _long_polls(transports[0], long_polls, long_poll_waits)
        tables = [Table("fence.counts", source=SOURCE) for _ in range(2)]
        a = instance(transports[0], tables[0], hold=True)
        b = instance(transports[1], tables[1], hold=False)
        stop = asyncio.Event()
        for transport in transports:
            await transport.start()
        runs = [asyncio.create_task(a.run(stop))]
        try:
            await _wait_committed(bootstrap, RECORDS)  # a has the group to itself
            # A record whose fetch a holds up; its next poll waits, so it serves the
            # revocation when b joins, which gives up on the fetch and fences.
            long_polls.set()
            await _wait(long_poll_waits.is_set, "a's fetch to wait long")
            await asyncio.to_thread(send, "hold", "a", 0)
            await _wait(blocked.is_set, "a's fetch of the held record")
            runs.append(asyncio.create_task(b.run(stop)))
            await _wait(lambda: a.fenced > 0, "the revocation to give up on a's fetch")
            long_polls.clear()
            release.set()
            # Ends a's long poll whichever partition the group gave it back.
            await asyncio.to_thread(send, "wake", "b", 1)
            await _wait_committed(bootstrap, RECORDS + 2)
            outputs = await transports[0].read_topic(OUTPUT)

            def counts() -> dict[str, int]:
                return {k: v for t in tables for k, v in t.items()}

            # The group may still be settling (a's new consumer joined): the tables are
            # complete once each partition has its owner again, restored.
            deadline = time.monotonic() + WAIT_S_MAX
            while len(a.owned | b.owned) < PARTITIONS or counts() != expected:
                if time.monotonic() > deadline:
                    assert counts() == dict(expected), "the counts of every record, once"
                await asyncio.sleep(0.05)
        finally:
            release.set()
            stop.set()
            await asyncio.gather(*runs)
            for transport in transports:
                await transport.stop()

        sent = Counter(m.value for m in outputs)
        values = [str(i).encode() for i in range(RECORDS)] + [b"hold", b"wake"]
        assert sent == Counter(values), "each record's output committed once"
        assert a.aborted_fetches == 1

    asyncio.run(scenario())
