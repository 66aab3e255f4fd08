"""``@app.subscriber(..., exactly_once=True)``: on a Kafka transport each fetch's outputs and
consumed offsets commit in one transaction (seen by a read_committed consumer and in the
group's committed offsets), in-place retries and the DLQ included; on a transport without
transactions the app refuses to start."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, TopicPartition

from shoal import App, Retry
from shoal.app.transport import TransportError
from shoal.embedded import EmbeddedBroker
from tests.app.transports.transport_suite import run, wait_until
from tests.broker.transactions.clients import read_all

pytestmark = pytest.mark.integration


@pytest.fixture
def shoal_broker(shoal_broker_factory: Callable[..., EmbeddedBroker]) -> EmbeddedBroker:
    """No initial rebalance delay (as the Kafka peer runs): the default 3 s held back each
    group's first join, and every join after a restart into an emptied group."""
    return shoal_broker_factory(group_initial_rebalance_delay_ms=0)


INPUTS = 12
POISON = 7
FIRST_WAVE = 6
"""Inputs 0-5: no poison among them, so each is handled once (0 and 5 after one failure)."""


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_outputs_and_offsets_commit_in_one_transaction(
    shoal_broker: EmbeddedBroker, protocol: str
) -> None:
    """Through a classic group and a KIP-848 one (group.protocol=consumer, whose members'
    transactional commits are checked by member epoch)."""
    source, out, group = f"in-{uuid.uuid4()}", f"out-{uuid.uuid4()}", f"eos-{protocol}"
    handled: list[int] = []
    failed_once: set[int] = set()

    async def scenario() -> None:
        app = App(f"kafka://{shoal_broker.bootstrap_servers}?group.protocol={protocol}")

        @app.subscriber(
            source, group=group, output=out, exactly_once=True, retry=Retry(base_delay_ms=1)
        )
        async def double(n: int) -> int:
            if n == POISON:
                handled.append(n)
                raise ValueError("never works")  # dead-lettered, inside the transaction
            if n % 5 == 0 and n not in failed_once:
                failed_once.add(n)  # fails once, retried in place: still one output
                raise RuntimeError("transient")
            handled.append(n)
            return n * 2

        async with app:
            # Two waves, so that at least two transactions commit offsets: the second
            # commit is the one a wrong member check refuses.
            for n in range(FIRST_WAVE):
                await app.publish(source, n, key=f"k{n % 3}")
            await wait_until(lambda: len(handled) >= FIRST_WAVE, "the first wave handled")
            for n in range(FIRST_WAVE, INPUTS):
                await app.publish(source, n, key=f"k{n % 3}")
            await wait_until(lambda: len(handled) == INPUTS + 2, "every input handled")
            await asyncio.sleep(0)

    run(scenario())
    outputs = read_all(shoal_broker, out, "read_committed", INPUTS - 1, partitions=1)
    assert sorted(int(v) for v in outputs) == [n * 2 for n in range(INPUTS) if n != POISON]
    dead = read_all(shoal_broker, f"{source}.dlq", "read_committed", 1, partitions=1)
    assert [int(v) for v in dead] == [POISON]
    consumer = Consumer({"bootstrap.servers": shoal_broker.bootstrap_servers, "group.id": group})
    try:
        partitions = consumer.list_topics(source, timeout=10).topics[source].partitions
        committed = consumer.committed([TopicPartition(source, p) for p in partitions], timeout=10)
        ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in committed]
        out_end = consumer.get_watermark_offsets(TopicPartition(out, 0), timeout=10)[1]
    finally:
        consumer.close()
    assert [tp.offset for tp in committed] == ends  # every input's offset committed
    assert sum(ends) == INPUTS
    # The outputs were written in transactions: their COMMIT markers take offsets too.
    assert out_end > INPUTS - 1


def test_a_transport_without_transactions_refuses_exactly_once() -> None:
    app = App("memory://")

    @app.subscriber("in", group="g", exactly_once=True)
    async def handle(n: int) -> None:
        del n

    async def scenario() -> None:
        with pytest.raises(TransportError, match="exactly_once=True needs a Kafka transport"):
            await app.start()

    run(scenario())
