"""The transport suite and Redis-specific behaviour, against a real redis-server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from shoal import App, Message
from shoal.app.transports.redis_delay import TOPICS_KEY, delayed_key
from shoal.app.transports.redis_streams import (
    DELIVERY_COUNT_HEADER,
    ENTRY_ID_HEADER,
    RedisSettings,
    RedisTransport,
    decode_entry,
    entry_fields,
)
from tests.app.transports.queue_checks import ride_out_a_restart, round_trip_tricky
from tests.app.transports.transport_suite import WAIT_S, TransportSuite, run, topic_name, wait_until
from tests.peers.servers import RedisServer, start_redis

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CLAIM_IDLE_MS = 500
"""Short, so a dead consumer's entries are taken over within the test; real apps keep 30 s."""

TRICKY_HEADERS = [
    ("dup", b"first"),
    ("dup", b"second"),
    ("", b""),
    ("spaces ", b"  padded  "),
    ("crlf", b"line\r\nbreak"),
    ("binary", bytes(range(256))),
    ("ünïcode-naμe", "välue".encode()),
    ("empty", b""),
]


def url_of(server: RedisServer, query: str = "") -> str:
    return f"{server.url}/0?claim_idle_ms={CLAIM_IDLE_MS}{'&' + query if query else ''}"


def without_delivery_headers(msg: Message) -> list[tuple[str, bytes]]:
    return [h for h in msg.headers if h[0] not in (ENTRY_ID_HEADER, DELIVERY_COUNT_HEADER)]


class TestRedisTransport(TransportSuite):
    @pytest.fixture
    def broker_url(self, redis_server: RedisServer) -> str:
        return url_of(redis_server)


# -- the entry codec, without a server ---------------------------------------------------------


@given(
    value=st.binary(),
    key=st.none() | st.binary(),
    headers=st.lists(st.tuples(st.text(), st.binary())),
)
def test_entry_fields_round_trip(value: bytes, key: bytes | None, headers: list) -> None:
    fields = {k.encode(): v for k, v in entry_fields(value, key, headers).items()}
    assert decode_entry(fields) == (value, key, headers)


def test_entries_written_by_other_programs_arrive_with_their_fields_as_headers() -> None:
    assert decode_entry({b"temp": b"21", b"unit": b"C"}) == (
        b"",
        None,
        [("temp", b"21"), ("unit", b"C")],
    )


def test_url_options_are_parsed_and_the_rest_left_to_redis_py() -> None:
    settings = RedisSettings.from_url("redis://h:1/2?maxlen=10&socket_keepalive=true")
    assert (settings.maxlen, settings.max_age_ms) == (10, None)
    assert settings.client_url == "redis://h:1/2?socket_keepalive=true"
    with pytest.raises(ValueError, match="one trimming policy"):
        RedisSettings.from_url("redis://h:1?maxlen=10&max_age_ms=5")
    with pytest.raises(ValueError, match="positive integer"):
        RedisSettings.from_url("redis://h:1?claim_idle_ms=-1")


# -- against the server --------------------------------------------------------------------------


def test_keys_and_headers_round_trip_exactly(redis_server: RedisServer) -> None:
    topic = topic_name("tricky")

    async def scenario() -> None:
        got, _ = await round_trip_tricky(
            url_of(redis_server), topic, TRICKY_HEADERS, without_delivery_headers
        )
        assert all(m.header(DELIVERY_COUNT_HEADER) == b"1" for m in got)
        # The entry id is Redis's own: XRANGE finds the record under it.
        client = redis.Redis.from_url(redis_server.url)
        try:
            first_id = got[0].header(ENTRY_ID_HEADER)
            assert first_id is not None
            assert client.xrange(topic, first_id, first_id)[0][1][b"key"] == b""
        finally:
            client.close()

    run(scenario())


def test_maxlen_in_the_url_trims_the_stream(redis_server: RedisServer) -> None:
    topic = topic_name("trimmed")
    count = 1000

    async def scenario() -> None:
        async with App(url_of(redis_server, "maxlen=10")) as app:
            for n in range(count):
                await app.publish(topic, n)
            stored = await app.transport.read_topic(topic)
        # MAXLEN ~ drops whole radix-tree nodes (100 entries by default): the stream keeps at
        # least the last 10 and far fewer than were written.
        assert 10 <= len(stored) < count // 2
        assert [int(m.value) for m in stored] == list(range(count - len(stored), count))

    run(scenario())


