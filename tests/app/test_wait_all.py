"""wait_all: the framework's wait for a batch of sends (processor outputs, a feed), in place of
asyncio.gather."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from shoal.app.transport import TransportError, wait_all


def test_waits_for_every_future_and_raises_the_first_failure() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = [loop.create_future() for _ in range(4)]
        waiting = asyncio.ensure_future(wait_all(futures))
        futures[3].set_result(None)
        futures[0].set_result(None)
        await asyncio.sleep(0)
        assert not waiting.done()  # 1 and 2 still pending
        futures[2].set_exception(TransportError("second failure"))
        futures[1].set_exception(TransportError("first failure"))
        with pytest.raises(TransportError, match="first failure"):
            await waiting

    asyncio.run(scenario())


def test_later_failures_are_retrieved_not_logged_as_never_retrieved() -> None:
    logged: list[dict[str, Any]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: logged.append(context))
        failed: asyncio.Future[None] = loop.create_future()
        later: asyncio.Future[None] = loop.create_future()
        failed.set_exception(TransportError("delivery failed"))
        with pytest.raises(TransportError):
            await wait_all([failed, later])
        later.set_exception(TransportError("it failed too, after the wait had ended"))
        await asyncio.sleep(0)  # its done callback runs
        del failed, later
        gc.collect()

    asyncio.run(scenario())
    assert not [c for c in logged if "never retrieved" in c.get("message", "")]


def test_nothing_to_wait_for() -> None:
    asyncio.run(wait_all([]))
