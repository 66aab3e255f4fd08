"""Idempotent consumers: remember which messages were processed, so a redelivery is skipped.

Delivery is at-least-once: a crash between a handler's effects and the offset commit sends
the record round again. A store closes that gap. Around each handler call the App asks
``begin(scope, message_id)``: None means "already processed, skip it"; otherwise it gets a
claim, which it commits when the handler succeeded and aborts when it failed (so a retry may
claim the message again). ``scope`` is the consumer group (or subscriber): two services that
both consume a message each process it once.

Three stores, with different guarantees:

* :class:`SQLiteStore`, the embedded default: the claim is an open SQLite transaction. A handler
  that writes its effects through ``claim.connection`` commits them atomically with the dedup
  record: exactly-once effects, even across a crash.
* :class:`RedisStore`: a shared store for many instances; effects are not atomic with the record.
* :class:`TopicIdempotencyStore`: the processed set kept in a compacted topic of the broker
  itself; nothing else to run, but each instance holds the set in memory.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from shoal.app.extras import extra_required
from shoal.app.transport import Transport
from shoal.clock import SYSTEM_CLOCK, Clock
from shoal.invariant import invariant

if TYPE_CHECKING:
    from redis.asyncio import Redis

T = TypeVar("T")

TTL_S_DEFAULT: Final = 7 * 24 * 3600.0
"""A week: longer than any redelivery a broker outage or a redrive from the DLQ would cause."""
ID_CHARS_MAX: Final = 1024
"""Scopes and message ids are keys in every store; an id longer than this is not an id."""
SEPARATOR: Final = "\x00"
"""Between scope and message id in a record key. Scopes may not contain it, so the key is
unambiguous whatever the message id holds."""


class IdempotencyError(Exception):
    """The store could not be read or written (translated from sqlite3 or redis errors).
    The message was neither processed nor marked: retrying it is safe."""


class Claim(Protocol):
    connection: Any
    """For SQLite: the sqlite3.Connection whose open transaction the handler may write its own
    effects into, so effects and the dedup record commit together; None for other stores."""

    async def commit(self) -> None: ...

    async def abort(self) -> None: ...


class IdempotencyStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def begin(self, scope: str, message_id: str) -> Claim | None:
        """None if (scope, message_id) was already processed (or is being processed right
        now); else a claim to commit when the handler succeeded or abort when it failed."""
        ...


def record_key(scope: str, message_id: str) -> str:
    """The key one (scope, message id) pair is stored under, checked against the limits."""
    if not scope or len(scope) > ID_CHARS_MAX or SEPARATOR in scope:
        raise ValueError(f"scope must be 1..{ID_CHARS_MAX} characters without NUL: {scope!r}")
    if not message_id or len(message_id) > ID_CHARS_MAX:
        raise ValueError(f"message id must be 1..{ID_CHARS_MAX} characters: {message_id[:80]!r}")
    return f"{scope}{SEPARATOR}{message_id}"


def _check_seconds(field: str, value: float) -> int:
    """``value`` seconds as whole milliseconds (at least 1), or a ValueError."""
    if not (0 < value < math.inf):
        raise ValueError(f"{field} must be a positive number of seconds, got {value!r}")
    return max(1, round(value * 1000))


class _OnceClaim:
    """A claim ends exactly once; a second commit or abort is a bug in the caller."""

    def __init__(self) -> None:
        self._ended = False

    def _end(self) -> None:
        if self._ended:
            raise RuntimeError("this claim was already committed or aborted")
        self._ended = True


# --- SQLite -------------------------------------------------------------------------------

PURGE_INTERVAL_MS: Final = 10 * 60 * 1000
"""Expired rows are deleted at most this often: a purge is a write in some commit's
transaction, and doing it on every commit would double the write load."""
PURGE_ROWS_MAX: Final = 10_000
"""Rows one purge deletes: bounds the delay it adds to the commit that runs it. A purge that
hits the limit schedules the next one at once, so a backlog drains over a few commits."""
BUSY_TIMEOUT_S: Final = 30.0
"""How long BEGIN IMMEDIATE waits for another process's claim on the same file before the
store reports an IdempotencyError (the App then retries the message)."""

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS shoal_processed ("
    " scope TEXT NOT NULL, id TEXT NOT NULL, processed_at_ms INTEGER NOT NULL,"
    " PRIMARY KEY (scope, id))",
    "CREATE INDEX IF NOT EXISTS shoal_processed_by_time ON shoal_processed (processed_at_ms)",
)


class SQLiteStore:
    """Processed message ids in a SQLite file, in the same transaction as the handler's effects.

    ``begin`` opens ``BEGIN IMMEDIATE`` on the store's one connection; the claim exposes that
    connection as ``claim.connection``. A handler that writes its effects with
    ``claim.connection.execute(...)`` (or ``await claim.run(fn)``) has them committed together
    with the dedup row by ``commit``, or rolled back with it by ``abort`` or by a crash. The
    handler must not call ``commit()``/``rollback()`` on the connection nor use it as a context
    manager (``with conn:`` commits): that would end the claim's transaction early.

    SQLite serialises claims. A claim holds the database's write lock from ``begin`` to
    ``commit``/``abort``, and an asyncio.Lock keeps the other claims of this process waiting
    meanwhile; other processes wait up to ``BUSY_TIMEOUT_S``. Handlers of one store therefore run
    their claimed sections one at a time, whatever the subscriber's concurrency: the price of
    atomic effects in an embedded database. The App must end every claim (commit or abort in a
    ``finally``); a claim left open blocks the store.

    Blocking SQLite calls run on one dedicated thread, so the event loop only waits for the
    lock, never for the disk. Writes the handler makes directly on ``claim.connection`` do run
    on the loop's thread (``claim.run`` moves them to the store's thread).

    Durability: WAL journal with ``synchronous=FULL``, so a committed claim survives a power
    loss, not just a process crash. Rows are kept at least ``ttl_s`` (by ``clock.now_ms()``, a
    wall clock, because they outlive the process); older ones are purged now and then.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        ttl_s: float = TTL_S_DEFAULT,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.path = Path(path)
        self._ttl_ms = _check_seconds("ttl_s", ttl_s)
        self._clock = clock
        self._lock = asyncio.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._next_purge_ms = 0

    async def _run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the store's thread. One worker thread, first in first out: a job
        submitted after another always runs after it, which cancellation handling relies on."""
        executor = self._executor
        if executor is None:
            raise RuntimeError("the SQLite store is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn)
        except sqlite3.Error as exc:
            raise IdempotencyError(f"SQLite store {self.path}: {exc}") from exc

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shoal-idem-sqlite")
        try:
            self._conn = await self._run(self._connect)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; the store issues BEGIN/COMMIT itself.
        # check_same_thread=False: the handler writes through the connection from the loop's
        # thread while the store's thread is idle; the asyncio.Lock keeps the two apart.
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("BEGIN IMMEDIATE")
            self._purge(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        if self._executor is None:
            return
        async with self._lock:  # waits for open claims to end
            conn, self._conn = self._conn, None
            if conn is not None:
                await self._run(conn.close)
            self._executor.shutdown(wait=True)
            self._executor = None

    async def begin(self, scope: str, message_id: str) -> SQLiteClaim | None:
        record_key(scope, message_id)
        await self._lock.acquire()
        try:
            done = await self._run(lambda: self._begin_sync(scope, message_id))
        except BaseException:
            # Cancelled or failed while the thread may still be opening the transaction: queue
            # a rollback behind it (the executor is FIFO) before anyone else may claim.
            self._submit_rollback()
            self._lock.release()
            raise
        if done:
            self._lock.release()
            return None
        return SQLiteClaim(self, scope, message_id)

    def _begin_sync(self, scope: str, message_id: str) -> bool:
        conn = self._connection()
        if conn.in_transaction:
            # Left over from a rollback that failed (disk error) or a claim cancelled mid-way;
            # no claim is live while we hold the lock, so nothing in it is wanted.
            conn.execute("ROLLBACK")
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(
            "SELECT 1 FROM shoal_processed WHERE scope = ? AND id = ?", (scope, message_id)
        ).fetchone()
        if row is not None:
            conn.execute("ROLLBACK")
        return row is not None

    async def _commit(self, scope: str, message_id: str) -> None:
        # If the caller is cancelled here the commit job still runs to its end on the thread:
        # the claim may well be committed, exactly as if the process had died after COMMIT.
        try:
            await self._run(lambda: self._commit_sync(scope, message_id))
        except BaseException:
            self._submit_rollback()
            raise
        finally:
            self._lock.release()

    def _commit_sync(self, scope: str, message_id: str) -> None:
        conn = self._connection()
        if not conn.in_transaction:
            raise RuntimeError(
                "the claim's transaction was ended by the handler (commit, rollback or "
                "`with connection:`); its effects are not protected by the dedup record"
            )
        now_ms = self._clock.now_ms()
        conn.execute(
            "INSERT INTO shoal_processed (scope, id, processed_at_ms) VALUES (?, ?, ?)",
            (scope, message_id, now_ms),
        )
        if now_ms >= self._next_purge_ms:
            self._purge(conn)
        conn.execute("COMMIT")

    async def _abort(self) -> None:
        try:
            await self._run(self._rollback_sync)
        finally:
            self._lock.release()

    def _rollback_sync(self) -> None:
        conn = self._conn
        if conn is not None and conn.in_transaction:
            conn.execute("ROLLBACK")

    def _submit_rollback(self) -> None:
        if self._executor is not None:
            self._executor.submit(self._rollback_sync)

    def _purge(self, conn: sqlite3.Connection) -> None:
        now_ms = self._clock.now_ms()
        deleted = conn.execute(
            "DELETE FROM shoal_processed WHERE rowid IN (SELECT rowid FROM shoal_processed"
            " WHERE processed_at_ms < ? LIMIT ?)",
            (now_ms - self._ttl_ms, PURGE_ROWS_MAX),
        ).rowcount
        self._next_purge_ms = now_ms if deleted >= PURGE_ROWS_MAX else now_ms + PURGE_INTERVAL_MS

    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            raise RuntimeError("the SQLite store is not open")
        return conn


class SQLiteClaim(_OnceClaim):
    def __init__(self, store: SQLiteStore, scope: str, message_id: str) -> None:
        super().__init__()
        self._store = store
        self.scope = scope
        self.message_id = message_id
        self.connection: sqlite3.Connection = store._connection()

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the store's thread, inside the claim's transaction: the
        way to write effects without blocking the event loop on the disk."""
        invariant(not self._ended, "claim.run after commit or abort")
        connection = self.connection
        return await self._store._run(lambda: fn(connection))

    async def commit(self) -> None:
        self._end()
        await self._store._commit(self.scope, self.message_id)

    async def abort(self) -> None:
        self._end()
        await self._store._abort()