def test_without_trimming_options_nothing_is_trimmed(redis_server: RedisServer) -> None:
    topic = topic_name("kept")

    async def scenario() -> None:
        async with App(url_of(redis_server)) as app:
            for n in range(300):
                await app.publish(topic, n)
            assert len(await app.transport.read_topic(topic)) == 300

    run(scenario())


def test_pause_lag_and_assignment(redis_server: RedisServer) -> None:
    topic = topic_name("paused")

    async def scenario() -> None:
        transport = RedisTransport(url_of(redis_server))
        await transport.start()
        consumer = transport.consumer([topic], "g")
        try:
            assert consumer.assignment() == []
            await consumer.start()
            assert consumer.assignment() == [(topic, 0)]
            for n in range(3):
                await transport.send(topic, b"%d" % n, None, [])
            assert await consumer.lag() == {(topic, 0): 3}

            consumer.pause()
            assert await consumer.fetch(10, 0.05) == []
            consumer.resume()
            got = await consumer.fetch(10, 1.0)
            assert [(m.offset, m.value) for m in got] == [(0, b"0"), (1, b"1"), (2, b"2")]
            assert await consumer.lag() == {(topic, 0): 3}  # delivered, not yet acknowledged

            await consumer.commit({(topic, 0): 2})
            assert await consumer.lag() == {(topic, 0): 1}
            await consumer.commit({(topic, 0): 3})
            assert await consumer.lag() == {(topic, 0): 0}
        finally:
            await consumer.close()
            await transport.stop()

    run(scenario())


def test_close_hands_unfinished_entries_back_oldest_first(
    redis_server: RedisServer,
) -> None:
    topic = topic_name("handback")

    async def scenario() -> None:
        transport = RedisTransport(f"{redis_server.url}/0?claim_idle_ms=600000")
        await transport.start()
        first, second = transport.consumer([topic], "g"), transport.consumer([topic], "g")
        try:
            await first.start()
            for n in range(3):
                await transport.send(topic, b"%d" % n, None, [])
            assert len(await first.fetch(10, 1.0)) == 3
            await first.commit({(topic, 0): 1})
            await transport.send(topic, b"3", None, [])
            await first.close()
            # Claiming waits ten minutes here: only the hand-back can explain a prompt return.
            await second.start()
            got = await second.fetch(10, 1.0)
            assert [(m.value, m.header(DELIVERY_COUNT_HEADER)) for m in got] == [
                (b"1", b"2"),
                (b"2", b"2"),
                (b"3", b"1"),
            ]
        finally:
            await first.close()
            await second.close()
            await transport.stop()

    run(scenario())


CHILD_CONSUMER = """
import asyncio, sys
from shoal import App

async def main() -> None:
    app = App(sys.argv[1])

    @app.subscriber(sys.argv[2], group=sys.argv[3])
    async def take(n: int) -> None:
        print("took", n, flush=True)
        await asyncio.Event().wait()  # never finishes, so nothing is ever acknowledged

    async with app:
        await asyncio.Event().wait()

asyncio.run(main())
"""


def test_entries_of_a_sigkilled_consumer_are_claimed_by_the_next(
    redis_server: RedisServer,
) -> None:
    topic, group = topic_name("claimed"), "workers"
    url = url_of(redis_server)
    got: list[Message] = []

    async def publish() -> None:
        async with App(url) as app:
            for n in range(5):
                await app.publish(topic, n)

    async def take_over() -> None:
        app = App(url)

        @app.subscriber(topic, group=group)
        async def take(n: int, msg: Message) -> None:
            got.append(msg)

        async with app:
            await wait_until(lambda: len(got) == 5, "the dead consumer's records")

    run(publish())
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_CONSUMER, url, topic, group],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "took 0"
        client = redis.Redis.from_url(redis_server.url)
        try:
            assert client.xpending(topic, group)["pending"] == 5  # the child holds all five
        finally:
            client.close()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=WAIT_S)
        if child.stdout is not None:
            child.stdout.close()

    run(take_over())
    assert [int(m.value) for m in got] == [0, 1, 2, 3, 4]
    assert [m.header(DELIVERY_COUNT_HEADER) for m in got] == [b"2"] * 5
    assert [m.offset for m in got] == [0, 1, 2, 3, 4]


