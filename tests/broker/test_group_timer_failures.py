"""A group coordinator timer step that raises every time neither spins nor floods the log.

The timer catches the exception (a bug must not stop every group's timers), but a failing
step leaves its deadline in the past, so the timer used to retry at once, forever, logging a
traceback each time.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from shoal.broker import groups as groups_module
from shoal.broker.broker import Broker
from shoal.broker.broker_settings import BrokerSettings
from shoal.broker.handlers import HANDLERS
from shoal.storage import LogManager

WATCH_S = 0.25
"""How long the failing timer is watched: a spinning one retries hundreds of times in it."""
BACKOFF_S = 3600.0
"""The back-off for this test: far longer than the watch however slow the machine is, so a
second try within it means no back-off at all."""


def test_a_failing_timer_step_backs_off_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(groups_module, "TIMER_FAILURE_BACKOFF_S", BACKOFF_S)
    logs = LogManager.open(str(tmp_path))
    calls = 0

    def advance() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("a coordinator bug")

    async def scenario() -> None:
        broker = Broker(BrokerSettings(), logs, handlers=HANDLERS)
        groups = broker.groups
        groups._coordinator.advance = advance  # type: ignore[method-assign]
        # The deadline the failing step should have handled stays due.
        groups._coordinator.next_deadline_ms = lambda: 0  # type: ignore[method-assign]
        groups._kick()
        await asyncio.sleep(WATCH_S)
        await groups.stop()

    caplog.set_level(logging.ERROR, logger="shoal.broker.groups")
    try:
        asyncio.run(scenario())
    finally:
        logs.close()
    assert calls == 1, f"the timer retried a failing step {calls} times without backing off"
    failures = [r for r in caplog.records if "timer failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None
