"""Running one subscriber: fetch, dispatch by key, deliver with retries, commit what finished.

A subscriber has a main consumer on its topics and, with retry topics, one consumer per
``<topic>.retry.<n>`` (its own group, so a record waiting for its delay never holds up the main
topic). Each record's delivery goes through, in order: the stop check, the circuit breaker's
gate, the idempotency claim, the handler, the output publish, the claim's commit. A failure is
retried in place, forwarded to the next retry topic, or dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from shoal.app.message import Message, caused_by_headers
from shoal.app.observability import tracing
from shoal.app.observability.metrics import Instruments
from shoal.app.offsets import OffsetTracker
from shoal.app.resilience import retry_headers
from shoal.app.resilience.breaker import BreakerState
from shoal.app.resilience.dlq import Failure, dlq_headers
from shoal.app.resilience.idempotency import Claim, IdempotencyStore
from shoal.app.resilience.retry import retry_topic
from shoal.app.serdes.payload import SerdeError, decode
from shoal.app.subscriber import Subscriber
from shoal.app.transport import Transport, TransportConsumer
from shoal.clock import Clock
from shoal.invariant import invariant

log = logging.getLogger("shoal.app")

Sleep = Callable[[float], Awaitable[None]]
Publish = Callable[..., Awaitable[str]]

FETCH_RECORDS_MAX = 500
"""Records per fetch: a bound on in-flight work, and on what a crash sends round again."""
POLL_TIMEOUT_S = 0.1
"""How long a fetch waits for records; also how quickly a subscriber notices stop()."""
RESTART_DELAY_S = 1.0
"""Pause before a subscriber that hit a transport error reconnects (real time, not injected)."""
KEEPALIVE_MS = 1_000
"""While a consumer waits (an open breaker, a retry record not yet due) it is paused and polled
this often, so Kafka keeps it in its group however long the wait."""


@dataclass
class Runtime:
    """What every subscriber runner shares with its App."""

    transport: Transport
    clock: Clock
    sleep: Sleep
    rng: random.Random
    stopping: asyncio.Event
    metrics: Instruments
    publish: Publish
    store: IdempotencyStore | None
    system: str


_UNDECODED: Any = object()
"""The value of a record whose codec failed for a reason other than its payload."""


class Stopped(Exception):
    """The app is stopping: the record is left unfinished (uncommitted) for redelivery."""


@dataclass
class _Delivery:
    """A record's history across deliveries: from its own headers on a retry topic."""

    attempt: int
    first_failure_ms: int | None
    original: Message


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
        self.name = sub.name  # looked up per record: computed once

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
            consumer = self.rt.transport.consumer(topics, group)
            entry = (group, consumer)
            try:
                await consumer.start()
                self.consumers.append(entry)
                self._loops_subscribed.add(group + "\x00" + ",".join(topics))
                if len(self._loops_subscribed) >= self._loop_count:
                    self.subscribed.set()
                await self._consume(consumer, retry_stage)
            except Exception:
                # Uncommitted records are fetched again by the next consumer: at-least-once.
                log.exception("subscriber %s failed; reconnecting", self.sub.name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.rt.stopping.wait(), RESTART_DELAY_S)
            finally:
                if entry in self.consumers:
                    self.consumers.remove(entry)
                with contextlib.suppress(Exception):
                    await consumer.close()

    async def _consume(self, consumer: TransportConsumer, retry_stage: bool) -> None:
        tracker = OffsetTracker()
        waits = _Waits(consumer)
        while not self.rt.stopping.is_set():
            records = await consumer.fetch(FETCH_RECORDS_MAX, POLL_TIMEOUT_S)
            if not records:
                continue
            for msg in records:
                tracker.track((msg.topic, msg.partition), msg.offset)

            fast = self._fast_path(retry_stage)

            async def handle(msg: Message, fast: bool = fast) -> None:
                try:
                    if fast:
                        await self._deliver_fast(msg, waits)
                    else:
                        await self._deliver(msg, waits, retry_stage)
                except Stopped:
                    return  # not completed: not committed, redelivered after a restart
                tracker.complete((msg.topic, msg.partition), msg.offset)

            try:
                # Records waiting on a retry topic are due in offset order: one at a time.
                concurrency = 1 if retry_stage else self.sub.concurrency
                await _dispatch(concurrency, records, handle)
            finally:
                await consumer.commit(tracker.committable())

    # -- one record --------------------------------------------------------------------------

    async def _deliver(
        self,
        msg: Message,
        waits: _Waits,
        retry_stage: bool,
    ) -> None:
        """Deliver ``msg`` until it succeeds, moves to a retry topic, or is dead-lettered."""
        sub, rt = self.sub, self.rt
        delivery = _Delivery(1, None, msg)
        if retry_stage:
            delivery = _Delivery(*retry_headers.read(msg))
            await self._wait(waits, lambda: retry_headers.due_in_ms(msg, rt.clock))
        with tracing.consume_span(msg, sub.name, sub.group, system=rt.system):
            try:
                value = await self._decode(msg)
            except SerdeError as exc:
                now = rt.clock.now_ms()
                rt.metrics.failed(self.name, msg.topic, exc)
                await self._give_up(msg, delivery, Failure(exc, delivery.attempt, now, now))
                return
            except Exception:
                # Not the record's fault (a schema registry that does not answer): decode
                # again on every attempt, so retries, backoff and the breaker apply.
                value = _UNDECODED
            await self._attempts(msg, value, delivery, waits)

    async def _decode(self, msg: Message) -> Any:
        """The handler's value. SerdeError: the payload is bad (to the DLQ at once); another
        exception: the codec could not work now, and the delivery is retried."""
        codec = self.sub.codec
        if codec is None:
            return decode(self.sub.decoder, msg.value)
        try:
            return await codec.decode(msg.topic, msg.value)
        except (ValueError, TypeError, KeyError) as exc:
            raise SerdeError(f"cannot decode payload: {type(exc).__name__}: {exc}") from exc

    async def _attempts(
        self,
        msg: Message,
        value: Any,
        delivery: _Delivery,
        waits: _Waits,
        failed: Exception | None = None,
    ) -> None:
        """Call the handler until it succeeds or the record moves on. ``failed``: the first
        attempt already ran (on the fast path) and raised this."""
        sub, rt = self.sub, self.rt
        attempt = delivery.attempt
        while True:
            if failed is None:
                failed = await self._try_once(msg, value, waits)
                if failed is None:
                    return
            error, failed = failed, None
            rt.metrics.failed(self.name, msg.topic, error)
            if self._breaker_holds(error):
                # The dependency is down, not the record: hold it (no attempt is used up)
                # until the breaker lets a probe through.
                continue
            now = rt.clock.now_ms()
            if delivery.first_failure_ms is None:
                delivery.first_failure_ms = now
            failure = Failure(error, attempt, delivery.first_failure_ms, now)
            if not sub.retry.should_retry(error, attempt):
                await self._give_up(msg, delivery, failure)
                return
            rt.metrics.retried(self.name, msg.topic)
            if sub.retry.topics:
                await self._to_retry_topic(msg, delivery, failure)
                return
            await rt.sleep(sub.retry.delay_ms(attempt, rt.rng) / 1000.0)
            attempt += 1

    async def _try_once(self, msg: Message, value: Any, waits: _Waits) -> Exception | None:
        """One attempt through the breaker's gate: None on success, else the exception."""
        if self.rt.stopping.is_set():
            raise Stopped
        await self._pass_breaker(waits)
        started = time.perf_counter()
        try:
            ran = await self._attempt(msg, value)
        except Exception as exc:
            return exc
        except BaseException:
            if self.breaker is not None:
                self.breaker.release()  # cancelled: no outcome, free a probe slot
            raise
        if self.breaker is not None:
            self.breaker.record_success()
        if ran:
            self.rt.metrics.processed(self.name, msg.topic, time.perf_counter() - started)
        else:
            self.rt.metrics.duplicate(self.name, msg.topic)
        return None

    async def _deliver_fast(self, msg: Message, waits: _Waits) -> None:
        """The common case in one coroutine: JSON or raw payload, no breaker, no idempotency,
        no tracing SDK, not a retry topic. Any failure joins the full path where it stands."""
        sub = self.sub
        if self.rt.stopping.is_set():
            raise Stopped
        try:
            value = sub.decoder(msg.value)
        except Exception:
            await self._deliver(msg, waits, retry_stage=False)  # to the DLQ
            return
        started = time.perf_counter()
        try:
            result = await (sub.handler(value, msg) if sub.wants_message else sub.handler(value))
            if sub.output is not None and result is not None:
                await self._publish_output(msg, result)
        except Exception as exc:
            await self._attempts(msg, value, _Delivery(1, None, msg), waits, exc)
            return
        self.rt.metrics.processed(self.name, msg.topic, time.perf_counter() - started)

    def _fast_path(self, retry_stage: bool) -> bool:
        sub = self.sub
        return not (
            retry_stage
            or sub.codec is not None
            or self.breaker is not None
            or sub.idempotent
            or tracing.enabled()
        )

    def _breaker_holds(self, error: Exception) -> bool:
        """Record ``error`` with the breaker; True when it now stands open or half-open for a
        failure of the kind it trips on."""
        if self.breaker is None:
            return False
        self.breaker.record_failure(error)
        return self.breaker.state != "closed" and isinstance(error, self.breaker.policy.trip_on)

    async def _attempt(self, msg: Message, value: Any) -> bool:
        """One call of the handler, inside an idempotency claim when the subscriber has one;
        False when the record was a duplicate and the handler did not run."""
        sub = self.sub
        claim: Claim | None = None
        key = self._idempotency_key(msg)
        if key is not None and self.rt.store is not None:
            claim = await self.rt.store.begin(sub.group, key)
            if claim is None:
                log.debug("%s: %s is a duplicate; skipped", sub.name, key)
                return False
            msg = dataclasses.replace(msg, transaction=claim.connection)
        try:
            if value is _UNDECODED:
                value = await self._decode(msg)
            args = (value, msg) if sub.wants_message else (value,)
            result = await sub.handler(*args)
            if sub.output is not None and result is not None:
                await self._publish_output(msg, result)
        except BaseException:
            if claim is not None:
                await claim.abort()
            raise
        if claim is not None:
            await claim.commit()
        return True

    def _idempotency_key(self, msg: Message) -> str | None:
        if not self.sub.idempotent:
            return None
        if self.sub.idempotency_key is None:
            return msg.message_id
        key = self.sub.idempotency_key(msg)
        return key.decode("utf-8", "replace") if isinstance(key, bytes) else key

    async def _publish_output(self, msg: Message, result: object) -> None:
        # A redelivered input produces its output again with the same id, so an idempotent
        # consumer downstream applies it once: the chain stays effectively-once.
        headers = caused_by_headers(msg, self.sub.name)
        output = self.sub.output
        if output is not None:
            await self.rt.publish(
                output, result, key=msg.key, headers=headers, codec=self.sub.output_codec
            )

    # -- waiting: breaker and retry delays ---------------------------------------------------

    async def _pass_breaker(self, waits: _Waits) -> None:
        breaker = self.breaker
        if breaker is None or breaker.allow():
            return

        def wait_ms() -> int:
            if breaker.allow():
                return 0
            # Half-open with every probe slot taken: look again soon.
            return breaker.remaining_open_ms() or 100

        await self._wait(waits, wait_ms)

    async def _wait(self, waits: _Waits, remaining_ms: Callable[[], int]) -> None:
        """Wait until ``remaining_ms()`` is 0 with the consumer paused but polled; raise Stopped
        if the app stops meanwhile."""
        left = remaining_ms()
        if left <= 0:
            return
        waits.enter()
        try:
            while left > 0:
                if self.rt.stopping.is_set():
                    raise Stopped
                await self.rt.sleep(min(left, KEEPALIVE_MS) / 1000.0)
                await waits.keep_alive()
                left = remaining_ms()
        finally:
            waits.leave()

    # -- giving up and moving on -------------------------------------------------------------

    async def _to_retry_topic(self, msg: Message, delivery: _Delivery, failure: Failure) -> None:
        n = failure.attempts
        target = retry_topic(delivery.original.topic, n)
        delay_ms = self.sub.retry.topics[n - 1]
        headers = retry_headers.write(
            delivery.original, msg.headers, failure, due_ms=self.rt.clock.now_ms() + delay_ms
        )
        send_delayed = getattr(self.rt.transport, "send_delayed", None)
        if send_delayed is not None:
            await send_delayed(target, msg.value, msg.key, headers, delay_ms)
        else:
            await self.rt.transport.send(target, msg.value, msg.key, headers)

    async def _give_up(self, msg: Message, delivery: _Delivery, failure: Failure) -> None:
        sub, original = self.sub, delivery.original
        target = sub.dlq_for(original.topic)
        if target is None:
            log.error(
                "%s: %s[%d]@%d failed %d times; skipped (no DLQ)",
                sub.name,
                original.topic,
                original.partition,
                original.offset,
                failure.attempts,
                exc_info=failure.exc,
            )
            return
        source = dataclasses.replace(original, headers=retry_headers.strip(msg.headers))
        await self.rt.transport.send(target, msg.value, msg.key, dlq_headers(source, failure))
        self.rt.metrics.dead_lettered(self.name, original.topic)
        log.warning(
            "%s: %s[%d]@%d dead-lettered to %s after %d attempts: %r",
            sub.name,
            original.topic,
            original.partition,
            original.offset,
            target,
            failure.attempts,
            failure.exc,
        )


