"""Idempotency stores: one suite every store passes, then what each store adds.

SQLite runs on a temporary file, Redis on a real redis-server (integration), the topic store on
the in-memory transport. The SQLite crash test SIGKILLs a real child process holding a claim.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shoal.app.message import Headers
from shoal.app.resilience.idempotency import (
    Claim,
    IdempotencyError,
    IdempotencyStore,
    RedisStore,
    SQLiteStore,
    TopicIdempotencyStore,
)
from shoal.app.transport import TransportError
from shoal.app.transports.memory import MemoryTransport
from shoal.testing.clock import FakeClock

# Importing the session fixture registers it here; tests reach it through `redis` below, since
# a parameter of the same name would shadow the import.
from tests.peers.servers import RedisServer, start_redis

RUN_TIMEOUT_S = 30.0
"""Bounds a scenario that would otherwise hang (a claim never released); not a timing check."""
REPO = Path(__file__).resolve().parents[3]


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, RUN_TIMEOUT_S))


@dataclass
class Kit:
    """How to make a store over the same data again (a restart), and how the store behaves."""

    make: Callable[[], IdempotencyStore]
    serialises: bool  # SQLite: a second begin waits for the first claim to end


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("redis", marks=[pytest.mark.integration, pytest.mark.peer]),
        "topic",
    ]
)
def kit(request: pytest.FixtureRequest, tmp_path: Path) -> Kit:
    if request.param == "sqlite":
        return Kit(lambda: SQLiteStore(tmp_path / "idem.db"), serialises=True)
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        prefix = f"test:{uuid.uuid4().hex}:"  # the server is shared by the whole session
        return Kit(lambda: RedisStore(server.url, prefix=prefix), serialises=False)
    transport = MemoryTransport()
    return Kit(lambda: TopicIdempotencyStore(transport), serialises=False)


async def opened(kit: Kit) -> IdempotencyStore:
    store = kit.make()
    await store.open()
    return store


async def claimed(store: IdempotencyStore, scope: str, message_id: str) -> Claim:
    """A claim that must be granted: (scope, message_id) is neither done nor in flight."""
    claim = await store.begin(scope, message_id)
    assert claim is not None, (scope, message_id)
    return claim


# --- every store --------------------------------------------------------------------------


def test_a_committed_message_is_not_claimed_again(kit: Kit) -> None:
    async def scenario() -> None:
        store = await opened(kit)
        claim = await claimed(store, "billing", "m-1")
        await claim.commit()
        assert await store.begin("billing", "m-1") is None
        # Another consumer group processes the same message on its own.
        other = await claimed(store, "shipping", "m-1")
        await other.commit()
        await store.close()

    run(scenario())


def test_an_aborted_claim_can_be_claimed_again(kit: Kit) -> None:
    async def scenario() -> None:
        store = await opened(kit)
        claim = await claimed(store, "billing", "m-1")
        await claim.abort()
        again = await claimed(store, "billing", "m-1")  # the handler failed: the retry must run it
        await again.commit()
        assert await store.begin("billing", "m-1") is None
        await store.close()

    run(scenario())


def test_concurrent_begins_give_one_claim(kit: Kit) -> None:
    async def scenario() -> None:
        store = await opened(kit)
        tasks = [asyncio.create_task(store.begin("billing", "m-1")) for _ in range(10)]
        claims = 0
        for next_done in asyncio.as_completed(tasks):
            claim = await next_done
            if claim is not None:
                claims += 1
                await claim.commit()
        assert claims == 1
        await store.close()

    run(scenario())


def test_a_message_in_flight_is_not_claimed_twice(kit: Kit) -> None:
    async def scenario() -> None:
        store = await opened(kit)
        first = await claimed(store, "billing", "m-1")
        second = asyncio.create_task(store.begin("billing", "m-1"))
        if kit.serialises:
            for _ in range(20):
                await asyncio.sleep(0)
            assert not second.done()  # waits for the first claim to end
            await first.abort()
            claim = await second
            assert claim is not None  # the first failed, so the second may run it
            await claim.commit()
        else:
            assert await second is None  # refused while the first is in flight
            await first.abort()
            claim = await claimed(store, "billing", "m-1")
            await claim.commit()
        await store.close()

    run(scenario())


def test_processed_ids_survive_a_reopen(kit: Kit) -> None:
    async def scenario() -> None:
        store = await opened(kit)
        for message_id in ("m-1", "m-2"):
            claim = await claimed(store, "billing", message_id)
            await claim.commit()
        aborted = await claimed(store, "billing", "m-3")
        await aborted.abort()
        await store.close()

        reopened = await opened(kit)
        assert await reopened.begin("billing", "m-1") is None
        assert await reopened.begin("billing", "m-2") is None
        claim = await claimed(reopened, "billing", "m-3")
        await claim.commit()
        await reopened.close()

    run(scenario())


def test_a_claim_ends_once(kit: Kit) -> None:
    async def scenario() -> None:
        store = await opened(kit)
        claim = await claimed(store, "billing", "m-1")
        await claim.commit()
        with pytest.raises(RuntimeError):
            await claim.commit()
        with pytest.raises(RuntimeError):
            await claim.abort()
        assert await store.begin("billing", "m-1") is None
        await store.close()

    run(scenario())


@pytest.mark.parametrize(
    ("scope", "message_id"),
    [("", "m"), ("a\x00b", "m"), ("s", ""), ("s", "x" * 1025), ("s" * 1025, "m")],
)
def test_bad_keys_are_refused(kit: Kit, scope: str, message_id: str) -> None:
    async def scenario() -> None:
        store = await opened(kit)
        with pytest.raises(ValueError):
            await store.begin(scope, message_id)
        claim = await store.begin("s", "m")  # and the store is still usable
        assert claim is not None
        await claim.abort()
        await store.close()

    run(scenario())


def test_a_message_id_may_hold_anything_but_the_scope_stays_apart(kit: Kit) -> None:
    async def scenario() -> None:
        store = await opened(kit)
        claim = await claimed(store, "a", "b\x00c")
        await claim.commit()
        claim = await store.begin("a\u00e9", "b")  # not confused with the one above
        assert claim is not None
        await claim.commit()
        assert await store.begin("a", "b\x00c") is None
        await store.close()

    run(scenario())


# --- SQLite -------------------------------------------------------------------------------


def make_effects_table(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS effects (message_id TEXT NOT NULL)")


def effects(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [row[0] for row in conn.execute("SELECT message_id FROM effects ORDER BY rowid")]
    finally:
        conn.close()


def test_sqlite_abort_rolls_back_the_handlers_effects(tmp_path: Path) -> None:
    db = tmp_path / "idem.db"
    make_effects_table(db)

    async def scenario() -> None:
        store = SQLiteStore(db)
        await store.open()
        claim = await claimed(store, "billing", "m-1")
        claim.connection.execute("INSERT INTO effects VALUES ('m-1')")
        assert effects(db) == []  # nothing is visible before the claim commits
        await claim.abort()
        assert effects(db) == []
        again = await claimed(store, "billing", "m-1")  # no dedup row either
        await again.abort()
        await store.close()

    run(scenario())


def test_sqlite_commit_makes_effects_and_the_record_durable_together(tmp_path: Path) -> None:
    db = tmp_path / "idem.db"
    make_effects_table(db)

    async def scenario() -> None:
        store = SQLiteStore(db)
        await store.open()
        claim = await claimed(store, "billing", "m-1")
        claim.connection.execute("INSERT INTO effects VALUES ('m-1')")
        await claim.run(lambda conn: conn.execute("INSERT INTO effects VALUES ('m-1 again')"))
        await claim.commit()
        assert effects(db) == ["m-1", "m-1 again"]
        assert await store.begin("billing", "m-1") is None
        await store.close()

    run(scenario())


CRASHING_HANDLER = """
import asyncio, sys
from shoal.app.resilience.idempotency import SQLiteStore

