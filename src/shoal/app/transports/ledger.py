"""The deliveries a work-queue consumer has handed out and not yet acknowledged.

RabbitMQ, Redis Streams and NATS JetStream hand out deliveries, not offsets. To fit the App's
offset-shaped contract (``shoal.app.transport``) each of their consumers numbers what it hands
out, per topic, from 0: ``Message.partition`` is 0 and ``Message.offset`` that number, and a
commit of next-offset ``n`` acknowledges every delivery numbered below ``n``. The App commits
only contiguous runs of finished records, so "every delivery below n" is exactly "everything
finished". The ledger does that numbering and finds what a commit settles; what a delivery is
(a RabbitMQ message, a Redis entry id, a JetStream message) and how it is acknowledged stay
with each transport.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Final, Generic, TypeVar

from shoal.app.transport import TopicPartition

T = TypeVar("T")

PARTITION: Final = 0
"""The one partition of every topic of a work-queue consumer."""


class DeliveryLedger(Generic[T]):
    """Deliveries per topic, numbered in the order they were handed out."""

    def __init__(self, topics: Iterable[str]) -> None:
        self._next: dict[str, int] = dict.fromkeys(topics, 0)
        # Insertion order is number order, so the deliveries a commit settles are a prefix.
        self._pending: dict[str, dict[int, T]] = {topic: {} for topic in self._next}

    def assignment(self) -> list[TopicPartition]:
        return [(topic, PARTITION) for topic in self._next]

    def hand_out(self, topic: str, delivery: T) -> int:
        """Number ``delivery`` (the next number of ``topic``) and hold it until settled."""
        offset = self._next[topic]
        self._next[topic] = offset + 1
        self._pending[topic][offset] = delivery
        return offset

    @contextmanager
    def settle(self, tp: TopicPartition, upto: int) -> Iterator[list[T]]:
        """The deliveries of ``tp`` numbered below ``upto``, oldest first, for the block to
        acknowledge; they are forgotten once it succeeds (a failed acknowledgement leaves
        them pending, to be handed back when the consumer closes)."""
        topic, partition = tp
        pending = self._pending.get(topic)
        if pending is None or partition != PARTITION:
            raise ValueError(f"{topic}[{partition}] is not consumed by this consumer")
        numbers: list[int] = []
        for offset in pending:
            if offset >= upto:
                break
            numbers.append(offset)
        yield [pending[offset] for offset in numbers]
        for offset in numbers:
            del pending[offset]

    def take(self, topic: str, numbers: Iterable[int]) -> list[T]:
        """Queue mode (each delivery settled on its own, not by prefix): the deliveries of
        ``topic`` numbered ``numbers``, no longer pending; numbers not pending are skipped."""
        pending = self._pending[topic]
        return [pending.pop(n) for n in numbers if n in pending]

    def pending(self, topic: str | None = None) -> list[T]:
        """The deliveries not yet settled, of ``topic`` or of every topic, oldest first."""
        topics = self._pending if topic is None else [topic]
        return [delivery for t in topics for delivery in self._pending[t].values()]

    def forget(self, topic: str | None = None) -> None:
        """Drop the pending deliveries (of ``topic``, or all): they were handed back."""
        for t in self._pending if topic is None else [topic]:
            self._pending[t].clear()
