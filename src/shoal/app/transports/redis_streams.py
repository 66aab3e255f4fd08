"""The Redis Streams transport: a topic is a stream, a group is a consumer group.

    redis://[user:password@]host:port[/db][?maxlen=N | ?max_age_ms=N][&claim_idle_ms=N]

``maxlen`` trims each XADD with ``MAXLEN ~ N`` and ``max_age_ms`` with ``MINID ~ <now - N>``
(approximate trimming, which drops whole radix-tree nodes and so costs nothing per write); by
default nothing is trimmed, like a Kafka topic without retention. ``claim_idle_ms`` is how long a
delivered entry may stay unacknowledged before another consumer of the group takes it over
(XAUTOCLAIM): the Redis counterpart of a Kafka session timeout. Other query parameters
(``socket_timeout``, ``ssl_cert_reqs``...) are redis-py's own.

A send returns once XADD answered, so its durability is the server's ``appendfsync``: with
``always`` the entry is on disk; with the default ``everysec`` up to a second of writes may be
lost in a power cut. Redis has no producer deduplication: a send retried after a lost reply can
store the record twice (at-least-once); consumers deduplicate on ``shoal.message-id``.

Each entry keeps the record in three fields (names are ASCII, values binary-safe)::

    value    the record's value
    key      the record's key; absent when the key is None (an empty key is present and empty)
    headers  absent when there are none; else, per header, in order (a name may repeat):
             +----------------+------------+-----------------+-------------+
             | name len (u32) | name utf-8 | value len (u32) | value bytes |
             +----------------+------------+-----------------+-------------+

Entries written by other programs (no ``value`` field) are delivered with an empty value and
their fields as headers, in order, so a shoal app can still read them.

``send_delayed`` (retry topics) parks the entry in a sorted set until it is due; each started
transport runs a scheduler that moves due entries to their stream (``redis_delay``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import struct
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError, ResponseError

from shoal.app.message import Headers, Message
from shoal.app.transport import Acknowledgement, TopicPartition, TransportError
from shoal.app.transports.background import keep_alive
from shoal.app.transports.ledger import DeliveryLedger
from shoal.app.transports.redis_delay import DelayScheduler
from shoal.app.transports.work_queue import FetchGuard, Settlement

log = logging.getLogger("shoal.app.redis")

ENTRY_ID_HEADER = "shoal.redis.id"
"""The stream entry id (``<ms>-<seq>``) of a delivered record: Redis's own name for it."""
DELIVERY_COUNT_HEADER = "shoal.redis.delivery-count"
"""How many times the group has delivered this entry (1 on first delivery), from XPENDING."""

CLAIM_IDLE_MS_DEFAULT = 30_000
"""A consumer silent this long is presumed dead; as Kafka's session timeout, long enough that a
slow handler is not mistaken for a dead one (live consumers also refresh their entries)."""
BLOCK_MS_MAX = 5_000
"""XREADGROUP BLOCK cap: it must stay below the socket timeout, or a quiet stream would look
like a dead server."""
POOL_CONNECTIONS_MAX = 64
POOL_WAIT_S = 30.0
SOCKET_TIMEOUT_S = 15.0
CONNECT_TIMEOUT_S = 5.0
RELEASED_IDLE_MS = 24 * 3600 * 1000
"""The idle time given to entries a consumer hands back on close: beyond any sane
claim_idle_ms, so the next consumer's first XAUTOCLAIM takes them, before newer entries."""
RETRIES = 2
"""redis-py retries a command on a broken connection this many times (a restarted server, an
idle connection closed); past that the error reaches the App, which reconnects the consumer."""
READ_PAGE_ENTRIES = 1_000
"""XRANGE page size in read_topic: bounds one reply's memory on the server and here."""
U32 = struct.Struct(">I")

# Delete this consumer from the group only if it owns no pending entry: XGROUP DELCONSUMER
# drops a consumer's pending entries for good, so a check outside the script could race with
# nothing but would still lose data if one ever slipped in. KEYS[1] stream, ARGV group, name.
_DELETE_IF_IDLE = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #pending == 0 then
  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
"""

# Set the idle time of the entries this consumer still owns (XCLAIM to itself, JUSTID so the
# delivery count does not grow), and leave alone those another consumer has claimed meanwhile:
# a plain XCLAIM would take them back. KEYS[1] stream, ARGV group, name, idle ms, entry ids.
# Idle 0 is the keep-alive of work in progress; a long idle hands entries back on close.
_SET_IDLE_OF_OWNED = """
local touched = 0
for i = 4, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3], 'JUSTID')
    touched = touched + 1
  end
