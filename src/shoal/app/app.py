"""The App: subscribers and publishers declared by decorator, a transport chosen by URL.

    app = App("kafka://localhost:9092")

    @app.subscriber("orders", group="billing", retry=Retry(max_attempts=5), output="bills")
    async def bill(order: Order, msg: Message) -> Bill: ...

Delivery is at-least-once: a record's offset is committed only after its handler finished (or
the record moved to a retry topic or the DLQ), and only as part of a contiguous run of finished
records per partition. The delivery path itself lives in :mod:`shoal.app.runner`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import parse_qsl, urlsplit

from prometheus_client import CollectorRegistry

from shoal.app.delivery import Runtime, Sleep
from shoal.app.extras import extra_required
from shoal.app.message import MESSAGE_ID_HEADER, Headers, Message, caused_by_headers
from shoal.app.observability import tracing
from shoal.app.observability.metrics import Instruments
from shoal.app.outbox import Outbox, TransportOutbox
from shoal.app.queue_limits import check_delivery_limits
from shoal.app.resilience.breaker import Breaker, BreakerRegistry, BreakerState
from shoal.app.resilience.idempotency import IdempotencyStore
from shoal.app.resilience.retry import Retry
from shoal.app.runner import SubscriberRunner
from shoal.app.secrets import redact_url
from shoal.app.serdes.codec import Codec
from shoal.app.streams.hosted import ProcessorRunner, ProcessorSpec
from shoal.app.streams.processor import FETCH_RECORDS_MAX
from shoal.app.streams.processor import Handler as ProcessorHandler
from shoal.app.streams.table import Store
from shoal.app.subscriber import KeyFunction, Publisher, Subscriber, inspect_handler
from shoal.app.transport import (
    QueueTransport,
    TransactionalTransport,
    Transport,
    TransportError,
)
from shoal.app.transports.memory import MemoryTransport
from shoal.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("shoal.app")

H = TypeVar("H", bound=Callable[..., Awaitable[object]])
Hook = Callable[[], object]

CONCURRENCY_MAX = 1024
STOP_TIMEOUT_S = 30.0
"""How long stop() may take in all: in-flight handlers, then the last commits, the leave of the
groups, the shutdown hooks and the disconnect (anything still waiting then is abandoned)."""
DISCONNECT_RESERVE_S = 1.0
"""Of the stop budget, what in-flight handlers may not use: the last commits, the leave of the
groups, the hooks and the disconnect get it (at most a quarter of the budget). A healthy broker
answers all of that in milliseconds."""
CANCELLED_UNWIND_S = 1.0
"""How long a consumer loop cancelled a second time (its close abandoned) gets to unwind; only a
handler that swallows the cancellation takes longer."""
READY_PING_TIMEOUT_S = 2.0
LAG_INTERVAL_S = 15.0
"""How often consumer lag is read for the metrics (a few requests per owned partition)."""
IDEMPOTENCY_DB = "shoal-idempotency.db"
SUBSCRIBE_TIMEOUT_S = 30.0


def _transport_for(url: str) -> tuple[Transport, str | None]:
    """The transport a broker URL names, and the data directory of an embedded broker."""
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return MemoryTransport(parts.netloc + parts.path), None
    # Each client library loads only when its URL is used (they are optional extras).
    needed_for = f"the {parts.scheme}:// transport"
    if parts.scheme in ("amqp", "amqps"):
        with extra_required("amqp", needed_for):
            from shoal.app.transports.amqp import AmqpTransport

        return AmqpTransport(url), None
    if parts.scheme in ("redis", "rediss"):
        with extra_required("redis", needed_for):
            from shoal.app.transports.redis_streams import RedisTransport

        return RedisTransport(url), None
    if parts.scheme in ("nats", "tls"):
        with extra_required("nats", needed_for):
            from shoal.app.transports.nats_jetstream import NatsTransport

        return NatsTransport(url), None
    from shoal.app.transports.kafka import (
        KafkaTransport,  # confluent-kafka loads only when it is used
    )

    if parts.scheme == "kafka":
        if not parts.netloc:
            raise ValueError("kafka:// needs host:port[,host:port...]")
        # Query parameters are librdkafka settings for every client of the app:
        # kafka://host:9092?security.protocol=SASL_SSL&session.timeout.ms=10000
        config = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False))
        return KafkaTransport(parts.netloc, **config), None
    if parts.scheme == "embedded":
        path = parts.netloc + parts.path
        if not path:
            raise ValueError("embedded:// needs a data directory: embedded://PATH")
        # The bootstrap address is only known once the embedded broker has started.
        return KafkaTransport(""), path
    raise ValueError(
        f"unknown broker URL {redact_url(url)!r}: use memory://, kafka://HOST:PORT, "
        "embedded://PATH, amqp://, redis:// or nats://"
    )


def _messaging_system(url: str) -> str:
    """The OpenTelemetry ``messaging.system`` of a broker URL."""
    scheme = urlsplit(url).scheme
    return {"amqp": "rabbitmq", "amqps": "rabbitmq", "redis": "redis", "rediss": "redis"}.get(
        scheme, "nats" if scheme in ("nats", "tls") else "kafka"
    )


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
        name: str = "shoal-app",
        version: str = "0.1.0",
        description: str | None = None,
        idempotency_store: IdempotencyStore | None = None,
        clock: Clock = SYSTEM_CLOCK,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        metrics_registry: CollectorRegistry | None = None,
        lag_interval_s: float = LAG_INTERVAL_S,
    ) -> None:
        """``idempotency_store`` serves subscribers declared ``idempotent=True`` (default: a
        SQLite file, in the data directory of an embedded broker or ``./shoal-idempotency.db``).
        ``clock``, ``sleep`` and ``rng`` drive retry and breaker timing; tests inject fakes."""
        self.url = broker
        self.name = name
        self.version = version
        self.description = description
        self.system = _messaging_system(broker)
        self.metrics = Instruments(metrics_registry)
        self.transport, self._embedded_dir = _transport_for(broker)
        self._embedded: Any = None
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._store = idempotency_store
        self._owns_store = False
        self._lag_interval_s = lag_interval_s
        self.breakers = BreakerRegistry(clock)
        self._instrumented_breakers: set[str] = set()
        self.subscribers: list[Subscriber] = []
        self.publishers: list[Publisher] = []
        self._on_startup: list[Hook] = []
        self._on_shutdown: list[Hook] = []
        self._runners: list[SubscriberRunner] = []
        # issue 20 (stream processing in the App): declared processors and their runners.
        self.processors: list[ProcessorSpec] = []
        self._processor_runners: list[ProcessorRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._started = False

    @property
    def transport(self) -> Transport:
        """The app's transport; setting it (before start) sets :attr:`outbox` too."""
        return self._transport

    @transport.setter
    def transport(self, transport: Transport) -> None:
        self._transport = transport
        self.outbox: Outbox = TransportOutbox(transport, self.system, self.metrics)
        """Where this app's records go out through its transport: :meth:`publish`, and its
        subscribers' outputs, retries and dead letters (the runner's Outbox)."""

    def replace_transport(self, transport: Transport) -> Callable[[], None]:
        """Swap the transport before start (``TestApp`` runs an app on a memory broker this
        way); returns a function that puts the previous one back."""
        if self._started:
            raise RuntimeError("the transport cannot change while the app runs")
        previous = (self.transport, self._embedded_dir)
        self.transport, self._embedded_dir = transport, None

        def undo() -> None:
            self.transport, self._embedded_dir = previous

        return undo

    # -- declaring ---------------------------------------------------------------------------

    def subscriber(
        self,
        topic: str | Sequence[str],
        *,
        group: str,
        retry: Retry | None = None,
        dlq: bool | str = True,
        concurrency: int = 1,
        output: str | None = None,
        breaker: Breaker | None = None,
        idempotent: bool = False,
        idempotency_key: KeyFunction | None = None,
        codec: Codec | None = None,
        output_codec: Codec | None = None,
        exactly_once: bool = False,
        queue: bool = False,
    ) -> Callable[[H], H]:
        """Register an async handler for ``topic``.

        ``concurrency`` > 1 runs records of different keys in parallel (records of one key stay
        in order). ``dlq``: True sends records that failed for good to ``<topic>.dlq``, a string
        names the DLQ topic, False logs and skips them. ``output``: the topic the handler's
        return value (unless None) is published to, keyed like the input. ``breaker``: pause
        this subscription while a dependency is failing. ``idempotent``: skip records whose
        message id (or ``idempotency_key(msg)``) was already processed by this group.
        ``codec``/``output_codec``: a payload format other than JSON (e.g. Avro through the
        schema registry) for the records read / the return values published.
        ``exactly_once``: each fetch's outputs (and records moved to retry or dead-letter
        topics) and its consumed offsets commit in one Kafka transaction, read with
        read_committed; the app refuses to start on a transport that cannot do it.
        ``queue``: consume as a queue (a Kafka share group): any number of instances share
        the records without partition limits, each record is acknowledged on its own; a
        failure releases it for redelivery after the retry backoff (the handler sees
        ``msg.delivery_count``) until ``retry.max_attempts`` deliveries, then it is rejected
        (to the DLQ unless ``dlq=False``); a crashed instance's records come back after the
        queue's lock timeout. ``concurrency`` then runs records in parallel without per-key
        order. Not with retry topics or ``exactly_once``.
        """
        if not 1 <= concurrency <= CONCURRENCY_MAX:
            raise ValueError(f"concurrency must be in 1..{CONCURRENCY_MAX}")
        topics = (topic,) if isinstance(topic, str) else tuple(topic)
        if not topics or not all(topics):
            raise ValueError("a subscriber needs at least one non-empty topic name")
        if not group:
            raise ValueError("a subscriber needs a consumer group name")
        if idempotency_key is not None and not idempotent:
            raise ValueError("idempotency_key is only used with idempotent=True")
        if queue and exactly_once:
            raise ValueError(
                "queue=True and exactly_once=True do not combine: a queue has no "
                "offsets to commit in a transaction"
            )
        if queue and retry is not None and retry.topics:
            raise ValueError("queue=True retries by redelivery from the queue: no retry topics")

        def register(handler: H) -> H:
            if self._started:
                raise RuntimeError("subscribers must be registered before start()")
            decoder, payload, wants_message, returns = inspect_handler(handler)
            self.subscribers.append(
                Subscriber(
                    topics=topics,
                    group=group,
                    handler=handler,
                    decoder=decoder,
                    payload_type=payload,
                    wants_message=wants_message,
                    retry=retry or Retry(),
                    dlq=dlq,
                    concurrency=concurrency,
                    output=output,
                    output_type=returns if output is not None else None,
                    breaker=breaker,
                    idempotent=idempotent,
                    idempotency_key=idempotency_key,
                    codec=codec,
                    output_codec=output_codec,
                    exactly_once=exactly_once,
                    queue=queue,
                )
            )
            return handler

        return register

    def publisher(
        self,
        topic: str,
        *,
        payload: Any = Any,
        description: str | None = None,
        codec: Codec | None = None,
    ) -> Publisher:
        """Declare a topic this app sends to (it appears in the AsyncAPI document); returns a
        handle whose ``publish`` sends to it."""
        if not topic:
            raise ValueError("a publisher needs a topic name")
        declared = Publisher(topic, payload, description, self.publish, codec)
        self.publishers.append(declared)
        return declared

    def processor(
        self,
        topic: str | Sequence[str],
        *,
        group: str,
        stores: Sequence[Store] = (),
        outputs: Sequence[str] = (),
        retry: Retry | None = None,
        dlq: bool | str = True,
        exactly_once: bool = False,
        fetch_records_max: int = FETCH_RECORDS_MAX,
        start_at_ms: int | None = None,
    ) -> Callable[[ProcessorHandler], ProcessorHandler]:
        """Register a stream processor (:mod:`shoal.app.streams`): ``handler(msg, out)`` runs
        for each record of ``topic`` in offset order per partition, changing ``stores`` (tables
        kept in compacted changelog topics, restored on start and on partition reassignment)
        and sending records with ``out.send`` to ``outputs``. It starts and stops with the app
        and counts in its readiness, metrics and lag. A handler that raises is retried in place
        (``retry``; no retry topics) and then dead-lettered (``dlq`` as for subscribers); the
        processor goes on. ``exactly_once``: each fetch's outputs, changelog records and offsets
        commit in one Kafka transaction. ``start_at_ms``: see :class:`Processor`."""
        topics = (topic,) if isinstance(topic, str) else tuple(topic)
        if not topics or not all(topics):
            raise ValueError("a processor needs at least one non-empty topic name")
        if not group:
            raise ValueError("a processor needs a consumer group name")
        if retry is not None and retry.topics:
            raise ValueError(
                "a processor retries in place (its state follows each partition in offset "
                "order): no retry topics"
            )

        def register(handler: ProcessorHandler) -> ProcessorHandler:
            if self._started:
                raise RuntimeError("processors must be registered before start()")
            if not inspect.iscoroutinefunction(handler):
                raise TypeError(f"{handler!r} must be an async function of (msg, out)")
            self.processors.append(
                ProcessorSpec(
                    topics=topics,
                    group=group,
                    handler=handler,
                    stores=tuple(stores),
                    outputs=tuple(outputs),
                    retry=retry or Retry(),
                    dlq=dlq,
                    exactly_once=exactly_once,
                    fetch_records_max=fetch_records_max,
                    start_at_ms=start_at_ms,
                )
            )
            return handler

        return register

    def on_startup(self, hook: Hook) -> Hook:
        """Run ``hook`` (sync or async) at start, after the broker connection and before any
        subscriber consumes; a failing hook fails start()."""
        self._on_startup.append(hook)
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        """Run ``hook`` at stop, after the subscribers finished and before disconnecting."""
        self._on_shutdown.append(hook)
        return hook

    # -- publishing --------------------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        value: object,
        *,
        key: bytes | str | None = None,
        headers: Mapping[str, str | bytes] | Sequence[tuple[str, bytes]] | None = None,
        codec: Codec | None = None,
        caused_by: Message | None = None,
    ) -> str:
        """Encode ``value`` (JSON, or with ``codec``) and send it; return its shoal message id
        once the broker has it. ``caused_by``: the record being handled, when this one is its
        consequence: it gets a causation header and an id derived from the source's, the same
        on every redelivery of the source (so downstream deduplication works)."""
        encoded_headers = _headers(headers)
        if caused_by is not None:
            explicit_id = any(k == MESSAGE_ID_HEADER for k, _ in encoded_headers)
            encoded_headers += [
                h
                for h in caused_by_headers(caused_by, topic)
                if not (explicit_id and h[0] == MESSAGE_ID_HEADER)
            ]
        raw_key = key.encode() if isinstance(key, str) else key
        return await self.outbox.publish(
            topic, value, key=raw_key, headers=encoded_headers, codec=codec
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def _check_exactly_once(self) -> None:
        """exactly_once=True needs transactions, which only Kafka transports have."""
        if isinstance(self.transport, TransactionalTransport):
            return
        for spec in self.processors:
            if spec.exactly_once:
                raise TransportError(
                    f"processor {spec.name}: exactly_once=True needs a Kafka transport "
                    f"(kafka:// or embedded://): {type(self.transport).__name__} cannot commit "
                    "outputs, changelogs and offsets in one transaction"
                )
        for sub in self.subscribers:
            if sub.exactly_once:
                raise TransportError(
                    f"subscriber {sub.name}: exactly_once=True needs a Kafka transport (kafka:// "
                    f"or embedded://): {type(self.transport).__name__} cannot commit a handler's "
                    "outputs and its consumed offsets in one transaction"
                )

    def _check_queues(self) -> None:
        """queue=True needs a transport with queues (issue 16: Kafka share groups)."""
        if isinstance(self.transport, QueueTransport):
            return
        for sub in self.subscribers:
            if sub.queue:
                raise TransportError(
                    f"subscriber {sub.name}: queue=True needs a transport with queues (kafka:// "
                    "or embedded:// share groups, amqp://, redis://, nats://, memory://): "
                    f"{type(self.transport).__name__} has none"
                )

    async def start(self) -> None:
        if self._started:
            return
        tracing.refresh()  # an OpenTelemetry SDK may have been installed since the last look
        self._check_exactly_once()
        self._check_queues()
        if self._embedded_dir is not None:
            await self._start_embedded(self._embedded_dir)
        await self.transport.start()
        try:
            await self.transport.ensure_topics(self._declared_topics())
            await check_delivery_limits(self.transport, self.subscribers)  # issue 16: queues
            await self._open_store()
            for hook in self._on_startup:
                await _call_hook(hook)
        except BaseException:
            await self._close_store()
            await self.transport.stop()
            await self._stop_embedded()
            raise
        self._started = True
        self._stopping = asyncio.Event()
        runtime = Runtime(
            transport=self.transport,
            clock=self._clock,
            sleep=self._sleep,
            rng=self._rng,
            stopping=self._stopping,
            metrics=self.metrics,
            outbox=self.outbox,
            store=self._store,
            system=self.system,
        )
        for sub in self.subscribers:
            runner = SubscriberRunner(runtime, sub, self._breaker_for(sub))
            self._runners.append(runner)
            for i, loop in enumerate(runner.loops()):
                self._tasks.append(asyncio.create_task(loop(), name=f"shoal:{sub.name}:{i}"))
        for spec in self.processors:
            proc_runner = ProcessorRunner(runtime, spec)
            self._processor_runners.append(proc_runner)
            self._tasks.append(asyncio.create_task(proc_runner.run(), name=f"shoal:{spec.name}"))
        if self._lag_interval_s > 0 and (self._runners or self._processor_runners):
            self._tasks.append(asyncio.create_task(self._report_lag(), name="shoal:lag"))
        await self._wait_subscribed()

    async def _wait_subscribed(self) -> None:
        """Return once every subscriber's consumers exist (a broker that is down makes them
        retry in the background; start() does not wait for it forever)."""
        waits = [asyncio.create_task(r.subscribed.wait()) for r in self._runners]
        waits += [asyncio.create_task(r.subscribed.wait()) for r in self._processor_runners]
        if not waits:
            return
        _, pending = await asyncio.wait(waits, timeout=SUBSCRIBE_TIMEOUT_S)
        for task in pending:
            task.cancel()
        if pending:
            log.warning(
                "%s: %d subscriber(s) could not subscribe within %.0f s; they keep trying",
                self.name,
                len(pending),
                SUBSCRIBE_TIMEOUT_S,
            )

    def _declared_topics(self) -> list[str]:
        topics = [t for sub in self.subscribers for t in sub.all_topics()]
        topics += [p.topic for p in self.publishers]
        topics += [t for spec in self.processors for t in (*spec.topics, *spec.all_outputs())]
        return list(dict.fromkeys(topics))

    def _breaker_for(self, sub: Subscriber) -> BreakerState | None:
        if sub.breaker is None:
            return None
        state = self.breakers.get(sub.breaker, sub.name)
        label = sub.breaker.name or sub.name
        # Once per breaker (named ones are shared), whatever callbacks the user added.
        if label not in self._instrumented_breakers:
            self._instrumented_breakers.add(label)
            self.metrics.breaker_state(label, "closed")
            state.on_change.append(lambda _old, new: self.metrics.breaker_state(label, new))
            state.on_change.append(
                lambda old, new: log.warning("circuit breaker %s: %s -> %s", label, old, new)
            )
        return state

    async def _open_store(self) -> None:
        if not any(sub.idempotent for sub in self.subscribers):
            return
        if self._store is None:
            from shoal.app.resilience.idempotency import SQLiteStore

            base = Path(self._embedded_dir) if self._embedded_dir is not None else Path(".")
            self._store = SQLiteStore(base / IDEMPOTENCY_DB, clock=self._clock)
            self._owns_store = True
        await self._store.open()

    async def _close_store(self) -> None:
        if self._store is not None and any(sub.idempotent for sub in self.subscribers):
            with contextlib.suppress(Exception):
                await self._store.close()
        if self._owns_store:
            self._store = None
            self._owns_store = False

    @property
    def embedded_http_url(self) -> str | None:
        """The HTTP URL of the started embedded broker (its schema registry, console and
        metrics); None before start and for any other broker."""
        return None if self._embedded is None else str(self._embedded.http_url)

    async def _start_embedded(self, data_dir: str) -> None:
        from shoal.app.transports.embedded import EMBEDDED_BROKERS
        from shoal.app.transports.kafka import KafkaTransport

        self._embedded = await asyncio.to_thread(EMBEDDED_BROKERS.acquire, data_dir)
        self.transport = KafkaTransport(self._embedded.bootstrap_servers)

    async def _stop_embedded(self) -> None:
        if self._embedded is not None:
            embedded, self._embedded = self._embedded, None
            from shoal.app.transports.embedded import EMBEDDED_BROKERS

            await asyncio.to_thread(EMBEDDED_BROKERS.release, embedded)

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop fetching; let in-flight records finish (records not yet started are left for
        redelivery) and commit what finished; leave the groups; run the shutdown hooks;
        disconnect. All of it within ``timeout_s``, whatever the broker does: handlers get the
        budget but :data:`DISCONNECT_RESERVE_S`, then are cancelled (uncommitted); a commit,
        leave, hook or disconnect still waiting when the budget is spent is abandoned, and the
        log says what that means (uncommitted records are redelivered, unflushed ones were
        never acknowledged)."""
        if not self._started:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        handlers_s = timeout_s - min(DISCONNECT_RESERVE_S, timeout_s / 4)
        self._stopping.set()
        tasks, self._tasks = self._tasks, []
        pending = await _unfinished(tasks, handlers_s)
        for task in pending:
            log.warning("%s did not finish within %.1f s; cancelled", task.get_name(), handlers_s)
            task.cancel()
        # Cancelled loops still commit what finished and close their consumers, in what is
        # left of the budget; a close still waiting then is abandoned (cancelled again).
        stuck = await _unfinished(pending, deadline - loop.time())
        for task in stuck:
            task.cancel()
        for task in await _unfinished(stuck, CANCELLED_UNWIND_S):
            log.error("%s ignored its cancellation; left running", task.get_name())
        self._runners.clear()
        self._processor_runners.clear()
        try:
            for hook in self._on_shutdown:
                try:
                    await _within(deadline, f"shutdown hook {hook!r}", _call_hook(hook))
                except Exception:
                    log.exception("shutdown hook %r failed", hook)
            await self._close_store()  # a local SQLite file: no broker to wait for
            await _within(deadline, "closing the transport", self.transport.stop())
        finally:
            self._started = False
            await self._stop_embedded()

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

    # -- running as a service ----------------------------------------------------------------

    def run(
        self,
        *,
        http_host: str = "127.0.0.1",
        http_port: int | None = None,
        shutdown_timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        """Run until SIGTERM or SIGINT, then stop gracefully (``shoal run`` calls this). With
        ``http_port``, serve /livez, /readyz and /metrics on it."""
        asyncio.run(
            self.serve(
                http_host=http_host, http_port=http_port, shutdown_timeout_s=shutdown_timeout_s
            )
        )

    async def serve(
        self,
        *,
        http_host: str = "127.0.0.1",
        http_port: int | None = None,
        shutdown_timeout_s: float = STOP_TIMEOUT_S,
        stop_event: asyncio.Event | None = None,
    ) -> None:
        """:meth:`run` inside a running loop; ``stop_event`` (or a signal) ends it."""
        done = stop_event or asyncio.Event()
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, done.set)
                installed.append(sig)
        health = None
        try:
            await self.start()
            if http_port is not None:
                from shoal.app.observability.health import serve_health

                health = await serve_health(self, http_host, http_port)
                log.info(
                    "%s: health and metrics on http://%s:%d", self.name, http_host, health.port
                )
            log.info("%s: running on %s", self.name, redact_url(self.url))
            await done.wait()
            log.info("%s: stopping", self.name)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.stop(shutdown_timeout_s)
            if health is not None:
                await health.stop()

    def live(self) -> bool:
        """False once a consumer loop has died for good (a bug, not a broker outage: those are
        retried inside the loop), so an orchestrator restarts the process."""
        return self._started and not any(t.done() for t in self._tasks)

    async def ready(self) -> bool:
        """Started, every consumer has partitions assigned, and the broker answers."""
        if not self._started or self._stopping.is_set():
            return False
        for runner in self._runners:
            if not runner.consumers or not all(c.assignment() for _, c in runner.consumers):
                return False
        if not all(r.ready() for r in self._processor_runners):
            return False
        try:
            await asyncio.wait_for(self.transport.ping(), READY_PING_TIMEOUT_S)
        except (TransportError, TimeoutError):
            return False
        return True

    async def _report_lag(self) -> None:
        reported: set[tuple[str, str, int]] = set()
        while not self._stopping.is_set():
            now: set[tuple[str, str, int]] = set()
            runners: list[SubscriberRunner | ProcessorRunner] = [
                *self._runners,
                *self._processor_runners,
            ]
            for runner in runners:
                for group, consumer in list(runner.consumers):
                    try:
                        lags = await consumer.lag()
                    except Exception:
                        log.debug("lag of %s unavailable", group, exc_info=True)
                        continue
                    for (topic, partition), lag in lags.items():
                        self.metrics.lag(group, topic, partition, lag)
                        now.add((group, topic, partition))
            # Partitions a rebalance moved elsewhere: their owner reports them now.
            for group, topic, partition in reported - now:
                self.metrics.forget_lag(group, topic, partition)
            reported = now
            # asyncio.timeout, not wait_for (which on Python 3.11 can swallow a cancel).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._lag_interval_s):
                    await self._stopping.wait()


async def _unfinished(
    tasks: Sequence[asyncio.Task[None]] | set[asyncio.Task[None]], timeout_s: float
) -> set[asyncio.Task[None]]:
    """The tasks still running after waiting up to ``timeout_s`` (none: no wait at all)."""
    if not tasks:
        return set()
    _, pending = await asyncio.wait(tasks, timeout=max(timeout_s, 0.0))
    return pending


async def _within(deadline: float, what: str, step: Awaitable[None]) -> None:
    """Await ``step`` until the loop time ``deadline``; past it, abandon it with a warning
    (the step logs what it leaves undone, when it knows)."""
    try:
        async with asyncio.timeout_at(deadline) as budget:
            await step
    except TimeoutError:
        if not budget.expired():
            raise  # the step's own timeout, not the stop budget: its error to report
        log.warning("%s abandoned: the stop timeout was spent", what)


async def _call_hook(hook: Hook) -> None:
    result = hook()
    if inspect.isawaitable(result):
        await result
