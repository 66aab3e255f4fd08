"""Running one subscriber: fetch, dispatch by key, deliver, commit what finished.

A subscriber has a main consumer on its topics and, with retry topics, one consumer per
``<topic>.retry.<n>`` (its own group, so a record waiting for its delay never holds up the main
topic). Each record goes through the subscriber's delivery pipeline (:mod:`shoal.app.delivery`),
built once per kind of consumer; a record is committed once its delivery returned, as part of
a contiguous run of finished records per partition. An at-least-once subscriber's output on a
transport with ``send_nowait`` (Kafka) is not awaited in the lane: the record finishes when
that output's delivery succeeds (:class:`_Outputs`), so the lane goes on to its next record.

What the pipeline sends (outputs, records moved to a retry topic or a DLQ) goes through the
:class:`~shoal.app.outbox.Outbox` in its :class:`~shoal.app.delivery.Runtime`, never through
the App itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

from shoal.app.delivery import Deliver, FailedForGood, Pipeline, Released, Runtime, Stopped, Waits
from shoal.app.message import Message
from shoal.app.observability import tracing
from shoal.app.offsets import OffsetTracker
from shoal.app.resilience.breaker import BreakerState
from shoal.app.subscriber import Subscriber
from shoal.app.transport import (
    Acknowledgement,
    QueueConsumer,
    QueueTransport,
    TopicPartition,
    TransactionalConsumer,
    TransactionalTransport,
    TransportConsumer,
    TransportError,
)
from shoal.invariant import invariant

log = logging.getLogger("shoal.app")

FETCH_RECORDS_MAX = 500
"""Records per fetch: a bound on in-flight work, and on what a crash sends round again."""
OUTPUTS_IN_FLIGHT_MAX = 10_000
"""Pipelined outputs (records) a subscriber's consumer has out before it fetches no more:
librdkafka queues 100,000 messages by default, shared by every sender of the app."""
POLL_TIMEOUT_S = 0.1
"""How long a fetch waits for records; also how quickly a subscriber notices stop()."""
BREAKER_LOOK_MS = 100
"""Queue mode: how often a subscriber whose breaker is open looks again (for stop() too)."""
RESTART_DELAY_S = 1.0
"""Pause before a subscriber that hit a transport error reconnects (real time, not injected)."""


class SubscriberRunner:
    def __init__(self, rt: Runtime, sub: Subscriber, breaker: BreakerState | None) -> None:
        self.rt = rt
        self.sub = sub
        self.breaker = breaker
        self.consumers: list[tuple[str, TransportConsumer]] = []
        """(group, consumer) of every live consumer: for lag metrics and readiness."""
        self.subscribed = asyncio.Event()
        """Set once every consumer loop has started its first consumer (App.start waits for
        it: on RabbitMQ a record published before the queue is bound would go nowhere)."""
        self._loops_subscribed: set[str] = set()
        self._loop_count = 1 + len(sub.retry_topics())
        self._pipelines: dict[tuple[bool, bool, bool], Pipeline] = {}
        self._awaited_through: dict[TopicPartition, int] = {}
        """Partition -> the highest offset whose pipelined output failed: the next consumers
        handle that partition's records up to it with each output awaited, so a record whose
        output can never be delivered (too large, not authorized) goes through its retries to
        the DLQ instead of failing consumer after consumer. Dropped once handled past it."""

    def pipeline(self, retry_stage: bool, *, awaited: bool = False) -> Pipeline:
        """The delivery pipeline for the main topics or the retry topics, built once for each,
        and once more should an OpenTelemetry SDK appear (an App restarted after installing
        one): the tracing step is in it only while spans would be recorded. ``awaited``: the
        one that awaits each output even where outputs could be pipelined."""
        key = (retry_stage, tracing.enabled(), awaited)
        pipeline = self._pipelines.get(key)
        if pipeline is None:
            pipeline = self._pipelines[key] = Pipeline(
                self.rt,
                self.sub,
                self.breaker,
                retry_stage=retry_stage,
                traced=key[1],
                pipelined=not awaited,
            )
        return pipeline

    def _output_failed(self, tp: TopicPartition, offset: int) -> None:
        self._awaited_through[tp] = max(offset, self._awaited_through.get(tp, offset))

    # -- consumer loops ----------------------------------------------------------------------

    def loops(self) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        """One loop for the main topics and one per retry topic."""
        out: list[Callable[[], Coroutine[Any, Any, None]]] = [
            lambda: self._run(list(self.sub.topics), self.sub.group, retry_stage=False)
        ]
        for topic, n, _ in self.sub.retry_topics():
            group = f"{self.sub.group}.retry.{n}"
            out.append(lambda t=topic, g=group: self._run([t], g, retry_stage=True))  # type: ignore[misc]
        return out

    async def _run(self, topics: list[str], group: str, *, retry_stage: bool) -> None:
        while not self.rt.stopping.is_set():
            consumer = self._new_consumer(topics, group)
            entry = (group, consumer)
            try:
                await consumer.start()
                self.consumers.append(entry)
                self._loops_subscribed.add(group + "\x00" + ",".join(topics))
                if len(self._loops_subscribed) >= self._loop_count:
                    self.subscribed.set()
                await self._consume(consumer, retry_stage)
            except Stopped:
                continue  # an exactly-once fetch aborted because the app stops: not a failure
            except Exception:
                # Uncommitted records are fetched again by the next consumer: at-least-once.
                log.exception("subscriber %s failed; reconnecting", self.sub.name)
                # asyncio.timeout, not wait_for (which on Python 3.11 can swallow a cancel).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RESTART_DELAY_S):
                        await self.rt.stopping.wait()
            finally:
                if entry in self.consumers:
                    self.consumers.remove(entry)
                with contextlib.suppress(Exception):
                    await consumer.close()

    def _new_consumer(self, topics: list[str], group: str) -> TransportConsumer:
        transport = self.rt.transport
        if self.sub.queue:
            # App.start refused queue=True on a transport without queues.
            invariant(isinstance(transport, QueueTransport), "no queues")
            return cast(QueueTransport, transport).queue_consumer(topics, group)
        if self.sub.exactly_once:
            # App.start refused exactly_once on a transport without transactions.
            invariant(isinstance(transport, TransactionalTransport), "no transactions")
            return cast(TransactionalTransport, transport).transactional_consumer(topics, group)
        return transport.consumer(topics, group)

    async def _consume(self, consumer: TransportConsumer, retry_stage: bool) -> None:
        if self.sub.queue:
            await self._consume_queue(cast(QueueConsumer, consumer))
            return
        tracker = OffsetTracker()
        waits = Waits(consumer)
        complete = tracker.complete
        # Pipelined outputs still out, across fetches: their offsets commit as they land.
        outputs = _Outputs(complete, self._output_failed)
        # Records waiting on a retry topic are due in offset order: one at a time.
        concurrency = 1 if retry_stage else self.sub.concurrency
        while not self.rt.stopping.is_set():
            await outputs.below(OUTPUTS_IN_FLIGHT_MAX)
            records = await consumer.fetch(FETCH_RECORDS_MAX, POLL_TIMEOUT_S)
            if not records:
                landed = tracker.committable()  # pipelined outputs delivered meanwhile
                if landed:
                    await consumer.commit(landed)
                outputs.raise_failure()
                continue
            tracker.track_all(records)
            pipeline = self.pipeline(retry_stage)
            deliver, in_flight = pipeline.deliver, pipeline.outputs_in_flight
            done = [0]
            # Fixed for the whole fetch, so that every lane takes the same records awaited.
            through = dict(self._awaited_through)
            awaited = self.pipeline(retry_stage, awaited=True).deliver if through else deliver

            # One coroutine per run of records (a fetch, or a lane), not one per record.
            async def run(
                msgs: list[Message],
                deliver: Deliver = deliver,
                done: list[int] = done,
                in_flight: dict[tuple[str, int, int], asyncio.Future[None]] = in_flight,
                through: dict[TopicPartition, int] = through,
                awaited: Deliver = awaited,
            ) -> None:
                for msg in msgs:
                    if outputs.failure is not None:
                        # The consumer restarts once the fetch is settled: the records left
                        # are handled then, after the failed one, not twice.
                        return
                    last = through.get((msg.topic, msg.partition))
                    try:
                        if last is not None and msg.offset <= last:
                            await awaited(msg, waits, None)
                        else:
                            await deliver(msg, waits, None)
                    except Stopped:
                        continue  # not completed: not committed, redelivered after a restart
                    finally:
                        output = in_flight.pop((msg.topic, msg.partition, msg.offset), None)
                    if output is not None:
                        # Pipelined output: the lane goes on, the offset waits for it.
                        outputs.watch(msg, output)
                    else:
                        complete((msg.topic, msg.partition), msg.offset)
                    done[0] += 1

            if self.sub.exactly_once:
                txn = cast(TransactionalConsumer, consumer)
                await _in_transaction(txn, concurrency, records, run, done, tracker)
                continue
            try:
                await _dispatch(concurrency, records, run)
            finally:
                await consumer.commit(tracker.committable())
            outputs.raise_failure()
            if through:
                self._past_awaited(records, through)
        if outputs.outstanding():
            # Stopping: what was handled commits once its output is delivered. App.stop bounds
            # the wait: it cancels this loop once its handlers' budget (the shutdown timeout
            # but DISCONNECT_RESERVE_S) is spent; what landed by then still commits.
            try:
                await outputs.settled()
            finally:
                await consumer.commit(tracker.committable())
            outputs.raise_failure()

    def _past_awaited(self, records: list[Message], through: dict[TopicPartition, int]) -> None:
        """A fetch handled without an output failing: its partitions handled up to (or past)
        their awaited offset pipeline their outputs again."""
        for msg in records:
            tp = (msg.topic, msg.partition)
            last = through.get(tp)
            if last is not None and msg.offset >= last and self._awaited_through.get(tp) == last:
                del self._awaited_through[tp]

    async def _consume_queue(self, consumer: QueueConsumer) -> None:
        """Queue mode: every record of a fetch is delivered (up to ``concurrency`` at once, no
        per-key order) and settled on its own: accepted when its delivery returned, released
        or rejected as the pipeline decided, released when the app stops first. The whole
        fetch is settled before the next one."""
        waits = Waits(consumer)
        slots = asyncio.Semaphore(self.sub.concurrency)
        while not self.rt.stopping.is_set():
            if not await self._breaker_admits():
                continue
            records = await consumer.fetch(FETCH_RECORDS_MAX, POLL_TIMEOUT_S)
            if not records:
                continue
            deliver = self.pipeline(retry_stage=False).deliver
            outcomes: list[tuple[Message, Acknowledgement]] = []

            async def settle_one(
                msg: Message,
                deliver: Deliver = deliver,
                outcomes: list[tuple[Message, Acknowledgement]] = outcomes,
            ) -> None:
                async with slots:
                    try:
                        await deliver(msg, waits, None)
                    except Released:
                        outcomes.append((msg, Acknowledgement.RELEASE))
                    except FailedForGood:
                        outcomes.append((msg, Acknowledgement.REJECT))
                    except Stopped:
                        outcomes.append((msg, Acknowledgement.RELEASE))  # not handled: again
                    else:
                        outcomes.append((msg, Acknowledgement.ACCEPT))

            try:
                async with asyncio.TaskGroup() as group:
                    for msg in records:
                        group.create_task(settle_one(msg))
            finally:
                # What finished is settled even when a delivery failed the consumer; the rest
                # comes back once the broker sees this consumer leave or its locks expire.
                await consumer.settle(outcomes)

    async def _breaker_admits(self) -> bool:
        """Queue mode: False (after waiting a while) while the subscriber's breaker is open, so
        that nothing is fetched then. A fetch acquires records, and each acquisition is a
        delivery the broker counts towards its delivery limit (Kafka's
        ``share.delivery.count.limit``): fetching during an outage only to hand the records
        back would archive them, without a dead letter, after a few open periods. Nothing is
        polled meanwhile; the share consumer's own thread keeps the member in its group."""
        breaker = self.breaker
        if breaker is None:
            return True
        left_ms = breaker.remaining_open_ms()
        if left_ms <= 0:
            return True
        await self.rt.sleep(min(left_ms, BREAKER_LOOK_MS) / 1000.0)
        return False