class _Waits:
    """The lanes of one consumer that wait (an open breaker, a retry not yet due). The consumer
    stays paused while any of them waits, and one of them at a time polls it to keep its group
    membership. Counting matters: a lane that resumed the consumer while another still polled
    it would be handed records that nobody tracks."""

    def __init__(self, consumer: TransportConsumer) -> None:
        self.consumer = consumer
        self._depth = 0
        self._polling = asyncio.Lock()

    def enter(self) -> None:
        self._depth += 1
        if self._depth == 1:
            self.consumer.pause()

    def leave(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self.consumer.resume()

    async def keep_alive(self) -> None:
        if self._polling.locked():
            return
        async with self._polling:
            got = await self.consumer.fetch(1, 0)
        # A paused consumer hands out nothing (the transport holds what it polled).
        invariant(not got, "a paused consumer returned records")


async def _dispatch(
    concurrency: int, records: list[Message], handle: Callable[[Message], Awaitable[None]]
) -> None:
    if concurrency == 1:
        for msg in records:
            await handle(msg)
        return
    # One lane per (partition, key): lanes run in parallel, a lane's records in order.
    lanes: dict[tuple[str, int, bytes | None], list[Message]] = {}
    for msg in records:
        lanes.setdefault((msg.topic, msg.partition, msg.key), []).append(msg)
    slots = asyncio.Semaphore(concurrency)

    async def run_lane(lane: list[Message]) -> None:
        async with slots:
            for msg in lane:
                await handle(msg)

    async with asyncio.TaskGroup() as group:
        for lane in lanes.values():
            group.create_task(run_lane(lane))
