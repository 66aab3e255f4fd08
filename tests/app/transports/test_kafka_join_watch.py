"""The join watch of the Kafka transport's consumer (issue 21): a consumer stuck on its way into
its group (librdkafka waiting in join state ``wait-metadata`` for a Metadata answer lost with a
killed broker) fails its fetch after a bounded time, so the App replaces it."""

from __future__ import annotations

import asyncio
import json
import uuid

import confluent_kafka
import pytest
from confluent_kafka.cimpl import NewTopic

from shoal.app.transport import TransportError
from shoal.app.transports.kafka_consumer import KafkaConsumer
from shoal.app.transports.kafka_join_watch import (
    STALL_S,
    JoinStalled,
    JoinWatch,
    leaves_partitions_unstarted,
)
from shoal.embedded import EmbeddedBroker

JOIN_WAIT_S = 30.0
"""Bound on a consumer's first join to a fresh group on the in-process broker."""


def stats(join_state: str) -> str:
    """The part of librdkafka's statistics the watch reads, in librdkafka's layout."""
    return json.dumps(
        {
            "name": "rdkafka#consumer-1",
            "brokers": {},
            "cgrp": {"state": "up", "join_state": join_state},
        }
    )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_join_waiting_for_metadata_longer_than_allowed_is_reported() -> None:
    clock = Clock()
    watch = JoinWatch("orders", clock=clock)
    watch.on_stats(stats("wait-metadata"))
    clock.now += STALL_S["wait-metadata"]
    watch.on_stats(stats("wait-metadata"))  # the same state reported again: not a new start
    watch.check()  # at the limit: still allowed
    clock.now += 1.0
    watch.on_stats(stats("wait-metadata"))
    with pytest.raises(JoinStalled, match=r"'orders'.*'wait-metadata' for 16 s"):
        watch.check()


def test_only_reports_decide_a_stale_report_never_does() -> None:
    """A user's statistics.interval.ms longer than the allowed time: one report of
    ``wait-metadata``, then none for a minute. The consumer may have joined a moment after that
    report: it is judged on its next report, not replaced on an old one."""
    clock = Clock()
    watch = JoinWatch("orders", clock=clock)
    watch.on_stats(stats("wait-metadata"))
    clock.now += 60.0
    watch.check()  # no report since the first: nothing shows it stayed
    watch.on_stats(stats("steady"))  # the next report: it had joined
    clock.now += 60.0
    watch.check()
    watch.on_stats(stats("wait-metadata"))
    clock.now += 60.0
    watch.on_stats(stats("wait-metadata"))  # reported twice, a minute apart: stuck
    with pytest.raises(JoinStalled, match=r"'wait-metadata' for 60 s"):
        watch.check()


def test_a_state_change_restarts_the_count_and_unwatched_states_never_stall() -> None:
    clock = Clock()
    watch = JoinWatch("orders", clock=clock)
    watch.check()  # no statistics yet
    watch.on_stats(stats("wait-metadata"))
    clock.now += STALL_S["wait-metadata"] - 1
    watch.on_stats(stats("wait-join").encode())  # bytes as well as str
    watch.on_stats(stats("wait-metadata"))
    clock.now += STALL_S["wait-metadata"] - 1
    watch.check()
    watch.on_stats(stats("steady"))
    clock.now += 3600.0
    watch.check()
    states = [watch.join_state]
    watch.on_stats(json.dumps({"name": "rdkafka#producer-1", "brokers": {}}))  # no group
    states.append(watch.join_state)
    watch.check()
    assert states == ["steady", None]


def test_a_real_consumer_reports_its_join_state_and_a_stall_fails_its_fetch(
    shoal_broker: EmbeddedBroker,
) -> None:
    """librdkafka's own statistics drive the watch (its layout is what the regex reads), and a
    stall surfaces as the TransportError on which the App's runner starts a new consumer. The
    stall is forced by allowing no time in the state every joined consumer is in."""
    topic, group = f"join-watch-{uuid.uuid4().hex[:8]}", "join-watch"
    admin = confluent_kafka.admin.AdminClient({"bootstrap.servers": shoal_broker.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 1)])[topic].result(10)
    config = {"bootstrap.servers": shoal_broker.bootstrap_servers}
    joined = KafkaConsumer(config, [topic], group)
    stuck = KafkaConsumer(config, [topic], f"{group}-2", join_stall_s={"steady": 0.0})

    async def scenario() -> None:
        await joined.start()
        await stuck.start()
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + JOIN_WAIT_S
            while joined._join_watch.join_state != "steady":
                assert loop.time() < deadline, "the consumer never joined its group"
                await joined.fetch(10, 0.1)
            with pytest.raises(TransportError, match=r"'join-watch-2'.*'steady'"):
                while loop.time() < deadline:
                    await stuck.fetch(10, 0.1)
        finally:
            await joined.close()
            await stuck.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("text", "unstarted"),
    [
        # librdkafka's three texts (rdkafka_assignment.c) after an OffsetFetch for a new
        # assignment failed for good: the partitions are never started.
        ('Failed to fetch committed offset for group "g" topic t [0]: Broker: Not coordinator',
         True),
        ('Failed to fetch committed offsets for 3 partition(s) in group "g": Local: Broker '
         "transport failure", True),
        ('Failed to fetch committed offsets for partitions in group "g": Local: Timed out', True),
        # Errors librdkafka recovers from itself: the consumer is kept.
        ("Subscribed topic not available: t: Broker: Unknown topic or partition", False),
        ("127.0.0.1:9092/1: Disconnected (after 20ms in state UP)", False),
    ],
)  # fmt: skip
def test_a_consumer_error_that_leaves_partitions_unstarted_is_told_apart(
    text: str, unstarted: bool
) -> None:
    """Real KafkaError values with librdkafka's texts: only those after which librdkafka never
    starts the assigned partitions make the App replace the consumer (the orders saga on the
    3-broker cluster once left the shipping group stable with its partitions unread)."""
    error = confluent_kafka.KafkaError(confluent_kafka.KafkaError._TRANSPORT, text)
    assert leaves_partitions_unstarted(error) is unstarted
