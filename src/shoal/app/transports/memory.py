"""An in-process transport for unit tests: topics are lists, groups are committed offsets.

``memory://`` gives each App its own broker; ``memory://NAME`` shares one broker among the Apps
of a process that use the same name (:data:`NAMED_BROKERS` owns those). One consumer per group
gets every partition (no rebalancing): enough for tests of handlers, retries and DLQ; group
semantics are Kafka's job.
"""

from __future__ import annotations

import asyncio
import time
import zlib

from shoal.app.message import Headers, Message
from shoal.app.transport import TopicPartition
from shoal.app.transports.memory_queue import MemoryQueueConsumer

PARTITIONS_DEFAULT = 1


class MemoryBroker:
    def __init__(self, partitions: int = PARTITIONS_DEFAULT) -> None:
        self.partitions = partitions
        self.topics: dict[str, list[list[Message]]] = {}
        self.committed: dict[tuple[str, TopicPartition], int] = {}
        # Plain futures rather than an asyncio.Condition: a named broker outlives event loops
        # (one asyncio.run per test), and a Condition binds to the first loop that uses it.
        self._waiters: set[asyncio.Future[None]] = set()

    def topic(self, name: str) -> list[list[Message]]:
        if name not in self.topics:
            self.topics[name] = [[] for _ in range(self.partitions)]
        return self.topics[name]

    async def append(self, topic: str, value: bytes, key: bytes | None, headers: Headers) -> None:
        parts = self.topic(topic)
        # Same key, same partition: the per-key ordering the framework promises depends on it.
        partition = 0 if key is None else zlib.crc32(key) % len(parts)
        log = parts[partition]
        log.append(
            Message(topic, partition, len(log), key, value, list(headers), time.time_ns() // 10**6)
        )
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for_append(self, timeout_s: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            # asyncio.timeout, not wait_for (which on Python 3.11 can swallow a cancel).
            async with asyncio.timeout(timeout_s):
                await waiter
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(waiter)


class MemoryBrokers:
    """The named memory brokers of a process: the owner of every ``memory://NAME`` broker.

    Lifetime: a named broker is created by the first transport that names it and lives until
    :meth:`reset` (by default, as long as the process), so Apps that come and go (one
    ``asyncio.run`` per test, a service restarted in-process) find the records others left.
    Tests that want a clean slate call ``NAMED_BROKERS.reset()``; a transport keeps the broker
    it already holds.
    """

    def __init__(self) -> None:
        self._brokers: dict[str, MemoryBroker] = {}

    def get(self, name: str, partitions: int = PARTITIONS_DEFAULT) -> MemoryBroker:
        """The broker called ``name``, created with ``partitions`` if it does not exist yet
        (an existing one keeps the partition count it was created with)."""
        broker = self._brokers.get(name)
        if broker is None:
            broker = self._brokers[name] = MemoryBroker(partitions)
        return broker

    def names(self) -> list[str]:
        return list(self._brokers)

    def reset(self) -> None:
        """Forget every named broker (and so their records and committed offsets)."""
        self._brokers.clear()


NAMED_BROKERS = MemoryBrokers()
"""The process's named memory brokers (``memory://NAME``)."""


class MemoryConsumer:
    def __init__(self, broker: MemoryBroker, topics: list[str], group: str) -> None:
        self._broker = broker
        self._topics = topics
        self._group = group
        self._position: dict[TopicPartition, int] = {}
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
                tp = (topic, partition)
                if tp not in self._position:
                    self._position[tp] = self._broker.committed.get((self._group, tp), 0)
                pos = self._position[tp]
                batch = log[pos : pos + max_records - len(out)]
                out.extend(batch)
                self._position[tp] = pos + len(batch)
        return out

    async def fetch(self, max_records: int, timeout_s: float) -> list[Message]:
        if self._paused:
            await asyncio.sleep(timeout_s)
            return []
        records = self._take(max_records)
        if not records:
            await self._broker.wait_for_append(timeout_s)
            records = self._take(max_records)
        return records

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            self._broker.committed[(self._group, tp)] = offset

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def assignment(self) -> list[TopicPartition]:
        if not self._started:
            return []
        return [(t, p) for t in self._topics for p in range(len(self._broker.topic(t)))]

    async def lag(self) -> dict[TopicPartition, int]:
        return {
            (t, p): len(self._broker.topic(t)[p])
            - self._broker.committed.get((self._group, (t, p)), 0)
            for t, p in self.assignment()
        }

    async def close(self) -> None:
        self._position.clear()
        self._started = False


class MemoryTransport:
    def __init__(
        self,
        name: str = "",
        *,
        partitions: int = PARTITIONS_DEFAULT,
        brokers: MemoryBrokers = NAMED_BROKERS,
    ) -> None:
        """``name``: share the broker of that name in ``brokers``; empty: a private one."""
        self.broker = brokers.get(name, partitions) if name else MemoryBroker(partitions)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, topic: str, value: bytes, key: bytes | None, headers: Headers) -> None:
        await self.broker.append(topic, value, key, headers)

    async def ensure_topics(self, topics: list[str], *, compacted: bool = False) -> None:
        # Memory topics keep every record; compaction would only save memory in a test.
        for topic in topics:
            self.broker.topic(topic)

    async def ping(self) -> None:
        pass

    def consumer(self, topics: list[str], group: str) -> MemoryConsumer:
        return MemoryConsumer(self.broker, topics, group)

    def queue_consumer(self, topics: list[str], group: str) -> MemoryQueueConsumer:
        """A queue subscriber's consumer (issue 16): see memory_queue."""
        return MemoryQueueConsumer(self.broker, topics, group)

    async def read_topic(self, topic: str) -> list[Message]:
        return [m for log in self.broker.topic(topic) for m in log]
