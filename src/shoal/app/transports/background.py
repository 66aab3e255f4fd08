"""A task a transport object runs while it is open: a consumer's keep-alive (Redis's idle
time, JetStream's ack wait), the Redis transport's delayed-entry scheduler."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

CANCEL_REPEAT_S = 0.1
"""How often stop() cancels again a task that is still running: a client library can swallow a
cancel that races a reply (redis-py does; so does ``asyncio.wait_for`` on Python 3.11), and a
``while True`` task would then run on and stop() never return."""


class BackgroundTask:
    """Started once (a second start is a no-op); stopping cancels the task (again, until it
    ends) and waits for it."""

    def __init__(self, run: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        self._run = run
        self._name = name
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=CANCEL_REPEAT_S)
            with contextlib.suppress(asyncio.CancelledError):
                await task


def keep_alive(
    refresh: Callable[[], Awaitable[None]], interval_s: float, name: str
) -> BackgroundTask:
    """A task that runs ``refresh`` every ``interval_s``, so the server does not hand a delivery
    to another member while a slow handler (with its retries) still works on it. ``refresh``
    handles its own errors: a missed refresh only risks a redelivery, and fetch reports lasting
    failures."""

    async def run() -> None:
        while True:
            await asyncio.sleep(interval_s)
            await refresh()

    return BackgroundTask(run, name)
