"""The App: subscribers registered by decorator, a transport chosen by URL, retry and DLQ.

    app = App("kafka://localhost:9092")

    @app.subscriber("orders", group="billing", retry=Retry(max_attempts=5))
    async def bill(order: Order, msg: Message) -> None: ...

Delivery is at-least-once: a record's offset is committed only after its handler finished (or
it was dead-lettered), and only as part of a contiguous run of finished records per partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import typing
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

from shoal.app.dlq import Failure, dlq_headers, dlq_topic
from shoal.app.memory import MemoryTransport
from shoal.app.message import MESSAGE_ID_HEADER, Headers, Message
from shoal.app.offsets import OffsetTracker
from shoal.app.retry import Retry
from shoal.app.serde import Decoder, SerdeError, decode, decoder_for, encode
from shoal.app.transport import Transport, TransportConsumer
from shoal.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("shoal.app")

Sleep = Callable[[float], Awaitable[None]]
H = TypeVar("H", bound=Callable[..., Awaitable[object]])

FETCH_RECORDS_MAX = 500
"""Records per fetch: a bound on in-flight work, and on what a crash sends round again."""
POLL_TIMEOUT_S = 0.1
"""How long a fetch waits for records; also how quickly a subscriber notices stop()."""
RESTART_DELAY_S = 1.0
"""Pause before a subscriber that hit a transport error reconnects (real time, not injected)."""
CONCURRENCY_MAX = 1024


@dataclass(frozen=True, slots=True)
class Subscriber:
    topics: tuple[str, ...]
    group: str
    handler: Callable[..., Awaitable[object]]
    decoder: Decoder
    wants_message: bool
    retry: Retry
    dlq: bool
    concurrency: int

    @property
    def name(self) -> str:
        return getattr(self.handler, "__qualname__", repr(self.handler))


def _inspect_handler(handler: Callable[..., Awaitable[object]]) -> tuple[Decoder, bool]:
    """The decoder for the handler's first parameter, and whether it takes a Message second."""
    if not inspect.iscoroutinefunction(handler):
        raise TypeError(f"{handler!r} must be an async function")
    params = list(inspect.signature(handler).parameters.values())
    if not 1 <= len(params) <= 2:
        raise TypeError("a handler takes (value) or (value, message)")
    hints = typing.get_type_hints(handler)
    return decoder_for(hints.get(params[0].name, Any)), len(params) == 2


def _transport_for(url: str) -> tuple[Transport, str | None]:
    """The transport a broker URL names, and the data directory of an embedded broker."""
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return MemoryTransport(parts.netloc + parts.path), None
    from shoal.app.kafka import KafkaTransport  # confluent-kafka loads only when it is used

    if parts.scheme == "kafka":
        if not parts.netloc:
            raise ValueError("kafka:// needs host:port[,host:port...]")
        return KafkaTransport(parts.netloc), None
    if parts.scheme == "embedded":
        path = parts.netloc + parts.path
        if not path:
            raise ValueError("embedded:// needs a data directory: embedded://PATH")
        # The bootstrap address is only known once the embedded broker has started.
        return KafkaTransport(""), path
    raise ValueError(f"unknown broker URL {url!r}: use memory://, kafka://HOST:PORT or embedded://")


def _headers(headers: Mapping[str, str | bytes] | Sequence[tuple[str, bytes]] | None) -> Headers:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(k, v.encode() if isinstance(v, str) else bytes(v)) for k, v in items]


