"""The NATS JetStream transport: a topic is a stream with one subject, a group a durable pull
consumer on it.

    nats://[user:password@]host:port[,host:port...][?ack_wait_s=30&max_deliver=-1
        &max_ack_pending=10000&duplicate_window_s=120&max_age_s=0&max_msgs=-1]

Streams are created on demand with the file store and limits retention (a log, like a Kafka
topic: every group reads every record). Consumers ack explicitly; ``ack_wait_s`` is how long a
delivery may stay unacknowledged before JetStream redelivers it (live consumers ask for more
time while a handler runs), ``max_deliver`` caps deliveries (-1, the default, never gives up:
the App's own retry and DLQ decide when a record has failed for good).

A send returns once JetStream acknowledged the publish (the record is in the stream's store).
``Nats-Msg-Id`` carries the shoal message id, so a send retried within ``duplicate_window_s`` is
stored once. A record that is a copy of a consumed one (a dead letter, a redrive) carries the
stream sequence it was read at in ``shoal.nats.seq``; its dedup id is qualified with that, so
the copy is not mistaken for a retry of the original publish.

NATS headers are text, one value per name, and nats-py strips surrounding whitespace, so shoal
headers (bytes, repeatable, ordered) travel in one header, and the key in another::

    Shoal-Headers: [["name","<base64 of the value>"], ...]   (compact JSON, ASCII)
    Shoal-Key:     <base64 of the key>                        (absent when the key is None)

Messages published by other NATS clients (no ``Shoal-Headers``) are delivered with their NATS
headers as shoal headers (UTF-8 values) and no key.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from shoal.app.message import MESSAGE_ID_HEADER, Headers, Message
from shoal.app.secrets import redact_url
from shoal.app.transport import (
    Acknowledgement,
    DeliveryLimit,
    TopicPartition,
    TransportError,
)
from shoal.app.transports.background import keep_alive
from shoal.app.transports.ledger import DeliveryLedger
from shoal.app.transports.work_queue import FetchGuard, Settlement

log = logging.getLogger("shoal.app.nats")

STREAM_SEQ_HEADER = "shoal.nats.seq"
"""The stream sequence of a delivered record: JetStream's own name for it."""
DELIVERY_COUNT_HEADER = "shoal.nats.delivery-count"
"""How many times the consumer has delivered this message (1 on first delivery)."""
HEADERS_HEADER = "Shoal-Headers"
KEY_HEADER = "Shoal-Key"
MSG_ID_HEADER = "Nats-Msg-Id"

ACK_WAIT_S_DEFAULT = 30.0
MAX_ACK_PENDING_DEFAULT = 10_000
"""Above the App's fetch size (500) with room for several batches in flight; JetStream stops
delivering to the group once this many are unacknowledged."""
DUPLICATE_WINDOW_S_DEFAULT = 120.0
"""JetStream's own default: a publish retried within two minutes is stored once."""
REQUEST_TIMEOUT_S = 5.0
"""Publish acks, stream and consumer requests: past this the server is taken as unreachable."""
RECONNECT_WAIT_S = 0.5
READ_BATCH = 256
READ_IDLE_FETCHES_MAX = 10
"""Empty fetches before read_topic gives up: the last sequence came from the server, so the
records exist; a long silence means something is wrong, not slow."""
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _safe_name(text: str) -> str:
    """A stream or consumer name for ``text``: JetStream names may not hold ``.``, ``*``, ``>``,
    whitespace or path separators; a digest of the original keeps distinct names distinct."""
    safe = _NAME_UNSAFE.sub("_", text)
    if safe == text and safe:
        return safe
    return f"{safe}_{hashlib.blake2b(text.encode(), digest_size=4).hexdigest()}"


def stream_name(topic: str) -> str:
    return _safe_name(topic)


def subject_for(topic: str) -> str:
    tokens = topic.split(".")
    if not topic or any(not t or t in ("*", ">") or any(c.isspace() for c in t) for t in tokens):
        raise ValueError(
            f"topic {topic!r} is not a NATS subject: dot-separated non-empty tokens, "
            "no whitespace, no * or > tokens"
        )
    return topic


