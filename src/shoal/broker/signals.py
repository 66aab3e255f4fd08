"""Append notifications, so a Fetch waiting for data wakes the moment a producer appends."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class AppendSignals:
    """Per-partition sets of futures that complete on the next append to that partition."""

    def __init__(self) -> None:
        self._waiters: dict[tuple[str, int], set[asyncio.Future[None]]] = {}
        self._notices: dict[tuple[str, int], int] = {}
        """How many times each partition was notified: a waiter that looked at a partition
        across an await compares it to know whether it missed a notice (see :meth:`notices`)."""

    def notify(self, topic: str, partition: int) -> None:
        key = (topic, partition)
        self._notices[key] = self._notices.get(key, 0) + 1
        waiters = self._waiters.pop(key, None)
        if waiters:
            for future in waiters:
                if not future.done():
                    future.set_result(None)

    def notices(self, partitions: Iterable[tuple[str, int]]) -> int:
        """The notices these partitions have had so far. A fetch that found nothing after a
        pass with awaits in it (a read off the loop) compares this with the count from before
        the pass: a notice in between woke nobody (it was not parked yet), so it looks again
        instead of parking until a later one."""
        return sum(self._notices.get(key, 0) for key in partitions)

    def waiting(self, topic: str, partition: int) -> int:
        """How many waits (parked Fetches and ShareFetches) the next append to the partition
        would wake: what a test watches to know a fetch is parked."""
        return len(self._waiters.get((topic, partition), ()))

    async def wait_any(self, partitions: Iterable[tuple[str, int]], timeout_s: float) -> None:
        """Return after the first append to any of ``partitions``, or after ``timeout_s``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        keys = list(partitions)
        for key in keys:
            self._waiters.setdefault(key, set()).add(future)
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallowed a cancel that
            # came in the turn an append woke this wait (see the group timer's fix).
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(future)
        except TimeoutError:
            pass
        finally:
            for key in keys:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(future)
                    if not waiters:
                        del self._waiters[key]
