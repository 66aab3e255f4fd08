"""A failed fsync whose waiter gave up is not reported as an orphaned exception.

The group and transaction services wait for a storage future shielded, so a waiter that gives
up (timeout, client gone) leaves it running; when the flusher then fails it (EIO), asyncio
used to log "Future exception was never retrieved" once the future was collected.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from shoal.broker.durable import awaitable_durable, settled_quietly
from shoal.storage import LogDirectoryFailedError


def _orphaned_reports(wrap: Callable[[Future[None]], asyncio.Future[Any]]) -> list[str]:
    """Messages the loop's exception handler got after a shielded waiter of ``wrap(storage)``
    was cancelled and the storage future then failed."""
    reports: list[str] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        def handler(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            reports.append(str(context.get("message")))

        loop.set_exception_handler(handler)
        storage: Future[None] = Future()
        waiter = asyncio.ensure_future(asyncio.shield(wrap(storage)))
        await asyncio.sleep(0)
        waiter.cancel()  # the client went away: the shielded future lives on
        await asyncio.sleep(0)
        storage.set_exception(LogDirectoryFailedError("fsync in /data/t-0 failed: EIO"))
        for _ in range(3):  # the failure crosses into the loop (call_soon_threadsafe)
            await asyncio.sleep(0)
        del storage, waiter
        gc.collect()

    asyncio.run(scenario())
    return reports


def test_a_plain_wrapped_future_is_reported_orphaned() -> None:
    # The control: without the helper the noise is there, so the test below can fail.
    assert any("never retrieved" in r for r in _orphaned_reports(asyncio.wrap_future))


def test_an_awaitable_durable_failure_is_not_reported_orphaned() -> None:
    assert _orphaned_reports(awaitable_durable) == []


def test_a_gather_of_durable_futures_is_settled_quietly() -> None:
    def gathered(storage: Future[None]) -> asyncio.Future[tuple[None]]:
        return settled_quietly(asyncio.gather(awaitable_durable(storage)))

    def gathered_loudly(storage: Future[None]) -> asyncio.Future[tuple[None]]:
        return asyncio.gather(awaitable_durable(storage))

    assert any("never retrieved" in r for r in _orphaned_reports(gathered_loudly))
    assert _orphaned_reports(gathered) == []
