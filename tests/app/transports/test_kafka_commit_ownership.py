"""The Kafka consumer never commits an offset from an earlier ownership of a partition.

A pipelined output can be delivered long after its record was read: by then the partition may
have gone to another member (which committed further) and come back. The late delivery's
commit must not move the group's offset backwards over the other member's (found in review of
the pipelined outputs). No broker is needed: the consumer's poll is replaced by a scripted one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from shoal.app.transports.kafka_consumer import KafkaConsumer


class _Record:
    """What librdkafka's poll hands back for one record."""

    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"v"

    def headers(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)


class _Revoked:
    def __init__(self, topic: str, partition: int) -> None:
        self.topic, self.partition = topic, partition


def test_a_commit_from_an_earlier_ownership_of_a_partition_is_dropped() -> None:
    consumer = KafkaConsumer({"bootstrap.servers": "127.0.0.1:1"}, ["orders"], "billing")
    polls: list[list[Any]] = [
        [_Record("orders", 0, 0), _Record("orders", 0, 1), _Record("orders", 0, 2)],
        [_Record("orders", 0, 5), _Record("orders", 0, 6)],
        [],
    ]
    consumer._consume = lambda max_records, timeout_s: polls.pop(0)  # type: ignore[method-assign]
    sent: list[dict[tuple[str, int], int]] = []
    consumer._commit_now = lambda tps, synchronous: sent.append(  # type: ignore[method-assign]
        {(tp.topic, tp.partition): tp.offset for tp in tps}
    )

    async def scenario() -> None:
        first = await consumer.fetch(10, 0.1)
        assert [m.offset for m in first] == [0, 1, 2]
        await consumer.commit({("orders", 0): 1})  # this ownership: sent
        # The partition goes to another member, which commits 5; it comes back, read from 5.
        consumer._take_back(None, [_Revoked("orders", 0)], lost=False)
        await consumer.commit({("orders", 0): 3})  # not owned now: dropped
        second = await consumer.fetch(10, 0.1)
        assert [m.offset for m in second] == [5, 6]
        await consumer.commit({("orders", 0): 2})  # the old reading's late output: dropped
        await consumer.commit({("orders", 0): 7})  # this reading: sent

    asyncio.run(scenario())
    consumer._executor.shutdown(wait=True)
    assert sent == [{("orders", 0): 1}, {("orders", 0): 7}]
    assert consumer._to_commit == {("orders", 0): 7}