async def main() -> None:
    store = SQLiteStore(sys.argv[1])
    await store.open()
    claim = await store.begin("billing", "m-1")
    assert claim is not None
    claim.connection.execute("INSERT INTO effects VALUES ('m-1')")
    print("effect written", flush=True)
    await asyncio.sleep(3600)  # killed here, between the effect and the commit

asyncio.run(main())
"""


def test_sqlite_crash_between_effect_and_commit_applies_the_effect_once(tmp_path: Path) -> None:
    db = tmp_path / "idem.db"
    make_effects_table(db)
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_HANDLER, str(db)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "effect written"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(RUN_TIMEOUT_S)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert effects(db) == []  # the half-done handler left nothing behind

    async def redelivery() -> None:
        store = SQLiteStore(db)
        await store.open()
        claim = await claimed(store, "billing", "m-1")  # the crashed claim never became a record
        claim.connection.execute("INSERT INTO effects VALUES ('m-1')")
        await claim.commit()
        assert await store.begin("billing", "m-1") is None  # a further redelivery is skipped
        await store.close()

    run(redelivery())
    assert effects(db) == ["m-1"]


def test_sqlite_refuses_to_commit_a_transaction_the_handler_ended(tmp_path: Path) -> None:
    db = tmp_path / "idem.db"
    make_effects_table(db)

    async def scenario() -> None:
        store = SQLiteStore(db)
        await store.open()
        claim = await claimed(store, "billing", "m-1")
        claim.connection.execute("INSERT INTO effects VALUES ('m-1')")
        claim.connection.execute("COMMIT")  # a handler bug: its effect is now on its own
        with pytest.raises(RuntimeError, match="ended by the handler"):
            await claim.commit()
        # No dedup record was written, and the store is not stuck.
        again = await claimed(store, "billing", "m-1")
        await again.abort()
        await store.close()

    run(scenario())


def test_sqlite_a_cancelled_begin_leaves_the_store_usable(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "idem.db")
        await store.open()
        first = await claimed(store, "billing", "m-1")
        waiting = asyncio.create_task(store.begin("billing", "m-2"))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await first.commit()
        claim = await claimed(store, "billing", "m-2")
        await claim.commit()
        assert await store.begin("billing", "m-1") is None
        await store.close()

    run(scenario())


def test_sqlite_is_durable_against_power_loss(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "idem.db")
        await store.open()
        claim = await claimed(store, "billing", "m-1")
        conn = claim.connection
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        await claim.abort()
        await store.close()

    run(scenario())


def test_sqlite_forgets_ids_after_ttl(tmp_path: Path) -> None:
    clock = FakeClock()
    day_ms = 24 * 3600 * 1000

    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "idem.db", ttl_s=24 * 3600, clock=clock)
        await store.open()
        claim = await claimed(store, "billing", "old")
        await claim.commit()
        clock.advance(day_ms // 2)
        claim = await claimed(store, "billing", "recent")
        await claim.commit()
        clock.advance(day_ms // 2 + 1)  # "old" is past the ttl, "recent" is not
        await store.close()
        await store.open()  # a purge runs at open (and now and then at commit)
        assert await store.begin("billing", "recent") is None
        claim = await claimed(store, "billing", "old")  # remembered a day, then forgotten
        await claim.abort()
        await store.close()

    run(scenario())


def test_sqlite_purges_expired_rows_while_running(tmp_path: Path) -> None:
    clock = FakeClock()
    db = tmp_path / "idem.db"

    async def scenario() -> None:
        store = SQLiteStore(db, ttl_s=60, clock=clock)
        await store.open()
        for n in range(5):
            claim = await claimed(store, "billing", f"m-{n}")
            await claim.commit()
        clock.advance(3600 * 1000)  # past the ttl and the purge interval
        claim = await claimed(store, "billing", "trigger")
        await claim.commit()
        conn = sqlite3.connect(db)
        try:
            rows = [r[0] for r in conn.execute("SELECT id FROM shoal_processed")]
        finally:
            conn.close()
        assert rows == ["trigger"]
        await store.close()

    run(scenario())


def test_sqlite_store_must_be_open(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "idem.db")
        with pytest.raises(RuntimeError, match="not open"):
            await store.begin("billing", "m-1")

    run(scenario())


def test_sqlite_unusable_file_is_an_idempotency_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "no-such-dir" / "idem.db")
        with pytest.raises(IdempotencyError):
            await store.open()

    run(scenario())


@pytest.mark.parametrize("ttl_s", [0, -1, float("nan"), float("inf")])
def test_bad_ttls_are_refused(tmp_path: Path, ttl_s: float) -> None:
    with pytest.raises(ValueError):
        SQLiteStore(tmp_path / "idem.db", ttl_s=ttl_s)
    with pytest.raises(ValueError):
        RedisStore("redis://127.0.0.1:1", ttl_s=ttl_s)
    with pytest.raises(ValueError):
        TopicIdempotencyStore(MemoryTransport(), ttl_s=ttl_s)


# --- Redis --------------------------------------------------------------------------------


@pytest.fixture
def redis(request: pytest.FixtureRequest) -> RedisServer:
    server: RedisServer = request.getfixturevalue("redis_server")
    return server


POLL_S = 0.02
POLLS_MAX = 500
"""Lease expiry is Redis's own timer; the tests wait for its effect, bounded in count."""