def test_a_slow_handler_keeps_its_entries(redis_server: RedisServer) -> None:
    topic = topic_name("slow")

    async def scenario() -> None:
        transport = RedisTransport(url_of(redis_server))
        await transport.start()
        slow, other = transport.consumer([topic], "g"), transport.consumer([topic], "g")
        try:
            await slow.start()
            await other.start()
            await transport.send(topic, b"work", None, [])
            (held,) = await slow.fetch(10, 1.0)
            # Several claim periods pass while the handler works; the slow consumer's keep-alive
            # refreshes the entry, so the other member never takes it.
            stolen: list[Message] = []
            for _ in range(8):
                stolen += await other.fetch(10, CLAIM_IDLE_MS / 1000)
            assert stolen == []
            await slow.commit({(topic, 0): held.offset + 1})
            assert await other.lag() == {(topic, 0): 0}
        finally:
            await slow.close()
            await other.close()
            await transport.stop()

    run(scenario())


def test_the_app_reconnects_by_itself_after_a_server_restart(tmp_path: Path) -> None:
    with start_redis(tmp_path / "redis") as server:
        run(ride_out_a_restart(server, url_of(server)))


# -- delayed sends (send_delayed, which retry topics use) ------------------------------------------


def server_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def delayed_due_ms(client: redis.Redis, topic: str) -> list[int]:
    return [int(score) for _, score in client.zrange(delayed_key(topic), 0, -1, withscores=True)]


def test_a_delayed_entry_reaches_the_stream_when_due_and_not_before(
    redis_server: RedisServer,
) -> None:
    topic = topic_name("delayed")
    client = redis.Redis.from_url(redis_server.url)

    async def scenario() -> None:
        transport = RedisTransport(url_of(redis_server))
        await transport.start()
        try:
            await transport.send_delayed(topic, b"\x00later", b"\xff", TRICKY_HEADERS, 300)
            (due_ms,) = delayed_due_ms(client, topic)
            # A read followed by a server clock still short of the due time was made before it:
            # the stream must have been empty then, whatever the scheduler did meanwhile.
            while True:
                stored = await transport.read_topic(topic)
                if server_ms(client) >= due_ms:
                    break
                assert stored == []
                await asyncio.sleep(0.01)
            await wait_until(lambda: client.xlen(topic) == 1, "the entry to come due")
            (msg,) = await transport.read_topic(topic)
            assert (msg.value, msg.key) == (b"\x00later", b"\xff")
            assert without_delivery_headers(msg) == TRICKY_HEADERS
            assert client.exists(delayed_key(topic)) == 0
        finally:
            await transport.stop()
            client.close()

    run(scenario())


def test_delayed_entries_arrive_in_due_order_and_identical_ones_are_kept(
    redis_server: RedisServer,
) -> None:
    topic = topic_name("due-order")
    client = redis.Redis.from_url(redis_server.url)

    async def scenario() -> None:
        transport = RedisTransport(url_of(redis_server))
        await transport.start()
        try:
            await transport.send_delayed(topic, b"late", None, [], 800)
            await transport.send_delayed(topic, b"soon", None, [], 200)
            await transport.send_delayed(topic, b"soon", None, [], 200)
            assert client.zcard(delayed_key(topic)) == 3  # equal records, distinct members
            await wait_until(lambda: client.xlen(topic) == 3, "all three entries")
            assert [m.value for m in await transport.read_topic(topic)] == [
                b"soon",
                b"soon",
                b"late",
            ]
        finally:
            await transport.stop()
            client.close()

    run(scenario())


def test_schedulers_of_several_transports_move_each_entry_exactly_once(
    redis_server: RedisServer,
) -> None:
    topics = [topic_name("contended"), topic_name("contended")]
    count = 200
    client = redis.Redis.from_url(redis_server.url)

    async def scenario() -> None:
        transports = [RedisTransport(url_of(redis_server)) for _ in range(3)]
        for transport in transports:
            await transport.start()
        try:
            for n in range(count):
                sender = transports[n % len(transports)]
                await sender.send_delayed(topics[n % 2], b"%d" % n, None, [], 1 + n % 50)

            def all_moved() -> bool:
                return not any(client.exists(delayed_key(t)) for t in topics)

            await wait_until(all_moved, "every delayed entry to be moved")
            values = [m.value for t in topics for m in await transport.read_topic(t)]
            assert sorted(values) == sorted(b"%d" % n for n in range(count))
        finally:
            for transport in transports:
                await transport.stop()
            client.close()

    run(scenario())