class _Outputs:
    """The pipelined outputs of one fetch (at-least-once subscribers on a transport with
    ``send_nowait``): each record's offset completes from its output's delivery callback, so
    it becomes committable only once that output is delivered. A failed delivery leaves its
    record uncommitted and fails the consumer once the fetch is settled: the next consumer
    reads again from the committed offset, handling that record (and those after it) again,
    so one key's outputs stay in order and none is lost. ``failed`` hears of the record, so
    the next consumers await the outputs up to it (its retries and DLQ apply: no loop)."""

    def __init__(
        self,
        complete: Callable[[TopicPartition, int], None],
        failed: Callable[[TopicPartition, int], None],
    ) -> None:
        self._complete = complete
        self._failed = failed
        self._pending: set[asyncio.Future[None]] = set()
        self.failure: BaseException | None = None

    def watch(self, msg: Message, delivered: asyncio.Future[None]) -> None:
        tp, offset = (msg.topic, msg.partition), msg.offset

        def on_done(fut: asyncio.Future[None]) -> None:
            self._pending.discard(fut)
            if fut.cancelled():
                self.failure = self.failure or TransportError("an output's delivery was cancelled")
                self._failed(tp, offset)
            elif (exc := fut.exception()) is not None:
                self.failure = self.failure or exc
                self._failed(tp, offset)
            else:
                self._complete(tp, offset)

        if delivered.done():
            on_done(delivered)  # settled already: its lane hears of a failure at once
            return
        self._pending.add(delivered)
        delivered.add_done_callback(on_done)

    def outstanding(self) -> int:
        return len(self._pending)

    async def below(self, limit: int) -> None:
        """Wait until fewer than ``limit`` outputs are out (a bound on memory, and on what the
        producer's own queue must hold, so a slow broker slows the handlers down instead of
        failing their outputs)."""
        while len(self._pending) >= limit:
            await asyncio.wait(list(self._pending), return_when=asyncio.FIRST_COMPLETED)
            await asyncio.sleep(0)  # the done callbacks run in the loop's next round

    async def settled(self) -> None:
        """Wait for every output still out."""
        if self._pending:
            await asyncio.wait(list(self._pending))
            await asyncio.sleep(0)  # the done callbacks run in the loop's next round

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise TransportError(
                f"an output was not delivered; its record is handled again: {self.failure}"
            ) from self.failure