async def claim_eventually(store: RedisStore, scope: str, message_id: str) -> Any:
    for _ in range(POLLS_MAX):
        claim = await store.begin(scope, message_id)
        if claim is not None:
            return claim
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"{message_id} was never claimable again")


@pytest.mark.integration
def test_redis_a_crashed_claim_is_retried_after_its_lease(redis: RedisServer) -> None:
    async def scenario() -> None:
        crashed = RedisStore(redis.url, lease_s=0.2, prefix=f"t:{uuid.uuid4().hex}:")
        await crashed.open()
        assert await crashed.begin("billing", "m-1") is not None
        await crashed.close()  # the consumer died mid-handler: no commit, no abort

        survivor = RedisStore(redis.url, lease_s=0.2, prefix=crashed.prefix)
        await survivor.open()
        assert await survivor.begin("billing", "m-1") is None  # still leased
        claim = await claim_eventually(survivor, "billing", "m-1")
        await claim.commit()
        assert await survivor.begin("billing", "m-1") is None
        await survivor.close()

    run(scenario())


@pytest.mark.integration
def test_redis_a_late_abort_does_not_free_the_next_claim(redis: RedisServer) -> None:
    async def scenario() -> None:
        store = RedisStore(redis.url, lease_s=0.2, prefix=f"t:{uuid.uuid4().hex}:")
        await store.open()
        slow = await claimed(store, "billing", "m-1")
        fresh = await claim_eventually(store, "billing", "m-1")  # after the slow one's lease
        await slow.abort()
        assert await store.begin("billing", "m-1") is None  # the fresh claim still holds it
        await fresh.commit()
        assert await store.begin("billing", "m-1") is None
        await store.close()

    run(scenario())