@dataclass(frozen=True, slots=True)
class NatsSettings:
    servers: list[str]
    ack_wait_s: float = ACK_WAIT_S_DEFAULT
    max_deliver: int = -1
    max_ack_pending: int = MAX_ACK_PENDING_DEFAULT
    duplicate_window_s: float = DUPLICATE_WINDOW_S_DEFAULT
    max_age_s: float = 0.0
    max_msgs: int = -1

    @classmethod
    def from_url(cls, url: str) -> NatsSettings:
        parts = urlsplit(url)
        userinfo, _, hosts = parts.netloc.rpartition("@")
        prefix = f"{parts.scheme}://{userinfo + '@' if userinfo else ''}"
        servers = [prefix + host for host in hosts.split(",") if host]
        if not servers:
            raise ValueError("nats:// needs host:port[,host:port...]")
        numbers: dict[str, float] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name not in cls.__dataclass_fields__ or name == "servers":
                raise ValueError(f"unknown NATS option {name!r} in {redact_url(url)!r}")
            try:
                numbers[name] = float(value)
            except ValueError:
                raise ValueError(f"{name} must be a number, not {value!r}") from None
        settings = cls(
            servers=servers,
            ack_wait_s=numbers.get("ack_wait_s", ACK_WAIT_S_DEFAULT),
            max_deliver=int(numbers.get("max_deliver", -1)),
            max_ack_pending=int(numbers.get("max_ack_pending", MAX_ACK_PENDING_DEFAULT)),
            duplicate_window_s=numbers.get("duplicate_window_s", DUPLICATE_WINDOW_S_DEFAULT),
            max_age_s=numbers.get("max_age_s", 0.0),
            max_msgs=int(numbers.get("max_msgs", -1)),
        )
        if settings.ack_wait_s <= 0 or settings.max_ack_pending < 1:
            raise ValueError("ack_wait_s and max_ack_pending must be positive")
        if settings.max_deliver == 0 or settings.max_deliver < -1:
            raise ValueError("max_deliver is -1 (unlimited) or a positive count")
        return settings

    def stream_config(self, topic: str) -> StreamConfig:
        return StreamConfig(
            name=stream_name(topic),
            subjects=[subject_for(topic)],
            storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            duplicate_window=self.duplicate_window_s,
            max_age=self.max_age_s,
            max_msgs=self.max_msgs,
        )

    def consumer_config(self, topic: str, group: str) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=_safe_name(group),
            deliver_policy=DeliverPolicy.ALL,  # a new group reads from the start, as Kafka's
            ack_policy=AckPolicy.EXPLICIT,  # "earliest" with manual commits
            ack_wait=self.ack_wait_s,
            max_deliver=self.max_deliver,
            max_ack_pending=self.max_ack_pending,
            filter_subject=subject_for(topic),
        )


# -- header codec ----------------------------------------------------------------------------


def nats_headers(key: bytes | None, headers: Headers) -> dict[str, str]:
    pairs = [[name, base64.b64encode(value).decode()] for name, value in headers]
    out = {HEADERS_HEADER: msgspec.json.encode(pairs).decode()}
    if key is not None:
        out[KEY_HEADER] = base64.b64encode(key).decode()
    return out


_HEADERS_DECODER = msgspec.json.Decoder()


def shoal_headers(raw: dict[str, str] | None) -> tuple[bytes | None, Headers]:
    """Key and headers of a received message; foreign messages keep their NATS headers."""
    raw = raw or {}
    encoded = raw.get(HEADERS_HEADER)
    if encoded is not None:
        try:
            pairs = _HEADERS_DECODER.decode(encoded)
            headers = [(str(name), base64.b64decode(value, validate=True)) for name, value in pairs]
            key_text = raw.get(KEY_HEADER)
            key = None if key_text is None else base64.b64decode(key_text, validate=True)
        except (ValueError, TypeError, binascii.Error, msgspec.DecodeError):
            pass  # not ours after all: fall through and deliver the headers as they are
        else:
            return key, headers
    return None, [(name, value.encode()) for name, value in raw.items()]


def dedup_id(headers: Headers) -> str | None:
    message_id: bytes | None = None
    copied_from: bytes | None = None
    for name, value in headers:
        if name == MESSAGE_ID_HEADER:
            message_id = value
        elif name == STREAM_SEQ_HEADER:
            copied_from = value
    if message_id is None:
        return None
    text = message_id.decode("utf-8", "replace")
    return text if copied_from is None else f"{text}@{copied_from.decode('ascii', 'replace')}"


def _message(topic: str, offset: int, msg: Msg, extra: Headers) -> Message:
    meta = msg.metadata
    key, headers = shoal_headers(msg.headers)
    return Message(
        topic=topic,
        partition=0,
        offset=offset,
        key=key,
        value=msg.data,
        headers=[*headers, (STREAM_SEQ_HEADER, b"%d" % meta.sequence.stream), *extra],
        timestamp_ms=int(meta.timestamp.timestamp() * 1000),
    )