# --- Redis --------------------------------------------------------------------------------

# Delete the key only if it still holds this claim's token: once a lease has expired, another
# consumer may own the key, and an abort must not free its claim.
_DELETE_IF_OURS: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisStore:
    """Processed message ids as Redis keys, shared by every instance of a service.

    ``begin`` sets the key to a pending token with NX and a ``lease_s`` expiry: only one
    consumer at a time holds a message, across processes. ``commit`` replaces it with "done"
    for ``ttl_s``; ``abort`` deletes it (if the lease is still ours), so a retry can claim it.
    A consumer that crashes mid-handler leaves its lease behind: the redelivered message is
    skipped as "in flight" until the lease expires, and the delivery after that processes it.
    Make ``lease_s`` longer than a handler call takes, and the redelivery delay longer than
    the lease, or a crash delays processing by up to one lease.

    The record is not atomic with the handler's effects: a crash after the effects and before
    ``commit`` lets the message be processed again after the lease. Effects must still be
    idempotent for that window; SQLiteStore closes it for effects kept in SQLite. Durability is
    Redis's: with ``appendonly yes`` and ``appendfsync always`` a done record survives a crash.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float = TTL_S_DEFAULT,
        lease_s: float = 30.0,
        prefix: str = "shoal:idem:",
    ) -> None:
        self.url = url
        self._ttl_ms = _check_seconds("ttl_s", ttl_s)
        self._lease_ms = _check_seconds("lease_s", lease_s)
        if self._lease_ms > self._ttl_ms:
            raise ValueError("lease_s must not be longer than ttl_s")
        self.prefix = prefix
        self._client: Redis | None = None
        # Without the "redis" extra, say so when the store is made, not at the first message.
        with extra_required("redis", "RedisStore"):
            import redis.asyncio  # noqa: F401

    def _redis(self) -> Redis:
        if self._client is None:
            raise RuntimeError("the Redis store is not open")
        return self._client

    async def open(self) -> None:
        if self._client is not None:
            return
        # redis is an optional dependency (the "redis" extra): imported only when used.
        from redis.asyncio import Redis
        from redis.exceptions import RedisError

        client = Redis.from_url(self.url)
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise IdempotencyError(f"Redis store {self.url}: {exc}") from exc
        self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def begin(self, scope: str, message_id: str) -> RedisClaim | None:
        key = self.prefix + record_key(scope, message_id)
        token = "pending:" + uuid.uuid4().hex
        claimed = await self._call(self._redis().set(key, token, nx=True, px=self._lease_ms))
        return RedisClaim(self, key, token) if claimed else None

    async def _commit(self, key: str) -> None:
        await self._call(self._redis().set(key, "done", px=self._ttl_ms))

    async def _abort(self, key: str, token: str) -> None:
        await self._call(self._redis().eval(_DELETE_IF_OURS, 1, key, token))

    async def _call(self, pending: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await pending
        except (RedisError, OSError) as exc:
            raise IdempotencyError(f"Redis store {self.url}: {exc}") from exc


class RedisClaim(_OnceClaim):
    connection: None = None

    def __init__(self, store: RedisStore, key: str, token: str) -> None:
        super().__init__()
        self._store = store
        self._key = key
        self._token = token

    async def commit(self) -> None:
        self._end()
        await self._store._commit(self._key)

    async def abort(self) -> None:
        self._end()
        await self._store._abort(self._key, self._token)


# --- compacted topic ----------------------------------------------------------------------

PROCESSED_VALUE: Final = b"1"
ENTRIES_MAX_DEFAULT: Final = 1_000_000
"""Ids a TopicIdempotencyStore holds in memory (roughly 150 bytes each, so ~150 MB at the
limit). Past it the oldest are forgotten early: a redelivery of one of those would be processed
again."""


class TopicIdempotencyStore:
    """Processed message ids in a compacted topic; the set itself lives in memory.

    ``open`` creates the topic if needed and reads it whole to rebuild the set of processed ids
    (those younger than ``ttl_s`` by record timestamp, at most ``entries_max``, newest kept);
    ``commit`` appends one record (key ``scope NUL message_id``, value ``b"1"``) and returns
    once the broker has it durably. Compaction keeps one record per key, so the topic grows
    with the number of distinct ids, not deliveries.

    Each instance knows only what was in the topic when it last read it, plus its own commits.
    Claims in flight are refused only within this instance. After a rebalance hands this
    instance partitions another one processed, call ``refresh()`` to learn what that one
    committed; otherwise a message it processed but did not get to commit the offset of is
    processed again. The record is not atomic with the handler's effects either.
    """

    def __init__(
        self,
        transport: Transport,
        topic: str = "shoal.idempotency",
        *,
        ttl_s: float = TTL_S_DEFAULT,
        entries_max: int = ENTRIES_MAX_DEFAULT,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not topic:
            raise ValueError("topic must be a non-empty name")
        if entries_max < 1:
            raise ValueError(f"entries_max must be at least 1, got {entries_max!r}")
        self.transport = transport
        self.topic = topic
        self._ttl_ms = _check_seconds("ttl_s", ttl_s)
        self._entries_max = entries_max
        self._clock = clock
        # key -> processed_at_ms, oldest first (dicts keep insertion order), so expiry and the
        # size cap both drop entries from the front.
        self._processed: dict[str, int] = {}
        self._in_flight: set[str] = set()

    async def open(self) -> None:
        await self.transport.ensure_topics([self.topic], compacted=True)
        await self.refresh()

    async def refresh(self) -> None:
        """Re-read the topic: learn what other instances committed since the last read."""
        now_ms = self._clock.now_ms()
        latest: dict[str, int] = {}
        for msg in await self.transport.read_topic(self.topic):
            if msg.key is None:
                continue
            key = msg.key.decode("utf-8", "replace")
            latest.pop(key, None)
            if msg.value == PROCESSED_VALUE:
                # A record without a timestamp (0) is taken as fresh rather than forgotten.
                latest[key] = msg.timestamp_ms or now_ms
            # Any other value is read as "not processed": room for a later "forget" record.
        # Our own commits may not be in what the broker returned yet: keep them too.
        for key, at_ms in self._processed.items():
            latest.setdefault(key, at_ms)
        fresh = sorted(
            ((at_ms, key) for key, at_ms in latest.items() if at_ms >= now_ms - self._ttl_ms),
        )
        self._processed = {key: at_ms for at_ms, key in fresh[-self._entries_max :]}

    async def close(self) -> None:
        self._processed.clear()
        self._in_flight.clear()

    async def begin(self, scope: str, message_id: str) -> TopicClaim | None:
        key = record_key(scope, message_id)
        self._expire(self._clock.now_ms())
        if key in self._processed or key in self._in_flight:
            return None
        self._in_flight.add(key)
        return TopicClaim(self, key)

    async def _commit(self, key: str) -> None:
        try:
            await self.transport.send(self.topic, PROCESSED_VALUE, key.encode(), [])
        finally:
            # Sent or not, this claim is over; if the send failed the message is retried.
            self._in_flight.discard(key)
        now_ms = self._clock.now_ms()
        self._processed.pop(key, None)
        self._processed[key] = now_ms
        self._expire(now_ms)
        while len(self._processed) > self._entries_max:
            del self._processed[next(iter(self._processed))]

    def _abort(self, key: str) -> None:
        self._in_flight.discard(key)

    def _expire(self, now_ms: int) -> None:
        oldest_ms = now_ms - self._ttl_ms
        while self._processed:
            key = next(iter(self._processed))
            if self._processed[key] >= oldest_ms:
                break
            del self._processed[key]


class TopicClaim(_OnceClaim):
    connection: None = None

    def __init__(self, store: TopicIdempotencyStore, key: str) -> None:
        super().__init__()
        self._store = store
        self._key = key

    async def commit(self) -> None:
        self._end()
        await self._store._commit(self._key)

    async def abort(self) -> None:
        self._end()
        self._store._abort(self._key)
