"""``TestApp``: run an App's real handlers on a private in-memory broker, for unit tests.

    async with TestApp(app) as t:
        await t.publish("orders", Order(1, "tea"))
        await t.drain()
        assert t.records("orders.billed") ...

Everything but the transport is the App's own: decoding, retries, DLQ, breaker, idempotency,
outputs. ``drain`` waits until every subscriber has committed everything there is to read,
outputs of one handler consumed by another included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Self

from shoal.app.app import App
from shoal.app.message import Message
from shoal.app.transports.memory import MemoryTransport

DRAIN_TIMEOUT_S = 10.0


class TestApp:
    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, app: App, *, partitions: int = 1) -> None:
        self.app = app
        self.transport = MemoryTransport(partitions=partitions)
        self._undo: Callable[[], None] | None = None

    async def __aenter__(self) -> Self:
        self._undo = self.app.replace_transport(self.transport)
        try:
            await self.app.start()
        except BaseException:
            self._undo()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.app.stop()
        finally:
            if self._undo is not None:
                self._undo()

    async def publish(
        self,
        topic: str,
        value: object,
        *,
        key: bytes | str | None = None,
        headers: Mapping[str, str | bytes] | Sequence[tuple[str, bytes]] | None = None,
    ) -> str:
        return await self.app.publish(topic, value, key=key, headers=headers)

    def records(self, topic: str) -> list[Message]:
        """Every record of ``topic`` so far (outputs, retry topics, DLQs alike)."""
        return [m for log in self.transport.broker.topic(topic) for m in log]

    def dlq(self, topic: str) -> list[Message]:
        """The dead-lettered records of ``topic``."""
        sub = next((s for s in self.app.subscribers if topic in s.topics), None)
        target = sub.dlq_for(topic) if sub is not None else None
        return self.records(target or f"{topic}.dlq")

    def _pending(self) -> list[str]:
        broker = self.transport.broker
        behind = []
        for sub in self.app.subscribers:
            reads = [(sub.group, t) for t in sub.topics]
            reads += [(f"{sub.group}.retry.{n}", t) for t, n, _ in sub.retry_topics()]
            for group, topic in reads:
                for partition, log in enumerate(broker.topic(topic)):
                    done = broker.committed.get((group, (topic, partition)), 0)
                    if done < len(log):
                        behind.append(f"{group} on {topic}[{partition}]: {done}/{len(log)}")
        return behind

    async def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """Wait until every subscriber has handled and committed every record; raise
        TimeoutError naming who is behind (a handler stuck, a retry not yet due)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while behind := self._pending():
            if loop.time() > deadline:
                raise TimeoutError("still behind after drain(): " + "; ".join(behind))
            await asyncio.sleep(0.005)
