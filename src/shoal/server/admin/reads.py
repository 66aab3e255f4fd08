"""The admin API's own small thread pool for blocking disk reads (browse, export, lag, disk
usage): a few users paging a large topic must not take asyncio's default executor, which the
broker's cold Fetch reads use."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, ParamSpec, TypeVar

ADMIN_READ_THREADS: Final = 2
"""Worker threads for admin reads: enough for a page while an export streams."""

P = ParamSpec("P")
T = TypeVar("T")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool  # one pool per process, made on first use
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(ADMIN_READ_THREADS, thread_name_prefix="shoal-admin-read")
        return _pool


async def admin_read(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` on the admin read pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), functools.partial(fn, *args, **kwargs))