PARKED_DELAY_MS = 5_000
"""Long enough that the entry is still parked when its scheduler has stopped (a 1 s delay
passed first on a loaded machine), short enough that the restarted one moves it soon."""


def test_delayed_entries_survive_the_transport_and_a_server_crash(tmp_path: Path) -> None:
    topic = topic_name("parked")

    with start_redis(tmp_path / "redis") as server:

        async def schedule() -> None:
            transport = RedisTransport(url_of(server))
            await transport.start()
            await transport.send_delayed(topic, b"parked", b"k", [("h", b"v")], PARKED_DELAY_MS)
            await transport.stop()

        async def resume() -> None:
            transport = RedisTransport(url_of(server))
            await transport.start()
            try:
                await wait_until(lambda: client.xlen(topic) == 1, "the parked entry")
                (msg,) = await transport.read_topic(topic)
                assert (msg.value, msg.key) == (b"parked", b"k")
                assert without_delivery_headers(msg) == [("h", b"v")]
            finally:
                await transport.stop()

        run(schedule())
        client = redis.Redis.from_url(server.url)
        try:
            # Nobody moves it now: the only scheduler is stopped. (Only a machine so loaded that
            # the delay passed before the scheduler stopped finds it moved already: one copy,
            # either way, must then survive the crash.)
            parked, moved = client.zcard(delayed_key(topic)), client.xlen(topic)
            assert (parked, moved) in ((1, 0), (0, 1))
        finally:
            client.close()
        server.kill()  # no shutdown: the AOF (appendfsync always) is all that is left
        server.start()
        client = redis.Redis.from_url(server.url)
        try:
            run(resume())
            assert client.exists(delayed_key(topic)) == 0
        finally:
            client.close()


def test_delayed_entries_are_trimmed_like_sends(redis_server: RedisServer) -> None:
    topic = topic_name("delayed-trimmed")
    count = 300
    client = redis.Redis.from_url(redis_server.url)

    async def scenario() -> None:
        transport = RedisTransport(url_of(redis_server, "maxlen=10"))
        await transport.start()
        try:
            for n in range(count):
                await transport.send_delayed(topic, b"%d" % n, None, [], 1)
            await wait_until(lambda: client.exists(delayed_key(topic)) == 0, "every move")
            stored = await transport.read_topic(topic)
            assert 10 <= len(stored) < count
            assert stored[-1].value == b"%d" % (count - 1)
        finally:
            await transport.stop()
            client.close()

    run(scenario())


def test_foreign_members_and_broken_topics_do_not_hold_up_delayed_entries(
    redis_server: RedisServer,
) -> None:
    topic, broken = topic_name("foreign-delayed"), topic_name("not-a-stream")
    client = redis.Redis.from_url(redis_server.url)

    async def scenario() -> None:
        # Written by another program: not shoal's layout, so it cannot block the set.
        client.zadd(delayed_key(topic), {b"not shoal's": 0})
        client.zadd(TOPICS_KEY, {topic: 0})
        # A topic whose key is a string: XADD fails there, first in due order, every pass.
        client.set(broken, b"x")
        client.zadd(delayed_key(broken), {b"0000000000000000": 0})
        client.zadd(TOPICS_KEY, {broken: 0})
        transport = RedisTransport(url_of(redis_server))
        await transport.start()
        try:
            await transport.send_delayed(topic, b"mine", None, [], 1)
            await wait_until(lambda: client.xlen(topic) == 2, "both entries of the topic")
            foreign, mine = await transport.read_topic(topic)
            assert foreign.value == b""
            assert without_delivery_headers(foreign) == [("shoal.delayed-member", b"not shoal's")]
            assert mine.value == b"mine"
            # The broken topic's entry waits, untouched, for its key to be fixed.
            assert client.zcard(delayed_key(broken)) == 1
        finally:
            await transport.stop()
            client.delete(broken, delayed_key(broken))
            client.zrem(TOPICS_KEY, broken)
            client.close()

    run(scenario())