@pytest.mark.integration
def test_redis_done_records_expire_after_ttl(redis: RedisServer) -> None:
    async def scenario() -> None:
        store = RedisStore(redis.url, ttl_s=0.3, lease_s=0.1, prefix=f"t:{uuid.uuid4().hex}:")
        await store.open()
        claim = await claimed(store, "billing", "m-1")
        await claim.commit()
        assert await store.begin("billing", "m-1") is None
        again = await claim_eventually(store, "billing", "m-1")
        await again.abort()
        await store.close()

    run(scenario())


@pytest.mark.integration
def test_redis_records_survive_a_server_crash(tmp_path: Path) -> None:
    server = start_redis(tmp_path / "redis")  # our own: this test kills it
    try:

        async def commit_one() -> None:
            store = RedisStore(server.url)
            await store.open()
            claim = await claimed(store, "billing", "m-1")
            await claim.commit()
            await store.close()

        async def check() -> None:
            store = RedisStore(server.url)
            await store.open()
            assert await store.begin("billing", "m-1") is None
            await store.close()

        run(commit_one())
        server.kill()  # SIGKILL: only the fsynced append-only file survives
        server.start()
        run(check())
    finally:
        server.stop()


@pytest.mark.integration
def test_redis_unreachable_server_is_an_idempotency_error(tmp_path: Path) -> None:
    server = start_redis(tmp_path / "redis")
    url = server.url
    server.stop()

    async def scenario() -> None:
        with pytest.raises(IdempotencyError):
            await RedisStore(url).open()

    run(scenario())


def test_redis_lease_longer_than_ttl_is_refused() -> None:
    with pytest.raises(ValueError):
        RedisStore("redis://127.0.0.1:1", ttl_s=10, lease_s=20)


# --- compacted topic ----------------------------------------------------------------------