class App:
    def __init__(
        self,
        broker: str = "memory://",
        *,
        clock: Clock = SYSTEM_CLOCK,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        """``clock``, ``sleep`` and ``rng`` drive retry timing; tests inject fakes."""
        self.url = broker
        self.transport, self._embedded_dir = _transport_for(broker)
        self._embedded: Any = None
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.subscribers: list[Subscriber] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._started = False

    def subscriber(
        self,
        topic: str | Sequence[str],
        *,
        group: str,
        retry: Retry | None = None,
        dlq: bool = True,
        concurrency: int = 1,
    ) -> Callable[[H], H]:
        """Register an async handler for ``topic``. ``concurrency`` > 1 runs records of different
        keys in parallel (records of one key stay in order). With ``dlq`` False, a record that
        exhausted its retries is logged and skipped."""
        if not 1 <= concurrency <= CONCURRENCY_MAX:
            raise ValueError(f"concurrency must be in 1..{CONCURRENCY_MAX}")
        topics = (topic,) if isinstance(topic, str) else tuple(topic)

        def register(handler: H) -> H:
            if self._started:
                raise RuntimeError("subscribers must be registered before start()")
            decoder, wants_message = _inspect_handler(handler)
            self.subscribers.append(
                Subscriber(
                    topics,
                    group,
                    handler,
                    decoder,
                    wants_message,
                    retry or Retry(),
                    dlq,
                    concurrency,
                )
            )
            return handler

        return register

    async def publish(
        self,
        topic: str,
        value: object,
        *,
        key: bytes | str | None = None,
        headers: Mapping[str, str | bytes] | Sequence[tuple[str, bytes]] | None = None,
    ) -> str:
        """Encode and send ``value``; return its shoal message id once the broker has it."""
        encoded_headers = _headers(headers)
        message_id = next((v.decode() for k, v in encoded_headers if k == MESSAGE_ID_HEADER), None)
        if message_id is None:
            message_id = uuid.uuid4().hex
            encoded_headers.append((MESSAGE_ID_HEADER, message_id.encode()))
        raw_key = key.encode() if isinstance(key, str) else key
        await self.transport.send(topic, encode(value), raw_key, encoded_headers)
        return message_id

    async def start(self) -> None:
        if self._started:
            return
        if self._embedded_dir is not None:
            await self._start_embedded(self._embedded_dir)
        await self.transport.start()
        self._started = True
        self._stopping = asyncio.Event()
        for sub in self.subscribers:
            self._tasks.append(asyncio.create_task(self._run(sub), name=f"shoal:{sub.name}"))

    async def _start_embedded(self, data_dir: str) -> None:
        # The embedded broker runs in this process, but the app still talks to it only through
        # the Kafka protocol: shoal.embedded is its one allowed import from the broker side
        # (an explicit exception in the import-linter contract).
        from shoal.app.kafka import KafkaTransport
        from shoal.embedded import EmbeddedBroker

        self._embedded = await asyncio.to_thread(EmbeddedBroker(data_dir).start)
        self.transport = KafkaTransport(self._embedded.bootstrap_servers)

    async def stop(self) -> None:
        """Stop fetching, let each subscriber finish its batch and commit, then disconnect."""
        if not self._started:
            return
        self._stopping.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        try:
            await self.transport.stop()
        finally:
            self._started = False
            if self._embedded is not None:
                await asyncio.to_thread(self._embedded.stop)
                self._embedded = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- consuming ---------------------------------------------------------------------------

    async def _run(self, sub: Subscriber) -> None:
        while not self._stopping.is_set():
            consumer = self.transport.consumer(list(sub.topics), sub.group)
            try:
                await consumer.start()
                await self._consume(sub, consumer)
            except Exception:
                # Uncommitted records are fetched again by the next consumer: at-least-once.
                log.exception("subscriber %s failed; reconnecting", sub.name)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), RESTART_DELAY_S)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.close()

    async def _consume(self, sub: Subscriber, consumer: TransportConsumer) -> None:
        tracker = OffsetTracker()
        while not self._stopping.is_set():
            records = await consumer.fetch(FETCH_RECORDS_MAX, POLL_TIMEOUT_S)
            if not records:
                continue
            for msg in records:
                tracker.track((msg.topic, msg.partition), msg.offset)

            async def handle(msg: Message) -> None:
                await self._handle(sub, msg)
                tracker.complete((msg.topic, msg.partition), msg.offset)

            await self._dispatch(sub, records, handle)
            await consumer.commit(tracker.committable())

    async def _dispatch(
        self, sub: Subscriber, records: list[Message], handle: Callable[[Message], Awaitable[None]]
    ) -> None:
        if sub.concurrency == 1:
            for msg in records:
                await handle(msg)
            return
        # One lane per (partition, key): lanes run in parallel, a lane's records in order.
        lanes: dict[tuple[str, int, bytes | None], list[Message]] = {}
        for msg in records:
            lanes.setdefault((msg.topic, msg.partition, msg.key), []).append(msg)
        slots = asyncio.Semaphore(sub.concurrency)

        async def run_lane(lane: list[Message]) -> None:
            async with slots:
                for msg in lane:
                    await handle(msg)

        async with asyncio.TaskGroup() as group:
            for lane in lanes.values():
                group.create_task(run_lane(lane))

    async def _handle(self, sub: Subscriber, msg: Message) -> None:
        """Deliver ``msg`` until it succeeds, or it has failed for good and is dead-lettered."""
        try:
            value = decode(sub.decoder, msg.value)
        except SerdeError as exc:
            now = self._clock.now_ms()
            await self._give_up(sub, msg, Failure(exc, 1, now, now))
            return
        args = (value, msg) if sub.wants_message else (value,)
        attempt = 1
        first_failure_ms: int | None = None
        while True:
            try:
                await sub.handler(*args)
                return
            except Exception as exc:
                now = self._clock.now_ms()
                first_failure_ms = now if first_failure_ms is None else first_failure_ms
                if not sub.retry.should_retry(exc, attempt):
                    await self._give_up(sub, msg, Failure(exc, attempt, first_failure_ms, now))
                    return
                await self._sleep(sub.retry.delay_ms(attempt, self._rng) / 1000.0)
                attempt += 1

    async def _give_up(self, sub: Subscriber, msg: Message, failure: Failure) -> None:
        if not sub.dlq:
            log.error(
                "%s: %s[%d]@%d failed %d times; skipped (no DLQ)",
                sub.name,
                msg.topic,
                msg.partition,
                msg.offset,
                failure.attempts,
                exc_info=failure.exc,
            )
            return
        target = dlq_topic(msg.topic)
        await self.transport.send(target, msg.value, msg.key, dlq_headers(msg, failure))
        log.warning(
            "%s: %s[%d]@%d dead-lettered to %s after %d attempts: %r",
            sub.name,
            msg.topic,
            msg.partition,
            msg.offset,
            target,
            failure.attempts,
            failure.exc,
        )
