"""The transaction timer stops even when its cancellation is lost.

On Python 3.11, ``asyncio.wait_for`` returns the awaited result instead of raising when a cancel
arrives in the loop iteration that completes it, so ``task.cancel()`` alone could leave a timer
looping and ``stop()`` waiting for it forever: a clean shutdown that never ended, found by the
deterministic simulation (tests/simulation). The test makes that iteration happen on purpose;
a generous bound turns a hang into a failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Final

from shoal.broker.broker import Broker
from shoal.broker.broker_settings import BrokerSettings
from shoal.broker.handlers import HANDLERS
from shoal.storage import LogManager

STOP_BOUND_S: Final = 10.0
"""Far more than a stop takes; reaching it means the timer never ended."""


async def stops(stop: Coroutine[Any, Any, None]) -> None:
    """Runs ``stop`` and fails if it has not returned after a generous bound (a hang). Not
    wait_for: its timeout would cancel stop(), and that second cancel ends the timer."""
    task = asyncio.ensure_future(stop)
    done, _pending = await asyncio.wait({task}, timeout=STOP_BOUND_S)
    if task not in done:
        task.cancel()
        raise AssertionError("stop() did not return: the timer lost its cancellation")


def run_with_broker(tmp_path: Path, scenario: object) -> None:
    logs = LogManager.open(str(tmp_path / "data"))
    try:
        broker = Broker(BrokerSettings(), logs, handlers=HANDLERS)
        asyncio.run(scenario(broker))  # type: ignore[operator]
    finally:
        logs.close()


def test_the_transaction_timer_stops_when_a_cancel_meets_a_completed_wait(
    tmp_path: Path,
) -> None:
    async def scenario(broker: Broker) -> None:
        service = broker.transactions
        loop = asyncio.get_running_loop()
        gate: asyncio.Future[None] = loop.create_future()
        ticks = 0

        async def tick() -> None:  # stands for a tick waiting for its fsync
            nonlocal ticks
            ticks += 1
            if ticks == 1:
                await asyncio.wait_for(gate, 30)

        service.tick = tick  # type: ignore[method-assign]
        service.start()
        for _ in range(3):
            await asyncio.sleep(0)  # the timer is now inside wait_for
        timers = asyncio.all_tasks() - {asyncio.current_task()}
        gate.set_result(None)  # the wait completes ...
        await stops(service.stop())  # ... as the cancel arrives
        assert timers and all(t.done() for t in timers)

    run_with_broker(tmp_path, scenario)
