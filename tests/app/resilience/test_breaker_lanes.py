"""An open breaker with many key lanes waiting at once: the consumer stays paused until the last
lane stops waiting, so no record is fetched behind the lanes' backs and lost to the tracker."""

from __future__ import annotations

import asyncio
import random

from shoal import App, Breaker, Retry
from shoal.app.testing import TestApp
from shoal.testing.clock import FakeClock
from tests.app.transports.transport_suite import ManualSleep


def test_every_record_of_every_lane_is_handled_and_committed_across_an_outage() -> None:
    clock = FakeClock()
    handled: set[tuple[str, int]] = set()
    opened = asyncio.Event()
    down_until_ms = 20_000.0

    app = App(clock=clock, sleep=ManualSleep(clock), rng=random.Random(3))
    policy = Breaker(failures=3, open_s=5, trip_on=(ConnectionError,))

    @app.subscriber(
        "events", group="lanes", concurrency=8, retry=Retry(max_attempts=50), breaker=policy
    )
    async def handle(event: dict[str, object]) -> None:
        await asyncio.sleep(0.001)  # a call to the dependency: other lanes run meanwhile
        if clock.monotonic_ms() < down_until_ms:
            raise ConnectionError("downstream unavailable")
        handled.add((str(event["key"]), int(str(event["n"]))))

    async def scenario() -> None:
        async with TestApp(app) as t:
            state = app.breakers.get(policy, app.subscribers[0].name)
            state.on_change.append(lambda _old, new: opened.set() if new == "open" else None)
            for n in range(5):
                for k in range(8):
                    await t.publish("events", {"key": f"k{k}", "n": n}, key=f"k{k}")
            await asyncio.wait_for(opened.wait(), 10)
            # A second wave arrives while every lane waits for the breaker.
            for n in range(5, 10):
                for k in range(8):
                    await t.publish("events", {"key": f"k{k}", "n": n}, key=f"k{k}")
            while len(handled) < 80:
                clock.advance(250)
                await asyncio.sleep(0.002)
            await t.drain()
            assert t.dlq("events") == []

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert handled == {(f"k{k}", n) for k in range(8) for n in range(10)}