class RecordingTransport(MemoryTransport):
    """The memory transport, noting how topics were ensured and failing sends on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.ensured: list[tuple[list[str], bool]] = []
        self.fail_sends = 0

    async def ensure_topics(self, topics: list[str], *, compacted: bool = False) -> None:
        self.ensured.append((topics, compacted))
        await super().ensure_topics(topics, compacted=compacted)

    async def send(self, topic: str, value: bytes, key: bytes | None, headers: Headers) -> None:
        if self.fail_sends:
            self.fail_sends -= 1
            raise TransportError("broker unavailable")
        await super().send(topic, value, key, headers)


def test_topic_store_uses_a_compacted_topic_keyed_by_scope_and_id() -> None:
    async def scenario() -> None:
        transport = RecordingTransport()
        store = TopicIdempotencyStore(transport, "idem")
        await store.open()
        assert transport.ensured == [(["idem"], True)]
        claim = await claimed(store, "billing", "m-1")
        assert claim.connection is None
        await claim.commit()
        records = await transport.read_topic("idem")
        assert [(r.key, r.value) for r in records] == [(b"billing\x00m-1", b"1")]
        await store.close()

    run(scenario())


def test_topic_store_refresh_learns_what_other_instances_committed() -> None:
    async def scenario() -> None:
        transport = MemoryTransport()
        mine, theirs = TopicIdempotencyStore(transport), TopicIdempotencyStore(transport)
        await mine.open()
        await theirs.open()
        claim = await claimed(theirs, "billing", "m-1")
        await claim.commit()
        unaware = await claimed(mine, "billing", "m-1")  # only knows the topic as of its last read
        await unaware.abort()
        await mine.refresh()  # e.g. after a rebalance
        assert await mine.begin("billing", "m-1") is None

    run(scenario())


def test_topic_store_failed_send_records_nothing() -> None:
    async def scenario() -> None:
        transport = RecordingTransport()
        store = TopicIdempotencyStore(transport)
        await store.open()
        claim = await claimed(store, "billing", "m-1")
        transport.fail_sends = 1
        with pytest.raises(TransportError):
            await claim.commit()
        again = await claimed(store, "billing", "m-1")  # not processed, not stuck in flight
        await again.commit()
        await store.close()
        fresh = TopicIdempotencyStore(transport)
        await fresh.open()
        assert await fresh.begin("billing", "m-1") is None

    run(scenario())


def test_topic_store_forgets_ids_after_ttl_in_memory_and_on_rebuild() -> None:
    # The memory transport stamps records with the real time; the fake clock starts there.
    clock = FakeClock(time.time_ns() // 1_000_000)
    hour_ms = 3600 * 1000

    async def scenario() -> None:
        transport = MemoryTransport()
        store = TopicIdempotencyStore(transport, ttl_s=3600, clock=clock)
        await store.open()
        claim = await claimed(store, "billing", "m-1")
        await claim.commit()
        clock.advance(hour_ms + 60_000)
        claim = await claimed(store, "billing", "m-1")  # forgotten after the ttl
        await claim.abort()
        rebuilt = TopicIdempotencyStore(transport, ttl_s=3600, clock=clock)
        await rebuilt.open()
        # The old record in the topic is not resurrected.
        claim = await claimed(rebuilt, "billing", "m-1")
        await claim.abort()

    run(scenario())


def test_topic_store_keeps_at_most_entries_max_ids() -> None:
    async def scenario() -> None:
        transport = MemoryTransport()
        store = TopicIdempotencyStore(transport, entries_max=2)
        await store.open()
        for message_id in ("m-1", "m-2", "m-3"):
            claim = await claimed(store, "billing", message_id)
            await claim.commit()
        assert await store.begin("billing", "m-3") is None
        assert await store.begin("billing", "m-2") is None
        oldest = await claimed(store, "billing", "m-1")  # evicted to keep memory bounded
        await oldest.abort()
        rebuilt = TopicIdempotencyStore(transport, entries_max=2)
        await rebuilt.open()
        assert await rebuilt.begin("billing", "m-3") is None
        oldest = await claimed(rebuilt, "billing", "m-1")  # the rebuild keeps the newest too
        await oldest.abort()

    run(scenario())


def test_topic_store_ignores_records_it_does_not_understand() -> None:
    async def scenario() -> None:
        transport = MemoryTransport()
        await transport.send("shoal.idempotency", b"1", None, [])
        await transport.send("shoal.idempotency", b"1", b"billing\x00m-1", [])
        await transport.send("shoal.idempotency", b"forget", b"billing\x00m-1", [])
        store = TopicIdempotencyStore(transport)
        await store.open()
        # The last record for the key says "not processed".
        claim = await claimed(store, "billing", "m-1")
        await claim.abort()

    run(scenario())


def test_topic_store_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        TopicIdempotencyStore(MemoryTransport(), "")
    with pytest.raises(ValueError):
        TopicIdempotencyStore(MemoryTransport(), entries_max=0)
