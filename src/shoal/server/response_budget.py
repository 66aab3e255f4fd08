"""Bounds on the response bytes a broker holds for clients that have not read them yet.

A response is counted from the moment it is encoded until the socket's transport has taken it
below its high-water mark (the kernel and a small user-space buffer hold the rest). A client
that never reads keeps its responses counted, and the connection's next request waits in
:meth:`ConnectionBudget.wait_for_room` instead of building another one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ResponseLimits:
    per_connection_bytes: int
    """Unsent response bytes one connection may hold before its next request waits."""
    total_bytes: int
    """Unsent response bytes all connections may hold before a connection that holds any
    waits; one that holds none may always start one request, so a client that reads its
    responses is served even while others hoard memory."""


class ResponseBudget:
    """The broker-wide count, shared by every connection's :class:`ConnectionBudget`."""

    def __init__(self, limits: ResponseLimits) -> None:
        self.limits = limits
        self.unsent_bytes = 0
        self._freed = asyncio.Event()

    def connection(self) -> ConnectionBudget:
        return ConnectionBudget(self)

    def _add(self, size: int) -> None:
        self.unsent_bytes += size

    def _remove(self, size: int) -> None:
        self.unsent_bytes -= size
        # Wake every waiter: each checks its own connection's count again. Waiters are the
        # connections of clients that pipeline past the bounds, so there are few.
        self._freed.set()
        self._freed = asyncio.Event()

    async def _wait_freed(self) -> None:
        await self._freed.wait()


class ConnectionBudget:
    """One connection's unsent response bytes, counted in the broker-wide budget too."""

    def __init__(self, budget: ResponseBudget) -> None:
        self._budget = budget
        self.unsent_bytes = 0
        self._closed = False

    def has_room(self) -> bool:
        if self.unsent_bytes == 0:
            return True
        limits = self._budget.limits
        return (
            self.unsent_bytes < limits.per_connection_bytes
            and self._budget.unsent_bytes < limits.total_bytes
        )

    def room(self) -> int:
        """Response bytes this connection may still add before it goes over a bound (>= 0)."""
        limits = self._budget.limits
        own = limits.per_connection_bytes - self.unsent_bytes
        total = limits.total_bytes - self._budget.unsent_bytes
        return max(0, min(own, total))

    async def wait_for_room(self) -> None:
        while not self.has_room():
            await self._budget._wait_freed()

    def produced(self, size: int) -> None:
        """A response of ``size`` bytes was built and waits to be sent."""
        if self._closed:
            return
        self.unsent_bytes += size
        self._budget._add(size)

    def sent(self, size: int) -> None:
        """A response the transport has taken (or that will never be sent)."""
        if self._closed:
            return
        self.unsent_bytes -= size
        self._budget._remove(size)

    def close(self) -> None:
        """The connection is gone: whatever it still held is freed, and nothing more counts."""
        if self._closed:
            return
        held, self.unsent_bytes = self.unsent_bytes, 0
        self._closed = True
        self._budget._remove(held)
