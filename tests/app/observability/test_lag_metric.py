"""Consumer lag reaches the app's metrics, per group, topic and partition, and goes to 0."""

from __future__ import annotations

import asyncio

from shoal import App
from shoal.app.testing import TestApp


def lag_samples(app: App) -> dict[tuple[str, str, str], float]:
    out = {}
    for family in app.metrics.families():
        if family.name == "shoal_consumer_lag":
            for s in family.samples:
                out[(s.labels["group"], s.labels["topic"], s.labels["partition"])] = s.value
    return out


async def lag_becomes(app: App, value: int) -> None:
    while lag_samples(app).get(("workers", "work", "0")) != value:  # noqa: ASYNC110 - polled
        await asyncio.sleep(0.01)


def test_lag_is_reported_while_records_wait_and_drops_to_zero() -> None:
    app = App(lag_interval_s=0.01)
    gate = asyncio.Event()

    @app.subscriber("work", group="workers")
    async def work(n: int) -> None:
        await gate.wait()

    async def scenario() -> None:
        async with TestApp(app) as t:
            for n in range(5):
                await t.publish("work", n)
            # The first record is held by the handler; all five are uncommitted.
            await lag_becomes(app, 5)
            gate.set()
            await t.drain()
            await lag_becomes(app, 0)

    asyncio.run(asyncio.wait_for(scenario(), 30))
