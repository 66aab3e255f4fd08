"""A blocking client call that the App may stop waiting for.

librdkafka's consumer close (leave the group) and its final synchronous commit retry the group
coordinator for as long as the session lasts, or longer, when the broker has gone away. Run on a
thread pool, such a call would hold the process at exit (the interpreter joins pool threads)
after the App's stop had already given up on it. Here the call gets a daemon thread of its own:
cancelling the awaiting task abandons the call, and the process can still exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def in_daemon_thread(call: Callable[[], T], name: str) -> T:
    """``call()`` on a new daemon thread named ``name``; cancelling the caller stops the wait
    (not the call, which no client library can interrupt)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle_result(result: T) -> None:
        if not future.done():  # the waiter was cancelled: nobody wants the result
            future.set_result(result)

    def settle_error(error: BaseException) -> None:
        if not future.done():
            future.set_exception(error)

    def run() -> None:
        try:
            result = call()
        except BaseException as error:
            # RuntimeError: the loop closed while the call ran (the process is exiting).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle_error, error)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle_result, result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return await future
