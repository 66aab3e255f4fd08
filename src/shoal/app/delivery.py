"""One record's way through a subscriber: a pipeline of steps, built once per subscriber.

    retry-stage wait -> trace -> decode -> attempts: (breaker gate -> idempotency claim ->
    late decode -> handler -> output -> claim commit -> breaker outcome) until one succeeds,
    the record moves to a retry topic, or it is dead-lettered; the runner then commits it.

A step the subscriber does not use is not in its pipeline at all: without retry topics there
is no wait, without an OpenTelemetry SDK no span, without a codec decoding is the handler's
JSON decoder called in line, and without a breaker, idempotency or a codec the attempt is the
handler step alone. So the common case runs as two short coroutines: the fast path is this
pipeline with its empty steps dropped, not a second implementation. A failed attempt goes to
:meth:`Pipeline._recover`, which retries it in place through the same attempt steps, forwards
it to the next retry topic, or dead-letters it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shoal.app.message import Message, caused_by_headers
from shoal.app.observability import tracing
from shoal.app.observability.metrics import Instruments
from shoal.app.outbox import Outbox, TransportOutbox
from shoal.app.resilience import retry_headers
from shoal.app.resilience.breaker import BreakerState
from shoal.app.resilience.dlq import Failure, dlq_headers
from shoal.app.resilience.idempotency import IdempotencyStore
from shoal.app.resilience.retry import retry_topic
from shoal.app.serdes.codec import Codec
from shoal.app.serdes.payload import SerdeError, decode
from shoal.app.subscriber import Subscriber
from shoal.app.transport import Transport, TransportConsumer
from shoal.clock import Clock
from shoal.invariant import invariant

log = logging.getLogger("shoal.app")

Sleep = Callable[[float], Awaitable[None]]

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
    outbox: Outbox
    store: IdempotencyStore | None
    system: str


_UNDECODED: Any = object()
"""The value of a record whose codec failed for a reason other than its payload."""


class Stopped(Exception):
    """The app is stopping: the record is left unfinished (uncommitted) for redelivery."""


class Released(Exception):
    """Queue mode: the record failed and goes back to the queue for another delivery."""


class HeldBack(Stopped):
    """Queue mode: the breaker opened before this record's attempt started; it goes back to the
    queue unhandled (released) instead of waiting out the open time while holding its
    acquisition lock. A Stopped: nothing was attempted, and nothing is reported to the
    breaker or the retry policy."""


class FailedForGood(Exception):
    """Queue mode: the record failed for good (dead-lettered, or skipped without a DLQ); the
    queue must not deliver it again."""


@dataclass
class _Delivery:
    """A record's history across deliveries: from its own headers on a retry topic."""

    attempt: int
    first_failure_ms: int | None
    original: Message


class Waits:
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


Attempt = Callable[[Message, Any, Waits], Awaitable[None]]
"""One call of the handler with the steps around it; raises what the handler raised."""
Deliver = Callable[[Message, Waits, "_Delivery | None"], Awaitable[None]]
"""A record's whole delivery (None: its first, on the subscriber's own topics)."""


