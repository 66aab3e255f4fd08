"""The Redis transport's delay scheduler stops when asked, even woken in the same loop turn.

A send that schedules an entry due earlier than the scheduler's next pass wakes it; if the
transport's stop() cancels the scheduler in that same turn, ``asyncio.wait_for`` around the
wakeup returned normally on Python 3.11, swallowing the cancel, and the scheduler's ``while
True`` went on: the app's stop never returned (the bug fixed in the broker's group timer).
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from shoal.app.transports.redis_delay import DelayScheduler
from tests.peers.servers import RedisServer

pytestmark = [pytest.mark.integration]

STOP_TIMEOUT_S = 10.0
"""Far above what a stop takes (milliseconds); only a stop that never ends reaches it."""
PARK_WAIT_S = 10.0
"""Bound on waiting for the scheduler's first pass against the local server."""


def test_stop_in_the_turn_a_send_wakes_the_scheduler_ends_it(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        client = aioredis.from_url(redis_server.url)
        try:
            scheduler = DelayScheduler(client, None)
            scheduler.start()
            # The first pass sets the next wakeup and, with no await in between, parks on it
            # (for up to POLL_INTERVAL_MS_MAX: nothing is due on an empty server).
            deadline = time.monotonic() + PARK_WAIT_S
            while scheduler._wake_at_ms == 0.0:
                assert time.monotonic() < deadline, "the scheduler's first pass never ended"
                await asyncio.sleep(0)
            task = scheduler._task._task
            assert task is not None and not task.done()
            scheduler._wake.set()  # an earlier entry was scheduled, and in the same turn:
            stopping = asyncio.ensure_future(scheduler.stop())
            # asyncio.wait, not wait_for: it reports a stop that hangs instead of cancelling it.
            done, _ = await asyncio.wait([stopping], timeout=STOP_TIMEOUT_S)
            assert stopping in done, "stop() did not end: the scheduler ignored its cancel"
            assert task.done()
        finally:
            await client.aclose()

    asyncio.run(scenario())
