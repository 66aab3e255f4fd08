"""A processor replaying from a point in time (``start_at_ms``, Kafka's offsets_for_times) on a
real broker: a new group starts each partition at its first record timestamped at or after
that time; once it committed, a restart resumes where it left off, not at the time again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from shoal.app.message import Message
from shoal.app.streams.processor import Outputs, Processor
from shoal.app.transport import TransportError
from shoal.app.transports.kafka import KafkaTransport
from shoal.app.transports.memory import MemoryTransport
from shoal.embedded import EmbeddedBroker

pytestmark = pytest.mark.integration

TOPIC = "replay.ticks"
PARTITIONS = 2
BASE_MS = 1_700_000_000_000
STEP_MS = 10
WAIT_S_MAX = 60.0
"""A hang guard, not a timing expectation."""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(
        str(tmp_path_factory.mktemp("replay-broker")), group_initial_rebalance_delay_ms=0
    ) as running:
        yield running


def _send(bootstrap: str, first: int, count: int) -> None:
    """Records ``first``..: value i, timestamp BASE_MS + i * STEP_MS, spread over partitions."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(first, first + count):
        producer.produce(
            TOPIC, str(i).encode(), partition=i % PARTITIONS, timestamp=BASE_MS + i * STEP_MS
        )
    assert producer.flush(30) == 0


async def _run_until(proc: Processor, handled: list[int], expected: int) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(proc.run(stop))
    deadline = time.monotonic() + WAIT_S_MAX
    while len(handled) < expected and not task.done():
        assert time.monotonic() < deadline, f"handled {len(handled)} of {expected}"
        await asyncio.sleep(0.05)
    stop.set()
    await task


def test_a_new_group_starts_at_the_time_then_resumes_from_its_commits(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    for future in admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)]).values():
        future.result(30)
    _send(broker.bootstrap_servers, 0, 100)
    start_at = BASE_MS + 40 * STEP_MS  # records 40.. on both partitions
    handled: list[int] = []

    async def handle(msg: Message, out: Outputs) -> None:
        handled.append(int(msg.value))

    async def scenario() -> None:
        transport = KafkaTransport(broker.bootstrap_servers)
        await transport.start()
        try:
            replay = Processor(
                transport, group="replay", topics=[TOPIC], handle=handle, start_at_ms=start_at
            )
            await _run_until(replay, handled, 60)
            assert sorted(handled) == list(range(40, 100))
            # A restart of the same group: its commits win over the time.
            handled.clear()
            _send(broker.bootstrap_servers, 100, 10)
            again = Processor(
                transport, group="replay", topics=[TOPIC], handle=handle, start_at_ms=start_at
            )
            await _run_until(again, handled, 10)
            assert sorted(handled) == list(range(100, 110))
        finally:
            await transport.stop()

    asyncio.run(scenario())


def test_replay_needs_a_kafka_transport_without_exactly_once(broker: EmbeddedBroker) -> None:
    async def handle(msg: Message, out: Outputs) -> None:
        pass

    with pytest.raises(TransportError, match="start_at_ms needs a Kafka transport"):
        Processor(MemoryTransport(), group="g", topics=["t"], handle=handle, start_at_ms=1)
    with pytest.raises(TransportError, match="exactly_once=True"):
        Processor(
            KafkaTransport(broker.bootstrap_servers),
            group="g",
            topics=["t"],
            handle=handle,
            start_at_ms=1,
            exactly_once=True,
        )
