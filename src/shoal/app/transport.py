"""The one I/O seam of the framework: a transport moves bytes; the App does everything else.

Every transport passes ``tests/app/transports/transport_suite.py``. Offsets handed to
``commit`` are the *next* offsets to read, as in Kafka.

Work-queue systems (RabbitMQ, Redis Streams, NATS JetStream) fit the same shape: a consumer
numbers the deliveries it hands out (``Message.partition``/``offset`` are then per-consumer
sequence numbers, with the system's own id in a header), and ``commit`` acknowledges every
delivery below the committed offset. The App only ever commits contiguous completed runs, so
"everything below" is exactly "everything finished".
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

from shoal.app.message import Headers, Message
from shoal.topic_partition import TopicPartition as TopicPartition


class TransportError(Exception):
    """The transport failed to send, fetch or commit (translated from the client's errors)."""


class TransportBusy(TransportError):
    """The transport's send queue is full for now (librdkafka's "Queue full"): back-pressure,
    not a failure of the record. :func:`send_when_room` waits for room instead."""


QUEUE_FULL_WAIT_S: Final = 60.0
"""How long a send waits for room in a full send queue before it fails (a broker that accepts
nothing for that long is a failure the retry policy should see)."""
QUEUE_FULL_PAUSE_MAX_S: Final = 0.05


class TransportConsumer(Protocol):
    async def start(self) -> None: ...

    async def fetch(self, max_records: int, timeout_s: float) -> list[Message]:
        """Up to ``max_records`` records, waiting at most ``timeout_s`` for the first one.

        While paused, returns no records (after waiting up to ``timeout_s``) but keeps the
        consumer alive: a paused Kafka consumer still polls, so it keeps its group membership.
        """
        ...

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...

    def pause(self) -> None:
        """Stop delivering records (an open circuit breaker) without leaving the group."""
        ...

    def resume(self) -> None: ...

    def assignment(self) -> list[TopicPartition]:
        """The partitions this consumer currently owns ([] before the first assignment)."""
        ...

    async def lag(self) -> dict[TopicPartition, int]:
        """Records not yet committed, per owned partition; {} where the system cannot tell."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class PipelinedSend(Protocol):
    """An optional capability: a transport that queues a record at once and reports its
    delivery later (the Kafka producer), so a subscriber's outputs need not be awaited one by
    one: the record's offset is committed only once the returned future succeeded."""

    def send_nowait(
        self, topic: str, value: bytes, key: bytes | None, headers: Headers
    ) -> asyncio.Future[None]:
        """Queue the record and return its delivery's future; TransportError at once when it
        cannot even be queued (TransportBusy while the queue is full)."""
        ...


async def send_when_room(
    sender: PipelinedSend, topic: str, value: bytes, key: bytes | None, headers: Headers
) -> asyncio.Future[None]:
    """``sender.send_nowait``, waiting (up to QUEUE_FULL_WAIT_S) while its queue is full: the
    queue is shared by every publisher of the app, and many pipelined subscribers can fill it
    with outputs in flight; a record that finds it full is not a failed record (retried, then
    dead-lettered), it waits for deliveries to make room."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + QUEUE_FULL_WAIT_S
    pause = 0.001
    while True:
        try:
            return sender.send_nowait(topic, value, key, headers)
        except TransportBusy:
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, QUEUE_FULL_PAUSE_MAX_S)


async def wait_all(futures: Sequence[asyncio.Future[Any]]) -> None:
    """Wait for every future, in order; raise the first failure met. What
    ``asyncio.gather(*futures)`` does for sends, without its cost per future (a done callback
    on each, and a loop call as each settles: a quarter of a feed's CPU per record at tens
    of thousands a second); a future already settled costs no suspension. Unlike gather, a
    failure is raised once the futures before it have settled. The failures of the futures
    after it are retrieved as they come (asyncio would log each as never retrieved)."""
    for index, future in enumerate(futures):
        try:
            await future
        except BaseException:
            for rest in futures[index + 1 :]:
                rest.add_done_callback(_retrieve)
            raise


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


@runtime_checkable
class DelayedSend(Protocol):
    """An optional capability: a transport that can hold a record back until it is due (Redis
    Streams, RabbitMQ). Retry topics use it when the transport has it; elsewhere the consumer
    of the retry topic waits for the record's due time itself."""

    async def send_delayed(
        self, topic: str, value: bytes, key: bytes | None, headers: Headers, delay_ms: int
    ) -> None:
        """Add the record to ``topic`` once ``delay_ms`` has passed."""
        ...


class Transport(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, topic: str, value: bytes, key: bytes | None, headers: Headers) -> None:
        """Return once the record is durably accepted (acks=all on Kafka)."""
        ...

    async def ensure_topics(self, topics: list[str], *, compacted: bool = False) -> None:
        """Create what is missing for ``topics`` (Kafka topics, queues, streams); idempotent.
        The App calls it at start for every topic it subscribes to, retries into or
        dead-letters to, so a fresh cluster works without manual set-up. ``compacted`` asks
        for a topic that keeps the last record per key (Kafka ``cleanup.policy=compact``);
        systems without compaction keep everything."""
        ...

    async def ping(self) -> None:
        """Raise TransportError unless the broker answers (the app's readiness probe)."""
        ...

    def consumer(self, topics: list[str], group: str) -> TransportConsumer: ...

    async def read_topic(self, topic: str) -> list[Message]:
        """Every record of ``topic`` present when called, all partitions, in offset order per
        partition; no group and no commit (redrive and inspection use it)."""
        ...


class TransactionalConsumer(TransportConsumer, Protocol):
    """A consumer whose handlers' sends and consumed offsets commit together (Kafka
    transactions). Between :meth:`begin` and :meth:`commit_transaction` or :meth:`abort`,
    every ``Transport.send`` made in the same task (and the tasks it starts) joins the
    transaction; a consumer whose transaction was aborted must be closed, not fetched from
    again (what it fetched since is not committed and must be read again by a new one)."""

    async def begin(self) -> None: ...

    async def commit_transaction(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit the sends since :meth:`begin` with ``offsets`` (next offsets to read) as
        this consumer's group's committed offsets, atomically; raises TransportError (the
        transaction is then aborted) when it cannot, e.g. after a rebalance fenced it."""
        ...

    async def abort(self) -> None: ...


@runtime_checkable
class TransactionalTransport(Protocol):
    """An optional capability (exactly-once subscribers, issue 14): a transport whose
    consumers can commit a handler's outputs and the consumed offsets in one transaction."""

    def transactional_consumer(self, topics: list[str], group: str) -> TransactionalConsumer: ...


class Acknowledgement(enum.IntEnum):
    """How a queue consumer settles one delivered record (Kafka's AcknowledgeType values)."""

    ACCEPT = 1
    """Processed: never delivered again."""
    RELEASE = 2
    """Not processed this time: delivered again (to any consumer), its delivery count up."""
    REJECT = 3
    """Not processable: never delivered again (Kafka archives it)."""


class QueueConsumer(TransportConsumer, Protocol):
    """A consumer of a queue (Kafka share group, issue 16): records are spread over every
    consumer of the queue without partition limits, and each one is settled on its own with an
    :class:`Acknowledgement`. Records it fetched and did not settle (a crash) are delivered
    again once the queue's lock on them times out. ``commit`` has nothing to do: queues keep no
    consumer offsets, and :meth:`settle` is how progress is made."""

    async def settle(self, outcomes: list[tuple[Message, Acknowledgement]]) -> None:
        """Settle every record of the last fetch (each exactly once), durably, before the
        next fetch. An outcome the queue refuses (the record's lock had expired, so it was
        delivered elsewhere) is logged, not raised: at-least-once holds either way."""
        ...


@runtime_checkable
class QueueTransport(Protocol):
    """An optional capability (``queue=True`` subscribers): a transport with queues whose
    consumers acknowledge records one by one."""

    def queue_consumer(self, topics: list[str], group: str) -> QueueConsumer: ...


@dataclass(frozen=True, slots=True)
class DeliveryLimit:
    """A queue's own limit on deliveries of one record (see :class:`QueueDeliveryLimits`)."""

    deliveries: int
    """The queue gives a record up after this many deliveries."""
    setting: str
    """Where the limit comes from, e.g. "the broker's share.delivery.count.limit for the group"."""
    outcome: str
    """What the queue does with a record past it, e.g. "archived by the broker"."""
    remedy: str
    """How to raise it."""


@runtime_checkable
class QueueDeliveryLimits(Protocol):
    """An optional capability of a transport with queues that stop delivering a record after a
    number of deliveries of their own (Kafka's ``share.delivery.count.limit``, RabbitMQ's
    ``x-delivery-limit``, JetStream's ``max_deliver``): the App checks a queue subscriber's
    ``retry.max_attempts`` against it at start."""

    async def queue_delivery_limit(self, group: str, attempts: int) -> DeliveryLimit | None:
        """The limit of the queue of ``group`` (None: none, or not known); ``attempts``, the
        deliveries the App wants, is for the remedy's wording."""
        ...


class RebalanceListener(Protocol):
    """Told by a consumer when its group moves partitions (issue 20: stream processors keep
    per-partition state). A Kafka consumer calls these from inside its poll, before it hands
    out a record of the new assignment and before a revoked partition can reach another
    member (the eager protocol), and waits for them: what they do is done in time."""

    async def partitions_assigned(self, partitions: list[TopicPartition]) -> None:
        """``partitions`` are this consumer's now: restore their state before their records."""
        ...

    async def partitions_revoked(
        self, partitions: list[TopicPartition], *, lost: bool
    ) -> dict[TopicPartition, int]:
        """``partitions`` go to another member: finish with them and return the next offsets
        to commit for them before they go ({} for none). ``lost``: the group already gave
        them away (this member was too slow or cut off), nothing can be committed."""
        ...