async def _dispatch(
    concurrency: int, records: list[Message], run: Callable[[list[Message]], Awaitable[None]]
) -> None:
    """Run the records of a fetch through ``run``: in order, or (``concurrency`` > 1) in one
    lane per (partition, key), lanes in parallel and each lane's records in order."""
    if concurrency == 1:
        await run(records)
        return
    lanes: dict[tuple[str, int, bytes | None], list[Message]] = {}
    for msg in records:
        lanes.setdefault((msg.topic, msg.partition, msg.key), []).append(msg)
    slots = asyncio.Semaphore(concurrency)

    async def run_lane(lane: list[Message]) -> None:
        async with slots:
            await run(lane)

    async with asyncio.TaskGroup() as group:
        for lane in lanes.values():
            group.create_task(run_lane(lane))


async def _in_transaction(
    consumer: TransactionalConsumer,
    concurrency: int,
    records: list[Message],
    run: Callable[[list[Message]], Awaitable[None]],
    done: list[int],
    tracker: OffsetTracker,
) -> None:
    """One fetch, exactly once: its sends and its offsets commit together, or neither. A
    fetch not wholly handled (the app is stopping) is aborted; after any abort the consumer is
    given up (an exception), so a new one reads again from the committed offsets."""
    await consumer.begin()
    try:
        await _dispatch(concurrency, records, run)
    except BaseException:
        await consumer.abort()
        raise
    if done[0] != len(records):
        await consumer.abort()
        raise Stopped("stopped within an exactly-once fetch: it was aborted")
    await consumer.commit_transaction(tracker.committable())