end
return touched
"""


@dataclass(frozen=True, slots=True)
class RedisSettings:
    client_url: str
    """The URL without shoal's own query parameters: what redis-py is given."""
    maxlen: int | None = None
    max_age_ms: int | None = None
    claim_idle_ms: int = CLAIM_IDLE_MS_DEFAULT

    @classmethod
    def from_url(cls, url: str) -> RedisSettings:
        parts = urlsplit(url)
        ours: dict[str, int] = {}
        theirs: list[tuple[str, str]] = []
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name in ("maxlen", "max_age_ms", "claim_idle_ms"):
                if not value.isdigit() or int(value) < 1:
                    raise ValueError(f"{name} must be a positive integer, not {value!r}")
                ours[name] = int(value)
            else:
                theirs.append((name, value))
        if "maxlen" in ours and "max_age_ms" in ours:
            raise ValueError("choose one trimming policy: maxlen or max_age_ms (XADD takes one)")
        return cls(
            client_url=urlunsplit(parts._replace(query=urlencode(theirs))),
            maxlen=ours.get("maxlen"),
            max_age_ms=ours.get("max_age_ms"),
            claim_idle_ms=ours.get("claim_idle_ms", CLAIM_IDLE_MS_DEFAULT),
        )

    def client(self) -> aioredis.Redis:
        # A blocking pool: past POOL_CONNECTIONS_MAX concurrent commands (many publishes in
        # flight at once), callers wait for a connection instead of failing with "Too many
        # connections" as redis-py's default pool does.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.client_url,
            max_connections=POOL_CONNECTIONS_MAX,
            timeout=POOL_WAIT_S,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), RETRIES),
            # Pooled connections idle for this long are checked before use: after a server
            # restart the first command then reconnects instead of failing on a dead socket.
            health_check_interval=30,
        )
        client: aioredis.Redis = aioredis.Redis.from_pool(pool)
        return client


# -- entry codec -----------------------------------------------------------------------------


def encode_headers(headers: Headers) -> bytes:
    out = bytearray()
    for name, value in headers:
        raw_name = name.encode("utf-8")
        out += U32.pack(len(raw_name)) + raw_name + U32.pack(len(value)) + value
    return bytes(out)


def decode_headers(blob: bytes) -> Headers:
    """The headers ``encode_headers`` wrote; ValueError if ``blob`` is not such a list."""
    # Once per record on the consume path: written flat, without per-field lists.
    headers: Headers = []
    pos, end, unpack = 0, len(blob), U32.unpack_from
    while pos < end:
        if pos + 4 > end:
            raise ValueError("truncated header length")
        name_end = pos + 4 + unpack(blob, pos)[0]
        if name_end + 4 > end:
            raise ValueError("header runs past the end of the field")
        value_end = name_end + 4 + unpack(blob, name_end)[0]
        if value_end > end:
            raise ValueError("header runs past the end of the field")
        headers.append((blob[pos + 4 : name_end].decode("utf-8"), blob[name_end + 4 : value_end]))
        pos = value_end
    return headers


def entry_fields(value: bytes, key: bytes | None, headers: Headers) -> dict[str, bytes]:
    fields = {"value": value}
    if key is not None:
        fields["key"] = key
    if headers:
        fields["headers"] = encode_headers(headers)
    return fields


_OUR_FIELDS = frozenset((b"value", b"key", b"headers"))


def decode_entry(fields: dict[bytes, bytes]) -> tuple[bytes, bytes | None, Headers]:
    """Value, key and headers of an entry; foreign entries get their fields as headers."""
    if b"value" in fields and fields.keys() <= _OUR_FIELDS:
        try:
            headers = decode_headers(fields.get(b"headers", b""))
        except (ValueError, UnicodeDecodeError):
            pass
        else:
            return fields[b"value"], fields.get(b"key"), headers
    foreign = [(k.decode("utf-8", "replace"), v) for k, v in fields.items()]
    return b"", None, foreign


def entry_time_ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-", 1)[0])


def _message(
    topic: str, offset: int, entry_id: bytes, fields: dict[bytes, bytes], extra: Headers
) -> Message:
    value, key, headers = decode_entry(fields)
    headers.append((ENTRY_ID_HEADER, entry_id))
    headers.extend(extra)
    return Message(topic, 0, offset, key, value, headers, entry_time_ms(entry_id))