async def _translate(what: str, call: Awaitable[Any]) -> Any:
    try:
        return await call
    except (TimeoutError, nats.errors.Error) as exc:
        raise TransportError(f"NATS {what} failed: {exc!r}") from exc


# -- consumer --------------------------------------------------------------------------------


class NatsConsumer:
    """A member of the durable pull consumer ``group`` on each topic's stream.

    Deliveries are numbered per topic from 0 (``Message.offset``); ``commit`` acks every
    delivery below the committed number and waits for JetStream to confirm each ack.
    """

    def __init__(
        self, transport: NatsTransport, settings: NatsSettings, topics: list[str], group: str
    ) -> None:
        self._transport = transport
        self._settings = settings
        self._topics = list(dict.fromkeys(topics))
        self._group = group
        self._subs: dict[str, JetStreamContext.PullSubscription] = {}
        self._ledger: DeliveryLedger[Msg] = DeliveryLedger(self._topics)
        self._paused = False
        # A handler (with its retries) may run longer than ack_wait; telling JetStream the
        # work is in progress keeps it from redelivering the message to another member.
        self._keepalive = keep_alive(
            self._signal_in_progress, settings.ack_wait_s / 3, "shoal-nats-keepalive"
        )

    async def start(self) -> None:
        js = self._transport.jetstream()
        for topic in self._topics:
            await self._transport.ensure_topics([topic])
            config = self._settings.consumer_config(topic, self._group)
            stream = stream_name(topic)
            # Creating a durable that exists with the same settings is a no-op; with changed
            # ack_wait / max_deliver / max_ack_pending it updates them.
            await _translate("consumer create", js.add_consumer(stream, config))
            self._subs[topic] = await _translate(
                "subscribe", js.pull_subscribe_bind(durable=config.durable_name, stream=stream)
            )
        self._keepalive.start()

    async def fetch(self, max_records: int, timeout_s: float) -> list[Message]:
        if not self._subs:
            raise TransportError("the consumer is not started")
        if self._paused:
            await asyncio.sleep(timeout_s)
            return []
        batch = max(1, max_records // len(self._subs))
        # Each topic's pull waits at most timeout_s, concurrently, so a quiet topic never
        # delays a busy one by more than one poll.
        replies = await asyncio.gather(
            *(self._fetch_topic(sub, batch, timeout_s) for sub in self._subs.values())
        )
        out: list[Message] = []
        for topic, msgs in zip(self._subs, replies, strict=True):
            for msg in msgs:
                offset = self._ledger.hand_out(topic, msg)
                count = b"%d" % msg.metadata.num_delivered
                out.append(_message(topic, offset, msg, [(DELIVERY_COUNT_HEADER, count)]))
        return out

    async def _fetch_topic(
        self, sub: JetStreamContext.PullSubscription, batch: int, timeout_s: float
    ) -> list[Msg]:
        try:
            msgs: list[Msg] = await sub.fetch(batch, timeout=max(timeout_s, 0.01))
        except nats.errors.TimeoutError:
            # Nothing arrived; also what a fetch sees while the client reconnects, as the pull
            # request waits in the client's buffer: the next fetch after reconnecting works.
            return []
        except nats.errors.Error as exc:
            raise TransportError(f"NATS fetch failed: {exc!r}") from exc
        return msgs

    async def _signal_in_progress(self) -> None:
        for msg in self._ledger.pending():
            try:
                await msg.in_progress()
            except nats.errors.Error as exc:
                log.debug("in-progress signal failed: %r", exc)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, upto in offsets.items():
            with self._ledger.settle(tp, upto) as done:
                if not done:
                    continue
                # Plain acks (a publish each: no reply, no future, no task), then one double
                # ack on the last: the server handles one connection's acks in order, so its
                # reply means every ack before it is recorded too, and a consumer that starts
                # next does not see these again. A lost plain ack fails the connection, and the
                # double ack with it.
                for msg in done[:-1]:
                    await _translate("ack", msg.ack())
                await _translate("ack", done[-1].ack_sync(timeout=REQUEST_TIMEOUT_S))

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def assignment(self) -> list[TopicPartition]:
        return [(topic, 0) for topic in self._subs]

    async def lag(self) -> dict[TopicPartition, int]:
        out: dict[TopicPartition, int] = {}
        for topic, sub in self._subs.items():
            info = await _translate("consumer info", sub.consumer_info())
            out[(topic, 0)] = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        return out

    async def close(self) -> None:
        await self._keepalive.stop()
        # Hand back what was fetched and not acked, so the group gets it now rather than after
        # ack_wait. The durable itself stays: it is the group's position.
        for msg in self._ledger.pending():
            with contextlib.suppress(nats.errors.Error):
                await msg.nak()
        self._ledger.forget()
        subs, self._subs = self._subs, {}
        for sub in subs.values():
            with contextlib.suppress(nats.errors.Error, ValueError):
                await sub.unsubscribe()


class NatsQueueConsumer(NatsConsumer):
    """Queue subscribers (``queue=True``) on NATS JetStream: the group's durable pull consumer,
    each delivery settled on its own.

    ACCEPT is an ack, RELEASE a nak (JetStream redelivers at once, to any member, its
    ``num_delivered`` up), REJECT a term (never redelivered: the App dead-lettered it first, or
    skips it on purpose). A member that dies leaves its deliveries unacknowledged: JetStream
    redelivers them after ``ack_wait_s`` (the lock timeout; live members signal work in progress,
    so a slow handler keeps its records). The consumer's ``max_deliver`` (the URL option; -1, the
    default, is unlimited) is the queue's delivery limit that ``retry.max_attempts`` is checked
    against at start.
    """

    def __init__(
        self, transport: NatsTransport, settings: NatsSettings, topics: list[str], group: str
    ) -> None:
        super().__init__(transport, settings, topics, group)
        self._guard = FetchGuard()

    async def fetch(self, max_records: int, timeout_s: float) -> list[Message]:
        self._guard.check()
        records = await super().fetch(max_records, timeout_s)
        return self._guard.hold(records, DELIVERY_COUNT_HEADER)

    async def settle(self, outcomes: list[tuple[Message, Acknowledgement]]) -> None:
        settled = Settlement(self._ledger, self._guard.take(), outcomes)
        for msgs in settled.of(Acknowledgement.RELEASE).values():
            for msg in msgs:
                await _translate("nak", msg.nak())
        for msgs in settled.of(Acknowledgement.REJECT).values():
            for msg in msgs:
                await _translate("term", msg.term())
        accepted = [msg for msgs in settled.of(Acknowledgement.ACCEPT).values() for msg in msgs]
        if not accepted:
            return
        # Plain acks, then one double ack last: the server handles one connection's acks,
        # naks and terms in order, so its reply means every one before it is recorded too.
        for msg in accepted[:-1]:
            await _translate("ack", msg.ack())
        await _translate("ack", accepted[-1].ack_sync(timeout=REQUEST_TIMEOUT_S))

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Queues keep no consumer offsets: :meth:`settle` makes the progress."""


# -- transport -------------------------------------------------------------------------------


class NatsTransport:
    def __init__(self, url: str) -> None:
        self.settings = NatsSettings.from_url(url)
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._known_streams: set[str] = set()

    async def start(self) -> None:
        async def on_error(exc: Exception) -> None:
            # While reconnecting, every failed attempt lands here: one line per outage is
            # enough (on_disconnect), the attempts are debug detail.
            reconnecting = self._nc is not None and self._nc.is_reconnecting
            log.log(logging.DEBUG if reconnecting else logging.WARNING, "NATS: %r", exc)

        async def on_disconnect() -> None:
            if self._nc is not None:  # stop() clears it first: a closing client is no news
                log.warning("NATS connection lost; reconnecting")

        async def on_reconnect() -> None:
            log.info("NATS connection re-established")

        self._nc = await _translate(
            "connect",
            nats.connect(
                self.settings.servers,
                connect_timeout=REQUEST_TIMEOUT_S,
                reconnect_time_wait=RECONNECT_WAIT_S,
                # A service keeps trying: the client never closes itself for good, and fetches
                # and sends fail (TransportError) only while the server is away.
                max_reconnect_attempts=-1,
                error_cb=on_error,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
            ),
        )
        self._js = self._nc.jetstream(timeout=REQUEST_TIMEOUT_S)

    async def stop(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is None:
            return
        if nc.is_connected:
            # Drain: pending publishes and acks reach the server before the socket closes.
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await asyncio.wait_for(nc.drain(), REQUEST_TIMEOUT_S)
        if not nc.is_closed:
            await nc.close()

    def jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise TransportError("the transport is not started")
        return self._js

    async def send(self, topic: str, value: bytes, key: bytes | None, headers: Headers) -> None:
        js = self.jetstream()
        raw = nats_headers(key, headers)
        message_id = dedup_id(headers)
        if message_id is not None:
            raw[MSG_ID_HEADER] = message_id
        subject, stream = subject_for(topic), stream_name(topic)
        try:
            await js.publish(subject, value, timeout=REQUEST_TIMEOUT_S, stream=stream, headers=raw)
            return
        except nats.js.errors.NoStreamResponseError:
            pass  # the stream does not exist yet: create it, then publish once more
        except (TimeoutError, nats.errors.Error) as exc:
            raise TransportError(f"NATS publish to {topic} failed: {exc!r}") from exc
        self._known_streams.discard(stream)
        await self.ensure_topics([topic])
        await _translate(
            f"publish to {topic}",
            js.publish(subject, value, timeout=REQUEST_TIMEOUT_S, stream=stream, headers=raw),
        )

    async def ensure_topics(self, topics: list[str], *, compacted: bool = False) -> None:
        # JetStream keeps the last message per *subject*, and shoal keys are not subjects, so a
        # compacted topic keeps every record (del: accepted and documented, not emulated).
        del compacted
        js = self.jetstream()
        for topic in topics:
            config = self.settings.stream_config(topic)
            name = str(config.name)
            if name in self._known_streams:
                continue
            try:
                await js.stream_info(name)
            except nats.js.errors.NotFoundError:
                try:
                    await js.add_stream(config)
                except nats.js.errors.BadRequestError as exc:
                    # Another app created it between our look and our create: that is fine.
                    if exc.err_code != 10058:  # JSStreamNameExistErr
                        raise TransportError(f"cannot create stream {name}: {exc}") from exc
                except (TimeoutError, nats.errors.Error) as exc:
                    raise TransportError(f"cannot create stream {name}: {exc!r}") from exc
            except (TimeoutError, nats.errors.Error) as exc:
                raise TransportError(f"cannot look up stream {name}: {exc!r}") from exc
            self._known_streams.add(name)

    async def ping(self) -> None:
        await _translate("account info", self.jetstream().account_info())

    def consumer(self, topics: list[str], group: str) -> NatsConsumer:
        return NatsConsumer(self, self.settings, topics, group)

    def queue_consumer(self, topics: list[str], group: str) -> NatsQueueConsumer:
        """A queue subscriber's consumer (issue 16): see nats_queue."""
        return NatsQueueConsumer(self, self.settings, topics, group)

    async def queue_delivery_limit(self, group: str, attempts: int) -> DeliveryLimit | None:
        """The durable consumer's ``max_deliver`` (QueueDeliveryLimits); None: unlimited."""
        del group  # every group's consumer is created with the URL's settings
        if self.settings.max_deliver <= 0:
            return None
        return DeliveryLimit(
            self.settings.max_deliver,
            f"the JetStream consumer's max_deliver={self.settings.max_deliver}",
            "no longer delivered by JetStream, never dead-lettered by the app",
            f"raise the URL's max_deliver to at least {attempts} (or -1, unlimited)",
        )

    async def read_topic(self, topic: str) -> list[Message]:
        js = self.jetstream()
        name = stream_name(topic)
        try:
            info = await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            return []
        except (TimeoutError, nats.errors.Error) as exc:
            raise TransportError(f"cannot look up stream {name}: {exc!r}") from exc
        last_seq = int(info.state.last_seq or 0)
        if not info.state.messages:
            return []
        # An ephemeral consumer without acks reads the stream once, in order, and is deleted
        # at the end (or by the server once idle, should this process die first).
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=60.0,
            mem_storage=True,
            max_ack_pending=-1,
        )
        created = await _translate("read consumer", js.add_consumer(name, config))
        sub = await _translate("subscribe", js.pull_subscribe_bind(created.name, stream=name))
        out: list[Message] = []
        try:
            idle = 0
            while True:
                try:
                    msgs = await sub.fetch(READ_BATCH, timeout=1.0)
                except nats.errors.TimeoutError:
                    idle += 1
                    if idle > READ_IDLE_FETCHES_MAX:
                        raise TransportError(
                            f"reading {topic} stalled before seq {last_seq}"
                        ) from None
                    continue
                idle = 0
                for msg in msgs:
                    seq = msg.metadata.sequence.stream
                    if seq > last_seq:
                        return out  # published after the call: not part of this read
                    out.append(_message(topic, len(out), msg, []))
                    # num_pending 0: nothing after it (the last sequence may have been deleted).
                    if seq == last_seq or msg.metadata.num_pending == 0:
                        return out
        except nats.errors.Error as exc:
            raise TransportError(f"reading {topic} failed: {exc!r}") from exc
        finally:
            with contextlib.suppress(nats.errors.Error, ValueError):
                await sub.unsubscribe()
            with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
                await js.delete_consumer(name, created.name)
