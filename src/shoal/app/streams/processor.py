"""A stream processor: one consumer of a group, its state stores, and the loop that keeps
them exact across crashes and rebalances (see :mod:`shoal.app.streams.table`).

    proc = Processor(app.transport, group="bars", topics=["trades"], stores=[bars], handle=on)
    await proc.run(stop)                      # until ``stop`` is set

Per fetch: (1) partitions newly assigned are restored from their stores' changelogs and
partitions taken away are forgotten; (2) the handler runs for each record in order, changing
stores and queueing outputs (``out.send``); (3) the outputs are awaited, then the stores'
key records, then their watermark records; (4) the consumed offsets are committed. A crash at
any point leaves committed offsets at or behind the stores' state, which the stores' replay
rule makes exact. Outputs are at-least-once: a replay may send a window result again, the same
value under the same key, which a consumer can drop (give it a message id derived from the key
and window). With ``exactly_once=True`` (Kafka transports) steps 2-4 of a fetch are one
transaction, and outputs are not repeated either.

A processor SIGKILLed inside a transaction leaves it open until the transaction times out
(``transaction.timeout.ms``, 60 s): a restarted instance's read_committed restore waits for
that, as Kafka Streams' does; the transactional id is per instance, so nothing fences it sooner.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from shoal.app.message import Message
from shoal.app.streams.table import Store
from shoal.app.transport import (
    TopicPartition,
    TransactionalConsumer,
    TransactionalTransport,
    Transport,
    TransportConsumer,
    TransportError,
)

log = logging.getLogger("shoal.app.streams")

FETCH_RECORDS_MAX = 500
"""Records handled per fetch: also the most a crash can make the processor replay."""
FETCH_WAIT_S = 0.1
"""How long a fetch waits for the first record; also how soon a stop is noticed when idle."""


class Outputs:
    """Where a handler sends records: queued now, all awaited before the fetch's state is
    written (an output is never lost to a crash after the state that caused it)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._pending: list[asyncio.Task[None]] = []

    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | str | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        raw_key = key.encode() if isinstance(key, str) else key
        send = self._transport.send(topic, value, raw_key, list(headers))
        self._pending.append(asyncio.ensure_future(send))

    async def drain(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)


Handler = Callable[[Message, Outputs], Awaitable[None]]