def consumer_name() -> str:
    """Unique per consumer instance, so a restarted process never inherits a dead one's
    pending entries by name; those are recovered by XAUTOCLAIM instead."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


async def _translate(what: str, call: Awaitable[Any]) -> Any:
    try:
        return await call
    except RedisError as exc:
        raise TransportError(f"redis {what} failed: {exc}") from exc


# -- consumer --------------------------------------------------------------------------------


class RedisConsumer:
    """One member of a consumer group on each of ``topics``.

    Deliveries are numbered per topic from 0 (``Message.offset``); ``commit`` XACKs every
    delivery below the committed number. Entries a dead member left unacknowledged for
    ``claim_idle_ms`` are taken over here, and while entries are in flight a keep-alive task
    refreshes their idle time, so a handler slower than ``claim_idle_ms`` keeps its entries.
    ``close`` hands unfinished entries back to the group at once, oldest first.
    """

    def __init__(self, settings: RedisSettings, topics: list[str], group: str) -> None:
        self._settings = settings
        self._topics = list(dict.fromkeys(topics))
        self._group = group
        self.name = consumer_name()
        self._client: aioredis.Redis | None = None
        self._ledger: DeliveryLedger[bytes] = DeliveryLedger(self._topics)  # entry ids
        self._claim_cursor = dict.fromkeys(self._topics, b"0-0")
        self._next_claim_s = 0.0
        self._paused = False
        self._keepalive = keep_alive(
            self._refresh_owned, settings.claim_idle_ms / 3000, f"shoal-redis:{self.name}"
        )
        self._delete_if_idle: Any = None
        self._set_idle_of_owned_script: Any = None

    @property
    def _claim_interval_s(self) -> float:
        # Twice per idle period: an entry is taken over at most ~1.5 idle periods after its
        # consumer died.
        return self._settings.claim_idle_ms / 2000

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            raise TransportError("the consumer is not started")
        return self._client

    async def start(self) -> None:
        self._client = client = self._settings.client()
        self._delete_if_idle = client.register_script(_DELETE_IF_IDLE)
        self._set_idle_of_owned_script = client.register_script(_SET_IDLE_OF_OWNED)
        for topic in self._topics:
            try:
                # id 0: a new group reads the stream from its first entry (Kafka's "earliest");
                # MKSTREAM: a group may exist before anyone published.
                await client.xgroup_create(topic, self._group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise TransportError(f"cannot create group {self._group}: {exc}") from exc
            except RedisError as exc:
                raise TransportError(f"cannot create group {self._group}: {exc}") from exc
        self._keepalive.start()

    async def fetch(self, max_records: int, timeout_s: float) -> list[Message]:
        client = self._redis()
        if self._paused:
            await asyncio.sleep(timeout_s)
            return []
        out: list[Message] = await _translate("claim", self._claim_idle(client, max_records))
        if len(out) < max_records:
            # Entries were claimed: hand them out now rather than block for new ones.
            block_ms = None if out else min(max(1, round(timeout_s * 1000)), BLOCK_MS_MAX)
            out += await _translate(
                "read", self._read_new(client, max_records - len(out), block_ms)
            )
        return out

    def _deliver(
        self, topic: str, entry_id: bytes, fields: dict[bytes, bytes], count: int
    ) -> Message:
        offset = self._ledger.hand_out(topic, entry_id)
        return _message(topic, offset, entry_id, fields, [(DELIVERY_COUNT_HEADER, b"%d" % count)])

    async def _read_new(
        self, client: aioredis.Redis, room: int, block_ms: int | None
    ) -> list[Message]:
        # COUNT applies per stream; share the room so one reply stays within max_records.
        count = max(1, room // len(self._topics))
        reply: Any = await client.xreadgroup(
            self._group, self.name, dict.fromkeys(self._topics, ">"), count=count, block=block_ms
        )
        out: list[Message] = []
        for stream, entries in reply or []:
            topic = stream.decode() if isinstance(stream, bytes) else stream
            for entry_id, fields in entries:
                out.append(self._deliver(topic, entry_id, fields or {}, 1))
        return out

    async def _claim_idle(self, client: aioredis.Redis, room: int) -> list[Message]:
        now_s = time.monotonic()
        if now_s < self._next_claim_s:
            return []
        self._next_claim_s = now_s + self._claim_interval_s
        out: list[Message] = []
        for topic in self._topics:
            if len(out) >= room:
                break
            cursor, entries, *_ = await client.xautoclaim(
                topic,
                self._group,
                self.name,
                self._settings.claim_idle_ms,
                start_id=self._claim_cursor[topic],
                count=room - len(out),
            )
            self._claim_cursor[topic] = cursor
            mine = set(self._ledger.pending(topic))
            # Redis 6.2 returns deleted entries with no fields (7.0 drops them from the PEL).
            claimed = [(i, f) for i, f in entries if f is not None and i not in mine]
            if not claimed:
                continue
            counts = await self._delivery_counts(client, topic, [i for i, _ in claimed])
            for entry_id, fields in claimed:
                out.append(self._deliver(topic, entry_id, fields, counts.get(entry_id, 2)))
        return out

    async def _delivery_counts(
        self, client: aioredis.Redis, topic: str, ids: list[bytes]
    ) -> dict[bytes, int]:
        rows: Any = await client.xpending_range(
            topic, self._group, min=ids[0], max=ids[-1], count=len(ids) * 2,
            consumername=self.name,
        )  # fmt: skip
        return {row["message_id"]: int(row["times_delivered"]) for row in rows}

    async def _set_idle_of_owned(self, topic: str, idle_ms: int) -> None:
        ids = self._ledger.pending(topic)
        if ids and self._set_idle_of_owned_script is not None:
            await self._set_idle_of_owned_script(
                keys=[topic], args=[self._group, self.name, idle_ms, *ids]
            )

    async def _refresh_owned(self) -> None:
        for topic in self._topics:
            try:
                await self._set_idle_of_owned(topic, 0)
            except RedisError as exc:
                log.debug("refreshing in-flight entries of %s failed: %s", topic, exc)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        client = self._redis()
        for tp, upto in offsets.items():
            with self._ledger.settle(tp, upto) as ids:
                if ids:
                    await _translate("XACK", client.xack(tp[0], self._group, *ids))

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def assignment(self) -> list[TopicPartition]:
        return self._ledger.assignment() if self._client is not None else []

    async def lag(self) -> dict[TopicPartition, int]:
        client = self._redis()
        out: dict[TopicPartition, int] = {}
        for topic in self._topics:
            groups = await _translate("XINFO GROUPS", client.xinfo_groups(topic))
            for info in groups:
                name = info.get("name")
                if (name.decode() if isinstance(name, bytes) else name) != self._group:
                    continue
                # lag is nil when Redis cannot tell (entries deleted or trimmed mid-group).
                if info.get("lag") is not None:
                    out[(topic, 0)] = int(info["lag"]) + int(info.get("pending", 0))
        return out

    async def close(self) -> None:
        await self._keepalive.stop()
        client, self._client = self._client, None
        if client is None:
            return
        try:
            for topic in self._topics:
                with contextlib.suppress(RedisError):
                    # Unfinished entries go back at once, oldest first, to whoever consumes
                    # the group next, instead of after claim_idle_ms behind newer entries.
                    await self._set_idle_of_owned(topic, RELEASED_IDLE_MS)
                    self._ledger.forget(topic)
                    await self._delete_if_idle(keys=[topic], args=[self._group, self.name])
        finally:
            await client.aclose()


class RedisQueueConsumer(RedisConsumer):
    """Queue subscribers (``queue=True``) on Redis Streams: the group's consumer, each delivery
    settled on its own.

    ACCEPT and REJECT are an XACK (a rejected record was dead-lettered by the App first, or is
    skipped on purpose). RELEASE hands the entry back to the group at once: its idle time is set
    past ``claim_idle_ms`` (XCLAIM to itself with IDLE and JUSTID, the delivery counter unchanged),
    so the next XAUTOCLAIM of any consumer of the group takes it, and that claim counts the
    delivery (the count then comes from XPENDING's times-delivered). This consumer's next fetch
    claims at once. A consumer that dies leaves its entries pending: another one claims them
    once they have been idle ``claim_idle_ms`` (the lock timeout; live consumers refresh the idle
    time of what they hold, so a slow handler keeps its records). Redis gives no entry up on its
    own: there is no delivery limit to check ``retry.max_attempts`` against.
    """

    def __init__(self, settings: RedisSettings, topics: list[str], group: str) -> None:
        super().__init__(settings, topics, group)
        self._guard = FetchGuard()

    async def fetch(self, max_records: int, timeout_s: float) -> list[Message]:
        self._guard.check()
        records = await super().fetch(max_records, timeout_s)
        return self._guard.hold(records, DELIVERY_COUNT_HEADER)

    async def settle(self, outcomes: list[tuple[Message, Acknowledgement]]) -> None:
        client = self._redis()
        settled = Settlement(self._ledger, self._guard.take(), outcomes)
        for kind in (Acknowledgement.ACCEPT, Acknowledgement.REJECT):
            for topic, ids in settled.of(kind).items():
                await _translate("XACK", client.xack(topic, self._group, *ids))
        released = settled.of(Acknowledgement.RELEASE)
        for topic, ids in released.items():
            if self._set_idle_of_owned_script is not None:
                await _translate(
                    "release",
                    self._set_idle_of_owned_script(
                        keys=[topic], args=[self._group, self.name, RELEASED_IDLE_MS, *ids]
                    ),
                )
            self._claim_cursor[topic] = b"0-0"  # the released entries may be behind it
        if released:
            self._next_claim_s = 0.0

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Queues keep no consumer offsets: :meth:`settle` makes the progress."""


# -- transport -------------------------------------------------------------------------------


class RedisTransport:
    def __init__(self, url: str) -> None:
        self.settings = RedisSettings.from_url(url)
        self._client: aioredis.Redis | None = None
        self._delays: DelayScheduler | None = None

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            raise TransportError("the transport is not started")
        return self._client

    async def start(self) -> None:
        # No round trip here: the pool connects on first use, so an app can start while Redis
        # is still coming up, and its readiness probe (ping) says when it is usable. The
        # scheduler's first pass also moves what earlier instances left due.
        self._client = client = self.settings.client()
        trim: tuple[str, int] | None = None
        if self.settings.maxlen is not None:
            trim = ("MAXLEN", self.settings.maxlen)
        elif self.settings.max_age_ms is not None:
            trim = ("MINID", self.settings.max_age_ms)
        self._delays = DelayScheduler(client, trim)
        self._delays.start()

    async def stop(self) -> None:
        delays, self._delays = self._delays, None
        if delays is not None:
            await delays.stop()  # before the client closes under it
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def send_delayed(
        self, topic: str, value: bytes, key: bytes | None, headers: Headers, delay_ms: int
    ) -> None:
        """Add a record to ``topic`` once ``delay_ms`` has passed on the server's clock.

        Returns once the entry is in the sorted set ``shoal:delayed:<topic>``, as durable as an
        XADD; a scheduler (of this or any instance) then moves it to the stream, at least once.
        """
        if self._delays is None:
            raise TransportError("the transport is not started")
        if delay_ms <= 0:
            await self.send(topic, value, key, headers)
            return
        await _translate(
            f"scheduling for {topic}",
            self._delays.schedule(topic, entry_fields(value, key, headers), delay_ms),
        )

    async def send(self, topic: str, value: bytes, key: bytes | None, headers: Headers) -> None:
        trim: dict[str, Any] = {}
        if self.settings.maxlen is not None:
            trim = {"maxlen": self.settings.maxlen, "approximate": True}
        elif self.settings.max_age_ms is not None:
            oldest_ms = max(0, time.time_ns() // 1_000_000 - self.settings.max_age_ms)
            trim = {"minid": f"{oldest_ms}-0", "approximate": True}
        fields = entry_fields(value, key, headers)
        await _translate(f"XADD to {topic}", self._redis().xadd(topic, fields, **trim))  # type: ignore[arg-type]

    async def ensure_topics(self, topics: list[str], *, compacted: bool = False) -> None:
        # A stream comes into being with its first XADD, and a group with XGROUP CREATE MKSTREAM
        # when a consumer starts: nothing to prepare. Redis has no compaction; a ``compacted``
        # topic keeps every entry (trimmed only by maxlen / max_age_ms, if set).
        del topics, compacted

    async def ping(self) -> None:
        await _translate("PING", self._redis().ping())

    def consumer(self, topics: list[str], group: str) -> RedisConsumer:
        return RedisConsumer(self.settings, topics, group)

    def queue_consumer(self, topics: list[str], group: str) -> RedisQueueConsumer:
        """A queue subscriber's consumer (issue 16): see redis_queue."""
        return RedisQueueConsumer(self.settings, topics, group)

    async def read_topic(self, topic: str) -> list[Message]:
        client = self._redis()
        last = await _translate("XREVRANGE", client.xrevrange(topic, "+", "-", count=1))
        if not last:
            return []
        end_id: bytes = last[0][0]
        out: list[Message] = []
        start: bytes | str = "-"
        while True:
            page = await _translate(
                "XRANGE", client.xrange(topic, start, end_id, count=READ_PAGE_ENTRIES)
            )
            for entry_id, fields in page:
                out.append(_message(topic, len(out), entry_id, fields, []))
            if len(page) < READ_PAGE_ENTRIES or page[-1][0] == end_id:
                return out
            start = b"(" + page[-1][0]  # exclusive: the next page starts after this entry