class Pipeline:
    """The delivery steps of one subscriber, for its main topics or (``retry_stage``) its retry
    topics, with or without tracing (``traced``): :attr:`deliver` is the composed pipeline.
    ``pipelined`` False awaits each output even where the transport could pipeline it (the
    records up to one whose pipelined output failed, so it goes through retries and the DLQ)."""

    def __init__(
        self,
        rt: Runtime,
        sub: Subscriber,
        breaker: BreakerState | None,
        *,
        retry_stage: bool,
        traced: bool,
        pipelined: bool = True,
    ) -> None:
        self.rt = rt
        self.sub = sub
        self.breaker = breaker
        self.name = sub.name
        outbox = rt.outbox
        self._pipelined: TransportOutbox | None = (
            outbox
            if pipelined
            and isinstance(outbox, TransportOutbox)
            and outbox.pipelines
            and sub.output is not None
            # Exactly-once outputs are flushed once at the commit; a queue settles each record
            # when its delivery returns; an idempotency claim must not commit before its output
            # is delivered: those await each output as before.
            and not sub.exactly_once
            and not sub.queue
            and not (sub.idempotent and rt.store is not None)
            else None
        )
        self.outputs_in_flight: dict[tuple[str, int, int], asyncio.Future[None]] = {}
        """(topic, partition, offset) of a record whose delivery returned -> its output's
        delivery, when outputs are pipelined: the runner takes it from here and completes the
        record's offset only once that future succeeded."""
        self._attempt = self._build_attempt()
        deliver = self._decoding()
        if traced:
            deliver = self._traced(deliver)
        if retry_stage:
            deliver = self._when_due(deliver)
        self.deliver = deliver
        """Deliver a record (``delivery`` None) until it succeeds, moves to a retry topic, or
        is dead-lettered; Stopped when the app stops first (it stays uncommitted)."""

    # -- building ----------------------------------------------------------------------------

    def _build_attempt(self) -> Attempt:
        attempt = self._handler_step()
        if self.sub.codec is not None:
            attempt = self._decoding_late(attempt, self.sub.codec)
        store = self.rt.store
        if self.sub.idempotent and store is not None:
            attempt = self._claiming(attempt, store)
        if self.breaker is not None:
            attempt = self._through_breaker(attempt, self.breaker)
        return attempt

    def _handler_step(self) -> Attempt:
        """The handler, its output published, its time measured."""
        handler, wants_message, output = self.sub.handler, self.sub.wants_message, self.sub.output
        processed = self.rt.metrics.processed_by(self.name)
        publish_output, clock = self._publish_output, time.perf_counter

        pipelined, in_flight = self._pipelined, self.outputs_in_flight
        if pipelined is not None and output is not None:
            output_codec = self.sub.output_codec

            async def handle_pipelined(msg: Message, value: Any, waits: Waits) -> None:
                started = clock()
                result = await (handler(value, msg) if wants_message else handler(value))
                if result is not None:
                    headers = caused_by_headers(msg, self.sub.name)
                    in_flight[
                        (msg.topic, msg.partition, msg.offset)
                    ] = await pipelined.publish_pipelined(
                        output, result, key=msg.key, headers=headers, codec=output_codec
                    )
                processed(msg.topic, clock() - started)

            return handle_pipelined

        async def handle(msg: Message, value: Any, waits: Waits) -> None:
            started = clock()
            result = await (handler(value, msg) if wants_message else handler(value))
            if output is not None and result is not None:
                await publish_output(msg, result)
            processed(msg.topic, clock() - started)

        return handle

    def _decoding_late(self, inner: Attempt, codec: Codec) -> Attempt:
        """A record whose codec could not work at first (a registry that did not answer) is
        decoded again at each attempt, so retries, backoff and the breaker apply."""

        async def decoded(msg: Message, value: Any, waits: Waits) -> None:
            if value is _UNDECODED:
                value = await self._decode_with(codec, msg)
            await inner(msg, value, waits)

        return decoded

    def _claiming(self, inner: Attempt, store: IdempotencyStore) -> Attempt:
        """The handler inside an idempotency claim: a record already processed by this group
        is skipped (counted as a duplicate), and the claim commits only with the handler."""
        group, key_of, duplicate = self.sub.group, self._idempotency_key, self.rt.metrics.duplicate

        async def claimed(msg: Message, value: Any, waits: Waits) -> None:
            key = key_of(msg)
            if key is None:
                await inner(msg, value, waits)
                return
            claim = await store.begin(group, key)
            if claim is None:
                log.debug("%s: %s is a duplicate; skipped", self.name, key)
                duplicate(self.name, msg.topic)
                return
            try:
                await inner(dataclasses.replace(msg, transaction=claim.connection), value, waits)
            except BaseException:
                await claim.abort()
                raise
            await claim.commit()

        return claimed

    def _through_breaker(self, inner: Attempt, breaker: BreakerState) -> Attempt:
        """Each attempt passes the breaker's gate first (waiting while it is open) and reports
        a success to it; failures are reported by :meth:`_recover`, which decides whether the
        breaker holds the record."""

        async def guarded(msg: Message, value: Any, waits: Waits) -> None:
            await self._pass_breaker(waits, breaker)
            try:
                await inner(msg, value, waits)
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    breaker.release()  # cancelled: no outcome, free a probe slot
                raise
            breaker.record_success()

        return guarded

    def _traced(self, inner: Deliver) -> Deliver:
        sub, system = self.sub, self.rt.system

        async def traced(msg: Message, waits: Waits, delivery: _Delivery | None) -> None:
            with tracing.consume_span(msg, sub.name, sub.group, system=system):
                await inner(msg, waits, delivery)

        return traced

    def _when_due(self, inner: Deliver) -> Deliver:
        """A record on a retry topic carries its history, and waits until it is due."""
        clock = self.rt.clock

        async def when_due(msg: Message, waits: Waits, delivery: _Delivery | None) -> None:
            delivery = _Delivery(*retry_headers.read(msg))
            await self._wait(waits, lambda: retry_headers.due_in_ms(msg, clock))
            await inner(msg, waits, delivery)

        return when_due

    # -- one record --------------------------------------------------------------------------

    def _decoding(self) -> Deliver:
        """The step every record takes: decode, then the first attempt; a failed attempt goes
        to :meth:`_recover`. Built as a closure over what it reads, so the path every record
        takes does no attribute look-ups on the pipeline or the subscriber."""
        codec, decoder, attempt = self.sub.codec, self.sub.decoder, self._attempt
        recover = self._recover_queued if self.sub.queue else self._recover
        stopping, undecodable = self.rt.stopping, self._undecodable
        decode_with = self._decode_with

        async def decode_and_attempt(
            msg: Message, waits: Waits, delivery: _Delivery | None
        ) -> None:
            if codec is None:
                try:
                    value = decoder(msg.value)
                except Exception:
                    try:  # again, for the SerdeError (with its cause) the DLQ record describes
                        value = decode(decoder, msg.value)
                    except SerdeError as exc:
                        await undecodable(msg, delivery, exc)
                        return
            else:
                try:
                    value = await decode_with(codec, msg)
                except SerdeError as exc:
                    await undecodable(msg, delivery, exc)
                    return
                except Exception:
                    value = _UNDECODED  # not the record's fault: decoded again at each attempt
            # The first attempt is _try_once in line: one coroutine less per record on the path
            # every record takes (the attempt steps themselves are the same ones).
            if stopping.is_set():
                raise Stopped
            try:
                await attempt(msg, value, waits)
            except Stopped:
                raise
            except Exception as exc:
                await recover(msg, value, delivery or _Delivery(1, None, msg), waits, exc)

        return decode_and_attempt

    @staticmethod
    async def _decode_with(codec: Codec, msg: Message) -> Any:
        """The handler's value. SerdeError: the payload is bad (to the DLQ at once); another
        exception: the codec could not work now, and the delivery is retried."""
        try:
            return await codec.decode(msg.topic, msg.value)
        except (ValueError, TypeError, KeyError) as exc:
            raise SerdeError(f"cannot decode payload: {type(exc).__name__}: {exc}") from exc

    async def _undecodable(self, msg: Message, delivery: _Delivery | None, exc: SerdeError) -> None:
        delivery = delivery or _Delivery(1, None, msg)
        now = self.rt.clock.now_ms()
        self.rt.metrics.failed(self.name, msg.topic, exc)
        await self._give_up(msg, delivery, Failure(exc, delivery.attempt, now, now))

    async def _recover(
        self, msg: Message, value: Any, delivery: _Delivery, waits: Waits, failed: Exception
    ) -> None:
        """After a failed attempt: attempt again (after a backoff) until one succeeds, or move
        the record on (retry topic, DLQ)."""
        sub, rt = self.sub, self.rt
        attempt = delivery.attempt
        error: Exception | None = failed
        while True:
            if error is None:
                error = await self._try_once(msg, value, waits)
                if error is None:
                    return
            rt.metrics.failed(self.name, msg.topic, error)
            if self._breaker_holds(error):
                # The dependency is down, not the record: hold it (no attempt is used up)
                # until the breaker lets a probe through.
                error = None
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
            error = None

    async def _recover_queued(
        self, msg: Message, value: Any, delivery: _Delivery, waits: Waits, failed: Exception
    ) -> None:
        """Queue mode, after a failed attempt: one attempt per delivery, counted by the queue
        (``msg.delivery_count``). Released after the backoff while the retry policy allows
        another delivery, else rejected (dead-lettered first). The queue's own delivery limit
        (Kafka's ``share.delivery.count.limit``, 5 by default) must not be below
        ``retry.max_attempts``, or the broker archives the record before it reaches the DLQ."""
        sub, rt = self.sub, self.rt
        rt.metrics.failed(self.name, msg.topic, failed)
        if self._breaker_holds(failed):
            # The dependency is down, not the record: another delivery, which waits at the
            # breaker's gate.
            raise Released
        attempt = msg.delivery_count or 1
        now = rt.clock.now_ms()
        failure = Failure(failed, attempt, now, now)
        if not sub.retry.should_retry(failed, attempt):
            await self._give_up(msg, delivery, failure)
            return
        rt.metrics.retried(self.name, msg.topic)
        await rt.sleep(sub.retry.delay_ms(attempt, rt.rng) / 1000.0)
        raise Released

    async def _try_once(self, msg: Message, value: Any, waits: Waits) -> Exception | None:
        """One more attempt: None on success, else the exception."""
        if self.rt.stopping.is_set():
            raise Stopped
        try:
            await self._attempt(msg, value, waits)
        except Stopped:
            raise
        except Exception as exc:
            return exc
        return None

    def _breaker_holds(self, error: Exception) -> bool:
        """Record ``error`` with the breaker; True when it now stands open or half-open for a
        failure of the kind it trips on."""
        if self.breaker is None:
            return False
        self.breaker.record_failure(error)
        return self.breaker.state != "closed" and isinstance(error, self.breaker.policy.trip_on)

    def _idempotency_key(self, msg: Message) -> str | None:
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
            await self.rt.outbox.publish(
                output, result, key=msg.key, headers=headers, codec=self.sub.output_codec
            )

    # -- waiting: breaker and retry delays ---------------------------------------------------

    async def _pass_breaker(self, waits: Waits, breaker: BreakerState) -> None:
        if breaker.allow():
            return
        queue = self.sub.queue

        def wait_ms() -> int:
            if breaker.allow():
                return 0
            if queue and breaker.state == "open":
                # Queue mode: the record's acquisition lock would run out long before the
                # breaker's open time (and the broker would count another delivery anyway,
                # and hand it on while this handler may still run it): back to the queue now.
                # The runner fetches nothing more until the breaker lets a probe through.
                raise HeldBack
            # Half-open with every probe slot taken (a probe is running): look again soon.
            return breaker.remaining_open_ms() or 100

        await self._wait(waits, wait_ms)

    async def _wait(self, waits: Waits, remaining_ms: Callable[[], int]) -> None:
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
        await self.rt.outbox.forward(target, msg.value, msg.key, headers, delay_ms=delay_ms)

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
            if sub.queue:
                raise FailedForGood
            return
        source = dataclasses.replace(original, headers=retry_headers.strip(msg.headers))
        await self.rt.outbox.forward(target, msg.value, msg.key, dlq_headers(source, failure))
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
        if sub.queue:
            raise FailedForGood
