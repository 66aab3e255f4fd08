"""The group coordinator's timer task stops when asked, whatever it was doing (issue 21).

A request kicks the timer (sets its wakeup) and the broker's stop() cancels it in the same
loop turn: on Python 3.11, ``asyncio.wait_for`` around the wakeup returned normally in that
case, swallowing the cancel, and ``shoal broker`` never exited after SIGTERM.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from shoal.broker.broker import Broker
from shoal.broker.broker_settings import BrokerSettings
from shoal.broker.handlers import HANDLERS
from shoal.storage import LogManager

STOP_TIMEOUT_S = 10.0
"""Far above what a stop takes (milliseconds); only a stop that never ends reaches it."""


def test_stop_right_after_a_kick_ends_the_timer(tmp_path: Path) -> None:
    logs = LogManager.open(str(tmp_path))

    async def scenario() -> None:
        broker = Broker(BrokerSettings(), logs, handlers=HANDLERS)
        groups = broker.groups
        groups._kick()  # a request starts the timer...
        await asyncio.sleep(0.05)  # ...which parks, waiting for its wakeup or deadline
        timer = groups._task
        assert timer is not None and not timer.done()
        groups._kick()  # another request sets the wakeup, and in the same turn:
        stopping = asyncio.ensure_future(groups.stop())
        # asyncio.wait, not wait_for: it reports a stop that hangs instead of cancelling it.
        done, _ = await asyncio.wait([stopping], timeout=STOP_TIMEOUT_S)
        assert stopping in done, "stop() did not end: the timer task ignored its cancel"
        assert timer.done()

    try:
        asyncio.run(scenario())
    finally:
        logs.close()
