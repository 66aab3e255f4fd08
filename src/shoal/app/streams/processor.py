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

Rebalances. On a Kafka transport the consumer tells the processor of each assignment and
revocation from inside the poll that makes it (a :class:`RebalanceListener`), and waits: a
partition assigned is restored before any of its records is handed out; a partition revoked
is let go only once the fetch in progress is handled (its changelog records written, its
offsets committed, synchronously, before another member can start on it), and its state is
dropped. From then on this instance writes nothing of it: a record of it still in a prefetched
batch is left alone, and the changelog records of a partition it no longer owns are not sent
(the fence). A revocation that cannot wait (a fetch longer than ``REVOKE_FETCH_WAIT_S``)
fences at once: that fetch then writes and commits nothing of the partition; with
``exactly_once`` its whole transaction is aborted (the outputs it sent for the fenced
partition must not commit without that partition's offsets), and the instance restores its
other partitions from their changelogs, as after any abort. A member the
group dropped without a revocation (cut off past its session timeout) may still write until
it notices; the stores' replay rule keeps the new owner's state exact regardless, and with
``exactly_once`` that zombie's transaction is refused by the group's generation (KIP-447) and
aborted with all it wrote. Transports without rebalance callbacks follow the consumer's
assignment after each fetch instead.

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
from shoal.app.streams.table import PARTITION_HEADER, ChangelogRecord, Store
from shoal.app.transport import (
    TopicPartition,
    TransactionalConsumer,
    TransactionalTransport,
    Transport,
    TransportConsumer,
    TransportError,
    wait_all,
)

log = logging.getLogger("shoal.app.streams")

FETCH_RECORDS_MAX = 500
"""Records handled per fetch: also the most a crash can make the processor replay."""
FETCH_WAIT_S = 0.1
"""How long a fetch waits for the first record; also how soon a stop is noticed when idle."""
REVOKE_FETCH_WAIT_S = 30.0
"""How long a revocation waits for the fetch in progress to finish (its state written, its
offsets committed) before fencing the partitions instead; below the Kafka consumer's own
bound on the wait (kafka_consumer.REVOKE_WAIT_S)."""


class Outputs:
    """Where a handler sends records: queued now, all awaited before the fetch's state is
    written (an output is never lost to a crash after the state that caused it)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._pending: list[asyncio.Future[None]] = []
        # A transport that can produce at once (Kafka) saves a coroutine and a task per output.
        self._send_nowait: Callable[..., asyncio.Future[None]] | None = getattr(
            transport, "send_nowait", None
        )

    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | str | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        raw_key = key.encode() if isinstance(key, str) else key
        if self._send_nowait is not None:
            try:
                sent = self._send_nowait(topic, value, raw_key, list(headers))
            except TransportError as exc:
                # Raised where send's task would: at drain, failing the fetch, not the handler
                # (whose retry policy is for its own failures).
                sent = asyncio.get_running_loop().create_future()
                sent.set_exception(exc)
            self._pending.append(sent)
            return
        send = self._transport.send(topic, value, raw_key, list(headers))
        self._pending.append(asyncio.ensure_future(send))

    async def drain(self) -> None:
        pending, self._pending = self._pending, []
        await wait_all(pending)


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
        revoke_fetch_wait_s: float = REVOKE_FETCH_WAIT_S,
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
        stores' state must come from the same records as the offsets.
        ``revoke_fetch_wait_s``: how long a revocation waits for the fetch in progress before
        fencing (see :meth:`partitions_revoked`); tests shorten it."""
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
        self._fetch_lock = asyncio.Lock()
        """Held while a fetch is handled and while partitions move (rebalance callbacks), so
        a partition never moves in the middle of a fetch that handles it."""
        self._listening = False
        """The consumer tells this processor of rebalances (Kafka): ownership follows its
        callbacks; otherwise it follows the consumer's assignment after each fetch."""
        self._rebalance_error: BaseException | None = None
        self._revoke_fetch_wait_s = revoke_fetch_wait_s
        self.fenced = 0
        """Revocations that could not wait for the fetch in progress (it took longer than
        REVOKE_FETCH_WAIT_S): that fetch wrote and committed nothing more of them."""

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
            aborted = False
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
                aborted = True
            finally:
                self.consumer = None
                await consumer.close()
            if aborted:
                # After the close: a poll still running when the fetch aborted (the consumer's
                # prefetch) may have been given partitions meanwhile and restored them; the
                # next consumer's assignment restores what it is given, from scratch.
                self.forget_all()

    def _new_consumer(self) -> TransportConsumer:
        factory: Any = (
            cast(TransactionalTransport, self.transport).transactional_consumer
            if self.exactly_once
            else self.transport.consumer
        )
        options: dict[str, Any] = {}
        self._listening = "rebalance" in inspect.signature(factory).parameters
        if self._listening:
            options["rebalance"] = self
        if self.start_at_ms is not None:
            options["start_at_ms"] = self.start_at_ms
        consumer: TransportConsumer = factory(self.topics, self.group, **options)
        return consumer

    def forget_all(self) -> None:
        """Drop the state of every owned partition (after a failure: what the stores hold may
        include a fetch that was never committed); the next assignment restores it."""
        for store in self.stores:
            store.forget({p for t, p in self._owned if t == store.source})
        self._owned = set()

    async def _one_fetch(self, consumer: TransportConsumer) -> None:
        batch = await consumer.fetch(self._fetch_records_max, FETCH_WAIT_S)
        if self._rebalance_error is not None:
            error, self._rebalance_error = self._rebalance_error, None
            raise TransportError(f"{self.group}: restoring an assignment failed") from error
        async with self._fetch_lock:
            if not self._listening:
                await self._follow_assignment(set(consumer.assignment()))
            # The consumer may have polled again (it prefetches) and lost a partition of this
            # batch in a rebalance: its state is forgotten, so its records are left to the
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
                owned = self._still_owned(offsets)
                if owned != offsets:
                    # A revocation fenced a partition of this fetch: the transaction holds
                    # outputs of its records, which must not commit without its offsets.
                    await transactional.abort()
                    fenced = sorted(offsets.keys() - owned.keys())
                    raise TransportError(
                        f"{self.group}: {fenced} revoked during the fetch (fenced); its "
                        "transaction is aborted and its records read again by their next owner"
                    )
                await transactional.commit_transaction(owned)
            else:
                await self._handle_batch(batch)
                await consumer.commit(self._still_owned(offsets))
            self.records_handled += len(batch)
            self.positions.update(offsets)

    def _still_owned(self, offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Offsets of the partitions this instance still owns: a partition fenced during the
        fetch (see :meth:`partitions_revoked`) is its next owner's to commit."""
        return {tp: o for tp, o in offsets.items() if tp in self._owned}

    async def _handle_batch(self, batch: list[Message]) -> None:
        out = Outputs(self.transport)
        for msg in batch:
            await self._handle(msg, out)
        await out.drain()
        await self._write_changes()

    async def _write_changes(self) -> None:
        changes = [store.take_changes() for store in self.stores]
        for phase in (0, 1):  # key records first; watermarks only once those are durable
            # The fence: nothing is written for a partition revoked meanwhile.
            sends = [
                self.transport.send(store.changelog, r.value, r.key, r.headers)
                for store, change in zip(self.stores, changes, strict=True)
                for r in change[phase]
                if (store.source, _partition_of(r)) in self._owned
            ]
            if sends:
                await asyncio.gather(*sends)

    # -- ownership: rebalance callbacks (Kafka), or the assignment seen after each fetch ------

    async def partitions_assigned(self, partitions: list[TopicPartition]) -> None:
        """RebalanceListener: restore the new partitions before any of their records."""
        try:
            async with self._fetch_lock:
                await self._gain(set(partitions) - self._owned)
        except asyncio.CancelledError:
            # The consumer gave up on this assignment: it is closing (its successor's own
            # assignment restores anew) or it timed out (its next fetch fails by itself). Not
            # a failure of the next consumer's fetch, which would abort a healthy batch.
            raise
        except BaseException as exc:
            self._rebalance_error = exc  # the next fetch fails, and a new consumer restores
            raise

    async def partitions_revoked(
        self, partitions: list[TopicPartition], *, lost: bool
    ) -> dict[TopicPartition, int]:
        """RebalanceListener: once the fetch in progress is handled (its changelog records
        written, its offsets committed), drop the partitions' state and return their offsets
        for the consumer to commit before they go. Should that fetch take longer than
        ``revoke_fetch_wait_s``, the partitions are dropped at once instead (fenced): the
        fetch then writes and commits nothing more of them (exactly-once: it aborts), and
        their next owner reads those records again."""
        gone = set(partitions)
        try:
            await asyncio.wait_for(self._fetch_lock.acquire(), self._revoke_fetch_wait_s)
        except TimeoutError:
            self.fenced += 1
            log.warning("%s: %s revoked during a long fetch: fenced", self.group, sorted(gone))
            self._drop(gone)
            return {}
        try:
            self._drop(gone)
            if lost or self.exactly_once:  # lost: not ours to commit; EOS: committed in txns
                return {}
            return {tp: self.positions[tp] for tp in gone if tp in self.positions}
        finally:
            self._fetch_lock.release()

    def _drop(self, gone: set[TopicPartition]) -> None:
        mine = gone & self._owned
        if not mine:
            return
        for store in self.stores:
            partitions = {p for t, p in mine if t == store.source}
            if partitions:
                store.forget(partitions)
        self._owned -= mine
        log.info("%s: revoked %s; their state dropped", self.group, sorted(mine))

    async def _follow_assignment(self, owned: set[TopicPartition]) -> None:
        if owned == self._owned:
            return
        self._drop(self._owned - owned)
        await self._gain(owned - self._owned)

    async def _gain(self, gained: set[TopicPartition]) -> None:
        if not gained:
            return
        for tp in gained:
            # A position from an earlier ownership is stale (another member moved on since):
            # a revocation before this reading handles a record must not commit it back.
            self.positions.pop(tp, None)
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
        self._owned |= gained
        self.assigned.set()


def _partition_of(record: ChangelogRecord) -> int:
    """The source partition a store's changelog record belongs to."""
    for name, value in record.headers:
        if name == PARTITION_HEADER:
            return int(value)
    raise ValueError("a changelog record without its source partition header")


def json_value(value: Any) -> bytes:
    """Compact JSON bytes for an output record."""
    return json.dumps(value, separators=(",", ":")).encode()
