"""What a subscriber commits on Kafka, checked with the group's committed offsets on a real
broker: past transaction markers (offsets no record holds), and never backwards when a
partition goes to another instance and comes back."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator

import confluent_kafka
import confluent_kafka.admin
import pytest

from shoal.app import App
from shoal.app.message import Message
from shoal.app.resilience.dlq import dlq_topic
from shoal.app.resilience.retry import Retry
from shoal.embedded import EmbeddedBroker

pytestmark = pytest.mark.integration

PARTITIONS = 2
WAIT_S_MAX = 60.0
"""A bound on a hang, not a timing."""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    data = tmp_path_factory.mktemp("committed")
    with EmbeddedBroker(
        str(data), num_partitions=PARTITIONS, group_initial_rebalance_delay_ms=0
    ) as b:
        yield b


def committed_and_ends(bootstrap: str, group: str, topic: str) -> tuple[list[int], list[int]]:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = [confluent_kafka.TopicPartition(topic, p) for p in range(PARTITIONS)]
        committed = [tp.offset for tp in consumer.committed(tps, timeout=10)]
        ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps]
        return committed, ends
    finally:
        consumer.close()


async def until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S_MAX
    while not done():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


def subscriber(bootstrap: str, topic: str, seen: list[tuple[int, int]]) -> App:
    app = App(f"kafka://{bootstrap}?heartbeat.interval.ms=200", name="committed", lag_interval_s=0)

    @app.subscriber(topic, group=f"{topic}.g", dlq=False)
    async def handle(value: bytes, msg: Message) -> None:
        seen.append((msg.partition, msg.offset))

    return app


def test_commits_pass_over_transaction_markers(broker: EmbeddedBroker) -> None:
    topic = "committed-txn"
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": broker.bootstrap_servers, "transactional.id": "committed-txn"}
    )
    producer.init_transactions()
    for _ in range(3):  # each transaction ends with a marker: an offset no record holds
        producer.begin_transaction()
        for i in range(5):
            producer.produce(topic, b"%d" % i, partition=0)
        producer.commit_transaction()
    seen: list[tuple[int, int]] = []

    async def scenario() -> None:
        async with subscriber(broker.bootstrap_servers, topic, seen):
            await until(lambda: len(seen) == 15, "every record handled")
            last = max(o for _, o in seen)
            await until(
                lambda: (
                    committed_and_ends(broker.bootstrap_servers, f"{topic}.g", topic)[0][0] > last
                ),
                "the commit passed the last record",
            )

    asyncio.run(scenario())


def test_a_partition_that_comes_back_is_committed_again_and_never_backwards(
    broker: EmbeddedBroker,
) -> None:
    topic = "committed-moves"
    seen_a: list[tuple[int, int]] = []
    seen_b: list[tuple[int, int]] = []
    bootstrap = broker.bootstrap_servers
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})

    def send(start: int, count: int) -> None:
        for i in range(start, start + count):
            producer.produce(topic, b"%d" % i, partition=i % PARTITIONS)
        assert producer.flush(30) == 0

    def handled() -> int:
        return len(set(seen_a) | set(seen_b))

    async def scenario() -> None:
        a, b = subscriber(bootstrap, topic, seen_a), subscriber(bootstrap, topic, seen_b)
        await a.start()
        send(0, 40)
        await until(lambda: handled() == 40, "A handled the first 40")
        await b.start()
        sent = 40
        deadline = time.monotonic() + WAIT_S_MAX
        while not seen_b:  # until B owns a partition and handles a record of it
            assert time.monotonic() < deadline, "B never got a partition"
            send(sent, 2)
            sent += 2
            await asyncio.sleep(0.1)
        await until(lambda: handled() == sent, "A and B handled every record")
        await b.stop()  # B's partition comes back to A
        send(sent, 40)
        sent += 40
        await until(lambda: handled() == sent, "A handled the last 40")
        await until(
            lambda: (c := committed_and_ends(bootstrap, f"{topic}.g", topic))[0] == c[1],
            "A commits the partition it got back",
        )
        await a.stop()

    asyncio.run(scenario())
    committed, ends = committed_and_ends(bootstrap, f"{topic}.g", topic)
    assert committed == ends  # A's close did not write an earlier reading's offset back


def test_pipelined_outputs_keep_per_key_order_and_commit_to_the_end(
    broker: EmbeddedBroker,
) -> None:
    """An at-least-once subscriber's outputs are sent without waiting (send_nowait): one key's
    outputs still arrive in its input order (one idempotent producer keeps a partition's
    order), and the group commits every input once its output is delivered."""
    topic, out = "committed-pipelined", "committed-pipelined.out"
    keys, per_key = [f"k{i}" for i in range(8)], 25
    bootstrap = broker.bootstrap_servers
    app = App(f"kafka://{bootstrap}", name="pipelined", lag_interval_s=0)

    @app.subscriber(topic, group=f"{topic}.g", output=out, concurrency=8, dlq=False)
    async def forward(value: dict[str, int], msg: Message) -> dict[str, int]:
        await asyncio.sleep(0)  # let the lanes interleave
        return value

    async def scenario() -> None:
        async with app:
            for n in range(per_key):
                for key in keys:
                    await app.publish(topic, {"n": n}, key=key)
            await until(
                lambda: (c := committed_and_ends(bootstrap, f"{topic}.g", topic))[0] == c[1],
                "every input committed",
            )
            outputs = await app.transport.read_topic(out)
        by_key: dict[bytes | None, list[int]] = {}
        for msg in outputs:
            by_key.setdefault(msg.key, []).append(json.loads(msg.value)["n"])
        assert by_key == {key.encode(): list(range(per_key)) for key in keys}

    asyncio.run(asyncio.wait_for(scenario(), WAIT_S_MAX * 2))


def test_a_pipelined_output_the_broker_refuses_takes_its_record_to_the_dlq(
    broker: EmbeddedBroker,
) -> None:
    """An output larger than its topic's max.message.bytes is refused by the broker after it
    was sent without waiting: its record is handled again with its output awaited, goes
    through its retries to the DLQ, and the group commits to the end (no consumer restarts
    forever on it)."""
    topic, out = "committed-refused", "committed-refused.out"
    bootstrap = broker.bootstrap_servers
    admin = confluent_kafka.admin.AdminClient({"bootstrap.servers": bootstrap})
    created = admin.create_topics(
        [confluent_kafka.admin.NewTopic(out, 1, config={"max.message.bytes": "1024"})]
    )
    created[out].result(timeout=10)
    app = App(f"kafka://{bootstrap}", name="refused", lag_interval_s=0)
    handled: list[int] = []

    @app.subscriber(
        topic,
        group=f"{topic}.g",
        output=out,
        retry=Retry(max_attempts=2, base_delay_ms=0, max_delay_ms=0),
    )
    async def bill(value: dict[str, int]) -> dict[str, object]:
        handled.append(value["n"])
        return {"n": value["n"], "pad": "x" * (4_096 if value["n"] == 1 else 0)}

    async def scenario() -> None:
        async with app:
            for n in range(4):
                await app.publish(topic, {"n": n}, key="one-lane")
            # One key: one partition holds every input (the other's end is 0, never committed).
            await until(
                lambda: max(committed_and_ends(bootstrap, f"{topic}.g", topic)[0]) == 4,
                "every input committed",
            )
            dead = await app.transport.read_topic(dlq_topic(topic))
            outputs = await app.transport.read_topic(out)
        assert [json.loads(m.value)["n"] for m in dead] == [1]
        assert {json.loads(m.value)["n"] for m in outputs} == {0, 2, 3}  # at least once

    asyncio.run(asyncio.wait_for(scenario(), WAIT_S_MAX * 2))
