"""The group scenario (join, split, a member gone, takeover) with aiokafka and kafka-python.

These clients are driven from this process, so the member that goes away leaves by closing
(LeaveGroup). The SIGKILL case, where only the session timeout can tell, is covered for both
clients in test_sigkill_python_clients (each member in a child process), and for
confluent-kafka in test_confluent_groups.
"""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer

with warnings.catch_warnings():
    # kafka-python reads its bundled schemas with importlib.resources.read_text, deprecated
    # since Python 3.11; the warning is theirs, and this suite turns warnings into errors.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaConsumer

from shoal.embedded import EmbeddedBroker
from tests.coordinator.groups.clients import wait_until
from tests.support.broker import create_topic

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:read_text is deprecated:DeprecationWarning"),
]

PATIENCE_S = 60.0
PARTITIONS = 3


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    directory = tmp_path_factory.mktemp("python-groups")
    with EmbeddedBroker(str(directory), group_initial_rebalance_delay_ms=100) as embedded:
        yield embedded


def test_aiokafka_group_split_and_takeover(broker: EmbeddedBroker) -> None:
    topic = group = "aiokafka-group"
    create_topic(broker, topic, PARTITIONS)

    async def scenario() -> None:
        consumers = [
            AIOKafkaConsumer(
                topic,
                bootstrap_servers=broker.bootstrap_servers,
                group_id=group,
                session_timeout_ms=6000,
                heartbeat_interval_ms=500,
            )
            for _ in range(PARTITIONS)
        ]
        for consumer in consumers:
            await consumer.start()
        try:

            async def owned_until(expected: list[int]) -> list[int]:
                deadline = time.monotonic() + PATIENCE_S
                while time.monotonic() < deadline:
                    for consumer in consumers:
                        await consumer.getmany(timeout_ms=20)
                    counts = sorted(len(c.assignment()) for c in consumers)
                    if counts == expected:
                        break
                return sorted(len(c.assignment()) for c in consumers)

            assert await owned_until([1, 1, 1]) == [1, 1, 1]
            gone = consumers.pop()
            await gone.stop()
            assert await owned_until([1, 2]) == [1, 2]
        finally:
            for consumer in consumers:
                await consumer.stop()

    asyncio.run(scenario())


def test_kafka_python_group_split_and_takeover(broker: EmbeddedBroker) -> None:
    topic = group = "kafka-python-group"
    create_topic(broker, topic, PARTITIONS)
    consumers = [
        KafkaConsumer(
            topic,
            bootstrap_servers=broker.bootstrap_servers,
            group_id=group,
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
        )
        for _ in range(PARTITIONS)
    ]
    stops = [threading.Event() for _ in consumers]

    # kafka-python joins inside poll(): each consumer needs its own thread, or one member
    # blocked in JoinGroup would keep the others from rejoining.
    def run(consumer: KafkaConsumer, stop: threading.Event) -> None:
        while not stop.is_set():
            consumer.poll(timeout_ms=50)
        consumer.close()

    threads = [
        threading.Thread(target=run, args=pair) for pair in zip(consumers, stops, strict=True)
    ]
    for thread in threads:
        thread.start()
    try:

        def counts() -> list[int]:
            return sorted(len(c.assignment()) for c in consumers)

        assert wait_until(lambda: counts() == [1, 1, 1], PATIENCE_S, lambda: time.sleep(0.1))
        stops[2].set()  # the third member closes (and leaves)
        threads[2].join(timeout=PATIENCE_S)
        survivors = consumers[:2]
        assert wait_until(
            lambda: sorted(len(c.assignment()) for c in survivors) == [1, 2],
            PATIENCE_S,
            lambda: time.sleep(0.1),
        )
    finally:
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join(timeout=PATIENCE_S)
