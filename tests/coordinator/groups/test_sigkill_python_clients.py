"""The group scenario with a SIGKILLed member, for aiokafka and for kafka-python.

Three consumers of one group, each in its own process (python_client_child.py), split a
6-partition topic 2/2/2; one is SIGKILLed, so it sends no LeaveGroup and only its session
timeout can tell the broker; the two survivors must own all six partitions within
session.timeout.ms + 5 s, and every record, produced before or after the kill, must be consumed
by someone (each child commits only after reporting what it processed).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from shoal.embedded import EmbeddedBroker
from tests.coordinator.groups.clients import ChildConsumer, wait_until
from tests.support.broker import create_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # SIGKILLed client processes

CHILD = Path(__file__).with_name("python_client_child.py")
PARTITIONS = 6
SESSION_TIMEOUT_MS = 6000
"""The broker's default group.min.session.timeout.ms: as short as it allows."""
TAKEOVER_BOUND_S = SESSION_TIMEOUT_MS / 1000 + 5
"""The issue's bound: survivors own every partition within session.timeout.ms + 5 s."""
PATIENCE_S = 40.0
"""Bound for things with no stated deadline (first joins, consuming everything)."""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    directory = tmp_path_factory.mktemp("python-sigkill")
    with EmbeddedBroker(str(directory), group_initial_rebalance_delay_ms=300) as embedded:
        yield embedded


def _produce(bootstrap: str, topic: str, values: list[str]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i, value in enumerate(values):
        producer.produce(topic, value.encode(), partition=i % PARTITIONS)
    assert producer.flush(30) == 0


def _pause() -> None:
    time.sleep(0.1)


@pytest.mark.parametrize("client", ["aiokafka", "kafka-python"])
def test_three_consumers_split_and_survive_a_sigkill(broker: EmbeddedBroker, client: str) -> None:
    topic = group = f"sigkill-{client}"
    create_topic(broker, topic, PARTITIONS)
    first = [f"{topic}-{i}" for i in range(300)]
    _produce(broker.bootstrap_servers, topic, first)
    config = {"session_timeout_ms": SESSION_TIMEOUT_MS, "heartbeat_interval_ms": 500}
    children = [
        ChildConsumer(
            broker.bootstrap_servers, group, topic, config, script=CHILD, extra={"client": client}
        )
        for _ in range(3)
    ]
    try:

        def owned(members: list[ChildConsumer]) -> list[list[int]]:
            return [member.snapshot()[0] for member in members]

        def exited() -> list[int | None]:
            return [child.process.poll() for child in children]

        def split_evenly() -> bool:
            now = owned(children)
            return sorted(map(len, now)) == [2, 2, 2] and sorted(itertools.chain(*now)) == list(
                range(PARTITIONS)
            )

        assert wait_until(split_evenly, PATIENCE_S, _pause), (
            f"{client}: never split 2/2/2 in {PATIENCE_S}s: owned {owned(children)}, "
            f"exit codes {exited()}"
        )

        victim, survivors = children[0], children[1:]
        victim.kill()  # SIGKILL: no LeaveGroup, the broker must notice the silence itself
        killed_at = time.monotonic()

        def survivors_own_all() -> bool:
            return sorted(itertools.chain(*owned(survivors))) == list(range(PARTITIONS))

        assert wait_until(survivors_own_all, TAKEOVER_BOUND_S, _pause), (
            f"{client}: survivors own {owned(survivors)} "
            f"{time.monotonic() - killed_at:.1f}s after the kill (bound {TAKEOVER_BOUND_S}s); "
            f"exit codes {exited()}"
        )

        second = [f"{topic}-{i}" for i in range(300, 600)]
        _produce(broker.bootstrap_servers, topic, second)
        expected = set(first + second)

        def consumed() -> set[str]:
            return set(itertools.chain.from_iterable(c.snapshot()[1] for c in children))

        assert wait_until(lambda: expected <= consumed(), PATIENCE_S, _pause), (
            f"{client}: {len(expected - consumed())} of {len(expected)} records never consumed "
            f"(e.g. {sorted(expected - consumed())[:5]}); survivors own {owned(survivors)}, "
            f"exit codes {exited()}"
        )
    finally:
        for child in children:
            child.kill()
