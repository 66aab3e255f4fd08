"""Queues on the in-process memory transport (``queue=True`` in unit tests, TestApp): a
share group in miniature.

Each (group, topic, partition) keeps which records are in flight (handed to a consumer, not
settled), which were released (delivered again before new ones), how often each was delivered,
and where new records start. Any number of consumers of a group share every partition. There
is no lock timeout: a consumer that closes releases what it did not settle, which is how a
test shows a crashed instance's records coming back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import weakref
from dataclasses import dataclass, field
from typing import Protocol

from shoal.app.message import Message
from shoal.app.transport import Acknowledgement, TopicPartition, TransportError

ALL_PARTITIONS = -1


class QueueTopics(Protocol):
    """What a queue needs of shoal.app.transports.memory.MemoryBroker (which imports this
    module, so it is named by its shape here)."""

    def topic(self, name: str) -> list[list[Message]]: ...

    async def wait_for_append(self, timeout_s: float) -> None: ...


@dataclass
class QueueState:
    """One partition of one group's queue."""

    next_offset: int = 0
    released: set[int] = field(default_factory=set)
    in_flight: set[int] = field(default_factory=set)
    deliveries: dict[int, int] = field(default_factory=dict)


QUEUES: weakref.WeakKeyDictionary[QueueTopics, dict[tuple[str, TopicPartition], QueueState]] = (
    weakref.WeakKeyDictionary()
)
"""Queue state by memory broker, kept beside it (it knows nothing of queues) and gone with it."""


def _state(broker: QueueTopics, group: str, tp: TopicPartition) -> QueueState:
    states = QUEUES.setdefault(broker, {})
    return states.setdefault((group, tp), QueueState())


class MemoryQueueConsumer:
    def __init__(self, broker: QueueTopics, topics: list[str], group: str) -> None:
        self._broker = broker
        self._topics = topics
        self._group = group
        self._in_flight: list[Message] = []
        self._paused = False
        self._started = False

    async def start(self) -> None:
        for topic in self._topics:
            self._broker.topic(topic)
        self._started = True

    def _take(self, max_records: int) -> list[Message]:
        out: list[Message] = []
        for topic in self._topics:
            for partition, log in enumerate(self._broker.topic(topic)):
                state = _state(self._broker, self._group, (topic, partition))
                offsets = sorted(state.released)
                offsets += range(state.next_offset, len(log))
                for offset in offsets[: max_records - len(out)]:
                    state.released.discard(offset)
                    state.next_offset = max(state.next_offset, offset + 1)
                    state.in_flight.add(offset)
                    count = state.deliveries[offset] = state.deliveries.get(offset, 0) + 1
                    out.append(dataclasses.replace(log[offset], delivery_count=count))
        return out

    async def fetch(self, max_records: int, timeout_s: float) -> list[Message]:
        if self._paused:
            await asyncio.sleep(timeout_s)
            return []
        if self._in_flight:
            raise TransportError("fetch before the last fetch's records were settled")
        records = self._take(max_records)
        if not records:
            await self._broker.wait_for_append(timeout_s)
            records = self._take(max_records)
        self._in_flight = list(records)
        return records

    async def settle(self, outcomes: list[tuple[Message, Acknowledgement]]) -> None:
        settled = {(m.topic, m.partition, m.offset): kind for m, kind in outcomes}
        for message in self._in_flight:
            kind = settled.get((message.topic, message.partition, message.offset))
            state = _state(self._broker, self._group, (message.topic, message.partition))
            state.in_flight.discard(message.offset)
            if kind is None or kind is Acknowledgement.RELEASE:
                state.released.add(message.offset)  # unsettled: the safe outcome is again
        self._in_flight = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Queues keep no consumer offsets: :meth:`settle` makes the progress."""

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def assignment(self) -> list[TopicPartition]:
        return [(t, ALL_PARTITIONS) for t in self._topics] if self._started else []

    async def lag(self) -> dict[TopicPartition, int]:
        return {}

    async def close(self) -> None:
        """Records fetched and not settled go back to the queue (as when a share consumer
        leaves its group), to be delivered again."""
        await self.settle([])
        self._started = False