class Processor:
    def __init__(
        self,
        transport: Transport,
        *,
        group: str,
        topics: Sequence[str],
        handle: Handler,
        stores: Sequence[Store] = (),
        outputs: Sequence[str] = (),
        fetch_records_max: int = FETCH_RECORDS_MAX,
        exactly_once: bool = False,
        start_at_ms: int | None = None,
    ) -> None:
        """``outputs``: the topics the handler sends to, created at start when missing (a
        broker may not create topics on first use: Apache Kafka's default does not).
        ``exactly_once``: each fetch's outputs, changelog records and consumed offsets commit
        in one Kafka transaction (Kafka transports only), so outputs are not repeated either;
        a fetch whose transaction aborts (a rebalance fenced it) is dropped with all local
        state, which is restored again from the committed changelogs.
        ``start_at_ms``: a replay from a point in time: source partitions this group never
        committed start at their first record timestamped at or after it (Kafka transports,
        not yet with exactly_once). Give the replay a new group and new changelog topics: the
        stores' state must come from the same records as the offsets."""
        if start_at_ms is not None and (
            exactly_once or "start_at_ms" not in inspect.signature(transport.consumer).parameters
        ):
            raise TransportError(
                f"start_at_ms needs a Kafka transport without exactly_once: "
                f"{type(transport).__name__}, exactly_once={exactly_once}"
            )
        if not topics:
            raise ValueError("a processor needs at least one topic")
        if exactly_once and not isinstance(transport, TransactionalTransport):
            raise TransportError(
                f"exactly_once=True needs a Kafka transport: {type(transport).__name__} "
                "cannot commit outputs, state and offsets in one transaction"
            )
        for store in stores:
            if store.source not in topics:
                raise ValueError(
                    f"store fed by {store.source!r} but the processor reads {list(topics)}"
                )
        self.transport = transport
        self.group = group
        self.topics = list(topics)
        self.stores = list(stores)
        self.outputs = list(outputs)
        self._handle = handle
        self._fetch_records_max = fetch_records_max
        self.exactly_once = exactly_once
        self.start_at_ms = start_at_ms
        self.aborted_fetches = 0
        self._owned: set[TopicPartition] = set()
        self.records_handled = 0
        self.assigned = asyncio.Event()
        """Set once the group has given this instance partitions (and they are restored)."""
        self.positions: dict[TopicPartition, int] = {}
        """The next offset to handle per partition, as far as this instance got."""
        self.consumer: TransportConsumer | None = None
        """The consumer of the running loop (None between consumers): lag and readiness."""
        self.subscribed = asyncio.Event()
        """Set once the first consumer has started (the App's start waits for it)."""

    @property
    def owned(self) -> frozenset[TopicPartition]:
        """The source partitions this instance owns, their state restored."""
        return frozenset(self._owned)

    async def prepare(self) -> None:
        """Create the source and output topics and the compacted changelog topics when
        missing."""
        await self.transport.ensure_topics(list(dict.fromkeys(self.topics + self.outputs)))
        changelogs = [s.changelog for s in self.stores]
        if changelogs:
            await self.transport.ensure_topics(changelogs, compacted=True)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the last fetch is handled and committed first."""
        await self.prepare()
        while not stop.is_set():
            consumer = self._new_consumer()
            await consumer.start()
            self.consumer = consumer
            self.subscribed.set()
            try:
                while not stop.is_set():
                    await self._one_fetch(consumer)
            except TransportError as exc:
                if not self.exactly_once:
                    raise
                # Aborted: what this instance holds may include the fetch's changes, and a
                # consumer whose transaction aborted must not fetch again (see transport.py).
                log.warning(
                    "%s: fetch aborted (%s); restoring from the changelogs", self.group, exc
                )
                self.aborted_fetches += 1
                self.forget_all()
            finally:
                self.consumer = None
                await consumer.close()

    def _new_consumer(self) -> TransportConsumer:
        if self.exactly_once:
            transport = cast(TransactionalTransport, self.transport)
            return transport.transactional_consumer(self.topics, self.group)
        if self.start_at_ms is not None:
            consumer: TransportConsumer = cast(Any, self.transport).consumer(
                self.topics, self.group, start_at_ms=self.start_at_ms
            )
            return consumer
        return self.transport.consumer(self.topics, self.group)

    def forget_all(self) -> None:
        """Drop the state of every owned partition (after a failure: what the stores hold may
        include a fetch that was never committed); the next assignment restores it."""
        for store in self.stores:
            store.forget({p for t, p in self._owned if t == store.source})
        self._owned = set()

    async def _one_fetch(self, consumer: TransportConsumer) -> None:
        batch = await consumer.fetch(self._fetch_records_max, FETCH_WAIT_S)
        await self._follow_assignment(set(consumer.assignment()))
        # The consumer may already have polled again (it prefetches) and lost a partition of
        # this batch in a rebalance: its state is forgotten, so its records are left to the
        # new owner (uncommitted), never applied to an empty state.
        batch = [m for m in batch if (m.topic, m.partition) in self._owned]
        if not batch:
            return
        offsets = {(m.topic, m.partition): m.offset + 1 for m in batch}
        if self.exactly_once:
            transactional = cast(TransactionalConsumer, consumer)
            await transactional.begin()
            try:
                await self._handle_batch(batch)
            except BaseException:
                await transactional.abort()
                raise
            await transactional.commit_transaction(offsets)
        else:
            await self._handle_batch(batch)
            await consumer.commit(offsets)
        self.records_handled += len(batch)
        self.positions.update(offsets)

    async def _handle_batch(self, batch: list[Message]) -> None:
        out = Outputs(self.transport)
        for msg in batch:
            await self._handle(msg, out)
        await out.drain()
        await self._write_changes()

    async def _write_changes(self) -> None:
        changes = [store.take_changes() for store in self.stores]
        for phase in (0, 1):  # key records first; watermarks only once those are durable
            sends = [
                self.transport.send(store.changelog, r.value, r.key, r.headers)
                for store, change in zip(self.stores, changes, strict=True)
                for r in change[phase]
            ]
            if sends:
                await asyncio.gather(*sends)

    async def _follow_assignment(self, owned: set[TopicPartition]) -> None:
        if owned == self._owned:
            return
        lost, gained = self._owned - owned, owned - self._owned
        for store in self.stores:
            gone = {p for t, p in lost if t == store.source}
            if gone:
                store.forget(gone)
        restoring = [s for s in self.stores if any(t == s.source for t, _ in gained)]
        changelogs: dict[str, list[Message]] = {}
        for store in restoring:
            if store.changelog not in changelogs:
                changelogs[store.changelog] = await self.transport.read_topic(store.changelog)
            partitions = {p for t, p in gained if t == store.source}
            store.restore(changelogs[store.changelog], partitions)
            log.info(
                "%s: restored %s partitions %s from %s",
                self.group,
                store.source,
                sorted(partitions),
                store.changelog,
            )
        self._owned = owned
        if owned:
            self.assigned.set()


def json_value(value: Any) -> bytes:
    """Compact JSON bytes for an output record."""
    return json.dumps(value, separators=(",", ":")).encode()
