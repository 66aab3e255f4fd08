"""The Kafka transport's consumer: confluent-kafka's, on its own single-thread executor (see
:mod:`shoal.app.transports.kafka`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import confluent_kafka

from shoal.app.message import Message
from shoal.app.transport import RebalanceListener, TopicPartition, TransportError
from shoal.app.transports.daemon_call import in_daemon_thread
from shoal.app.transports.kafka_join_watch import (
    STATS_INTERVAL_MS,
    JoinStalled,
    JoinWatch,
    leaves_partitions_unstarted,
)

log = logging.getLogger("shoal.app.transports.kafka")

METADATA_TIMEOUT_S = 10.0
PRODUCER_DEFAULTS: dict[str, Any] = {
    "linger.ms": 5,
    # Nagle off, as the Java client always has it (librdkafka leaves it on): with several
    # requests in flight, a small produce request otherwise waits for the previous one's ACK.
    "socket.nagle.disable": True,
}
"""What shoal's producer starts from; a URL's query (the transport's config) overrides these.
``linger.ms``: 5 ms, librdkafka's and Kafka 4's default, trades a little latency for batches;
a latency-bound app sets ``?linger.ms=0``."""
REVOKE_WAIT_S = 60.0
"""How long a revocation waits for the listener (a processor finishing its fetch in progress).
Well inside max.poll.interval.ms (300 s), the time the group gives a member to rejoin; past it
the listener fences the partitions instead (see Processor.partitions_revoked)."""
ASSIGN_WAIT_S = 300.0
"""How long an assignment waits for the listener (a processor restoring its state): Kafka's
default max.poll.interval.ms, the time the group gives a member between polls. Past it the
consumer fails its fetch and the App replaces it: the listener is stuck, and the partitions are
better off with another member."""
CLOSE_CHECK_S = 0.1
"""How often an assignment waiting for the listener checks whether the consumer is closing."""


def _message(msg: Any) -> Message:
    # One call per record on the hot path: plain attribute calls, no per-record allocations
    # beyond the Message (and the headers list when the record has headers).
    raw_headers = msg.headers()
    headers = (
        [(k, b"" if v is None else v) for k, v in raw_headers] if raw_headers is not None else []
    )
    timestamp_ms = msg.timestamp()[1]
    return Message(
        msg.topic(),
        msg.partition(),
        msg.offset(),
        msg.key(),
        msg.value() or b"",
        headers,
        timestamp_ms if timestamp_ms > 0 else 0,
    )


class KafkaConsumer:
    def __init__(
        self,
        config: dict[str, Any],
        topics: list[str],
        group: str,
        *,
        start_at_ms: int | None = None,
        join_stall_s: dict[str, float] | None = None,
        rebalance: RebalanceListener | None = None,
    ) -> None:
        """``start_at_ms``: a partition the group never committed starts at the first record
        with a timestamp at or after this (ms since the epoch; Kafka's offsets_for_times)
        instead of the earliest: a replay from a point in time, in a new group.
        ``join_stall_s``: the join watch's limits (:data:`kafka_join_watch.STALL_S` by
        default); a consumer stuck longer than they allow fails its fetch, and the App
        replaces it.
        ``rebalance``: told of every assignment and revocation, from inside the poll that
        makes it, which waits for it (a listener's coroutines run on the caller's loop)."""
        self._start_at_ms = start_at_ms
        self._group = group
        self._join_watch = JoinWatch(group, stall_s=join_stall_s)
        self._rebalance = rebalance
        self._loop: asyncio.AbstractEventLoop | None = None
        self._group_metadata: Any = None
        """With a listener: the group's metadata (member, generation) as of the last
        assignment, read inside its callback. Read from another thread while a rebalance
        callback waits for the listener, it would wait for that callback: a deadlock when
        the listener waits for a transaction that needs it."""
        self._config = {
            **config,
            "group.id": group,
            # Commits are the App's: only offsets whose handlers finished (at-least-once).
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "allow.auto.create.topics": True,
            # The join watch reads the group's join state from the statistics.
            "statistics.interval.ms": config.get("statistics.interval.ms") or STATS_INTERVAL_MS,
            "stats_cb": self._on_stats(config.get("stats_cb")),
        }
        self._topics = topics
        self._consumer: Any = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"shoal-consumer-{group}")
        self._paused = False
        # Records a poll returned while paused (a rebalance hands over unpaused partitions):
        # they are delivered after resume, never dropped, or a later commit would skip them.
        self._held: list[Message] = []
        self._assignment: list[TopicPartition] = []
        # The next poll, started on the consumer's thread as soon as a batch is handed out:
        # librdkafka waits for the broker without the GIL while the App handles the batch.
        self._next: asyncio.Future[list[Any]] | None = None
        self._to_commit: dict[TopicPartition, int] = {}
        """The latest offsets handed to commit(): committed for sure on close."""
        self._reading_from: dict[TopicPartition, int] = {}
        """Per partition owned now, the lowest offset handed out since it was assigned: a
        commit below it belongs to an earlier ownership (an output delivered late, after the
        partition went to another member and came back) and would move the group's offset
        backwards over what the other member committed; commit() drops it."""
        self._closing = threading.Event()
        """Set by close(): an assignment waiting for the listener stops waiting."""
        self._assign_failed: str | None = None
        """Why the last assignment's listener did not finish; the next fetch fails with it."""

    def _on_stats(self, user_cb: Any) -> Any:
        """The statistics callback: the join watch's, then the user's own if it set one."""
        watch = self._join_watch.on_stats
        if user_cb is None:
            return watch

        def both(stats: str) -> None:
            watch(stats)
            user_cb(stats)

        return both

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._consumer = await self._call(confluent_kafka.Consumer, self._config)
        # Every consumer hears of revocations: a partition that left must not be committed
        # from here any more (its next owner may be ahead), listener or not.
        await self._call(
            self._consumer.subscribe,
            self._topics,
            on_assign=self._assigned,
            on_revoke=self._revoked,
            on_lost=self._lost,
        )

    # -- rebalance callbacks: on the consumer's thread, inside a poll -------------------------

    def _tell(self, coro: Any, what: str, timeout_s: float | None) -> Any:
        """Run a listener coroutine on the App's loop and wait for its result (None if it
        failed or took too long: logged). The loop is free meanwhile: the App awaits this
        poll, it does not block on it."""
        loop = self._loop
        if loop is None or loop.is_closed():
            coro.close()
            return None
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            log.warning("rebalance listener: %s took over %s s", what, timeout_s)
        except Exception:
            log.exception("rebalance listener: %s failed", what)
        return None

    def _cooperative(self) -> bool:
        """Whether the group's rebalances are incremental: a cooperative assignor, or the
        consumer group protocol (KIP-848), as librdkafka decides it."""
        strategy = str(self._config.get("partition.assignment.strategy", ""))
        protocol = str(self._config.get("group.protocol", "classic"))
        return "cooperative" in strategy or protocol.lower() == "consumer"

    def _apply(self, consumer: Any, partitions: list[Any], *, assigned: bool) -> None:
        """Apply a rebalance in its callback, as librdkafka requires. Done here, never left
        to confluent-kafka's fallback: that fallback asks librdkafka for the rebalance
        protocol (``rd_kafka_rebalance_protocol``) while it holds the GIL, and that call can
        wait for ever once the consumer is closing (librdkafka issue 4041), which froze a
        whole test process in ``close()`` (every thread waiting for the GIL)."""
        if self._cooperative():
            if assigned:
                consumer.incremental_assign(partitions)
            else:
                consumer.incremental_unassign(partitions)
        elif assigned:
            consumer.assign(partitions)
        else:
            consumer.unassign()

    def _assigned(self, consumer: Any, partitions: list[Any]) -> None:
        if self._start_at_ms is not None:
            self._start_at(consumer, partitions)  # assigns them at their start offsets
        else:
            self._apply(consumer, partitions, assigned=True)
        listener = self._rebalance
        if listener is None:
            return
        self._group_metadata = consumer.consumer_group_metadata()
        if not partitions:
            return
        tps = [(tp.topic, tp.partition) for tp in partitions]
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        # Records of these partitions must not be handed out before their state is restored:
        # the wait ends when the listener does, when the consumer closes (a stop during a
        # restore), or after ASSIGN_WAIT_S; in the last two cases this poll's records are
        # never handed out (the fetch fails, or close drops them).
        future = asyncio.run_coroutine_threadsafe(listener.partitions_assigned(tps), loop)
        waited_s = 0.0
        while not self._closing.is_set() and waited_s < ASSIGN_WAIT_S:
            try:
                future.result(CLOSE_CHECK_S)
                return
            except TimeoutError:
                waited_s += CLOSE_CHECK_S
            except Exception as exc:
                log.exception("rebalance listener: assignment of %s failed", tps)
                self._assign_failed = f"the listener failed on the assignment of {tps}: {exc}"
                return
        future.cancel()
        if self._closing.is_set():
            log.warning("group %s: closing during the assignment of %s", self._group, tps)
            return
        self._assign_failed = (
            f"the listener did not finish the assignment of {tps} in {ASSIGN_WAIT_S:.0f} s; "
            "starting a new consumer"
        )
        log.warning("group %s: %s", self._group, self._assign_failed)

    def _revoked(self, consumer: Any, partitions: list[Any]) -> None:
        try:
            self._take_back(consumer, partitions, lost=False)
        finally:
            self._apply(consumer, partitions, assigned=False)

    def _lost(self, consumer: Any, partitions: list[Any]) -> None:
        try:
            self._take_back(consumer, partitions, lost=True)
        finally:
            self._apply(consumer, partitions, assigned=False)

    def _take_back(self, consumer: Any, partitions: list[Any], *, lost: bool) -> None:
        tps = [(tp.topic, tp.partition) for tp in partitions]
        for tp in tps:
            # Not ours to commit any more: a close must not write this reading's offset back
            # over what the partition's next owner commits (offsets would go backwards).
            self._to_commit.pop(tp, None)
            self._reading_from.pop(tp, None)
        listener = self._rebalance
        if listener is None or not partitions:
            return
        offsets = self._tell(
            listener.partitions_revoked(tps, lost=lost), f"revocation of {tps}", REVOKE_WAIT_S
        )
        if lost or not offsets:
            return
        # Committed before the partitions can reach another member (eager rebalance): the
        # next owner starts exactly where the listener's state stopped.
        commit = [confluent_kafka.TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            consumer.commit(offsets=commit, asynchronous=False)
        except confluent_kafka.KafkaException as exc:
            log.warning("commit on revocation of %s failed (read again): %s", tps, exc)

    def _start_at(self, consumer: Any, partitions: list[Any]) -> None:
        """On assignment (the consumer's thread, inside a poll): partitions without a committed
        offset start at the first record at or after ``start_at_ms``; the others where the
        group left them. A time past the last record gives the end offset."""
        committed = consumer.committed(partitions, timeout=METADATA_TIMEOUT_S)
        at_ms = self._start_at_ms if self._start_at_ms is not None else 0
        fresh = [
            confluent_kafka.TopicPartition(tp.topic, tp.partition, at_ms)
            for tp in committed
            if tp.offset < 0
        ]
        found = consumer.offsets_for_times(fresh, timeout=METADATA_TIMEOUT_S) if fresh else []
        by_time = {(tp.topic, tp.partition): tp.offset for tp in found}
        starts = [
            confluent_kafka.TopicPartition(
                tp.topic, tp.partition, by_time.get((tp.topic, tp.partition), tp.offset)
            )
            for tp in committed
        ]
        self._apply(consumer, starts, assigned=True)

    def _consume(self, max_records: int, timeout_s: float) -> list[Any]:
        # Runs on the consumer's thread. Pausing every assigned partition before each poll
        # covers partitions a rebalance just handed over; polling on keeps the membership.
        if self._paused:
            self._consumer.pause(self._consumer.assignment())
        # consume(n, t) waits the whole timeout unless n records arrive, which at low rates
        # would add up to t of latency to every record: take what is there, else wait for
        # the first record only, then take what came with it.
        msgs = self._consumer.consume(max_records, 0)
        if not msgs:
            msgs = self._consumer.consume(1, timeout_s)
            if msgs and max_records > 1:
                msgs.extend(self._consumer.consume(max_records - 1, 0))
        self._assignment = [(tp.topic, tp.partition) for tp in self._consumer.assignment()]
        if self._assign_failed is not None:
            # These records may belong to partitions whose state was never restored: none is
            # handed out, and the runner replaces this consumer (the group reads them again).
            raise TransportError(self._assign_failed)
        if not msgs:
            try:
                self._join_watch.check()
            except JoinStalled as exc:
                # The runner closes this consumer and starts a new one (at-least-once: what
                # this one never committed is read again).
                raise TransportError(str(exc)) from exc
        return list(msgs)

    async def fetch(self, max_records: int, timeout_s: float) -> list[Message]:
        if not self._paused and self._held:
            held, self._held = self._held[:max_records], self._held[max_records:]
            return held
        if self._next is not None:
            pending, self._next = self._next, None
            msgs = await pending
        else:
            msgs = await self._call(self._consume, max_records, timeout_s)
        out = []
        reading_from = self._reading_from
        for msg in msgs:
            error = msg.error()
            if error is None:
                message = _message(msg)
                tp = (message.topic, message.partition)
                if message.offset < reading_from.get(tp, message.offset + 1):
                    reading_from[tp] = message.offset  # first, or read again from before
                out.append(message)
            elif error.fatal():
                raise TransportError(f"consumer failed: {error}")
            elif leaves_partitions_unstarted(error):
                # librdkafka will never start those partitions (kafka_join_watch): the runner
                # replaces this consumer; what it never committed is read again.
                raise TransportError(f"consumer left partitions unread: {error.str()}")
            # Other errors (a topic not yet created, a broker reconnecting) are transient and
            # reported by librdkafka again if they persist.
        if self._paused:
            self._held.extend(out)
            return []
        if out:
            loop = asyncio.get_running_loop()
            self._next = loop.run_in_executor(self._executor, self._consume, max_records, timeout_s)
        return out

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        if self._paused and self._consumer is not None:
            self._paused = False
            consumer = self._consumer
            self._executor.submit(lambda: consumer.resume(consumer.assignment()))

    def assignment(self) -> list[TopicPartition]:
        return list(self._assignment)

    async def lag(self) -> dict[TopicPartition, int]:
        if self._consumer is None:
            return {}
        return dict(await self._call(self._lag))

    def _lag(self) -> dict[TopicPartition, int]:
        assigned = self._consumer.assignment()
        if not assigned:
            return {}
        out: dict[TopicPartition, int] = {}
        for tp in self._consumer.committed(assigned, timeout=METADATA_TIMEOUT_S):
            _, high = self._consumer.get_watermark_offsets(tp, timeout=METADATA_TIMEOUT_S)
            # No commit yet (offset < 0): everything from the log start is still to do, which
            # the high watermark over-counts only by records already deleted by retention.
            committed = tp.offset if tp.offset >= 0 else 0
            out[(tp.topic, tp.partition)] = max(high - committed, 0)
        return out

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Queue an asynchronous commit and return at once; ``close`` commits the latest
        offsets synchronously. A commit that fails or is overtaken by a rebalance only means
        those records are read again by the next owner: at-least-once holds."""
        offsets = {
            tp: offset
            for tp, offset in offsets.items()
            if offset >= self._reading_from.get(tp, offset + 1)
        }
        if not offsets:
            return
        self._to_commit.update(offsets)
        tps = [confluent_kafka.TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        # Not awaited: the consumer's thread may be in the next poll (prefetch), and the App
        # must not wait for that poll to go on handling records.
        self._executor.submit(self._commit_now, tps, False)

    def _commit_now(self, tps: list[Any], synchronous: bool) -> None:
        # A commit queued before a revocation must not land after it: the partitions' next
        # owner may be ahead by now (a listener committed them at the revocation).
        consumer = self._consumer
        if consumer is None:
            return
        owned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        tps = [tp for tp in tps if (tp.topic, tp.partition) in owned]
        if not tps:
            return
        try:
            consumer.commit(offsets=tps, asynchronous=not synchronous)
        except confluent_kafka.KafkaException as exc:
            log.warning("commit of %s failed (those records will be read again): %s", tps, exc)

    @staticmethod
    def _commit_sync(consumer: Any, tps: list[Any]) -> None:
        try:
            consumer.commit(offsets=tps, asynchronous=False)
        except confluent_kafka.KafkaException as exc:
            log.warning("commit of %s failed (those records will be read again): %s", tps, exc)

    async def close(self) -> None:
        self._closing.set()
        if self._next is not None:
            # Records prefetched but never handed out: not committed, so the partition's next
            # owner reads them again.
            with contextlib.suppress(Exception):
                await self._next
            self._next = None
        if self._consumer is not None:
            # A barrier: what the executor still holds (an asynchronous commit) runs first, so
            # the consumer is used by one thread at a time and that commit still finds it.
            await self._call(lambda: None)
            consumer, self._consumer = self._consumer, None
            tps = [confluent_kafka.TopicPartition(t, p, o) for (t, p), o in self._to_commit.items()]

            def commit_and_leave() -> None:
                owned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
                tps[:] = [tp for tp in tps if (tp.topic, tp.partition) in owned]
                if tps:
                    # The last word before leaving the group: everything finished, synchronously.
                    self._commit_sync(consumer, tps)
                consumer.close()

            # The executor is idle now (the prefetch was awaited above); a daemon thread of its
            # own lets App.stop abandon a close that a vanished broker would keep retrying.
            try:
                await in_daemon_thread(commit_and_leave, f"shoal-close-{self._group}")
            except asyncio.CancelledError:
                log.warning(
                    "group %s: closing the consumer abandoned (the broker did not answer in "
                    "time): offsets not committed yet are redelivered to the group's next "
                    "member; the broker drops this member when its session times out",
                    self._group,
                )
                raise
        self._executor.shutdown(wait=False)
