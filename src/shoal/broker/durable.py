"""Awaiting an fsync from the event loop without leaving its failure orphaned.

The group and transaction services wait for a storage future (the fsync of what they logged)
bounded and shielded: a timeout or a client gone away must not cancel the future the flusher
thread completes. When that waiter has given up, the shielded future fails later (EIO on
fsync) with nobody awaiting it, and asyncio logs "Future exception was never retrieved" when it
is collected: noise that buries a real unhandled exception. The waiter that gave up has
already answered the client and logged why, so the futures made here mark their failure
retrieved as soon as they complete.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


def awaitable_durable(future: Future[T]) -> asyncio.Future[T]:
    """The storage future as an asyncio future whose failure is never reported orphaned."""
    return settled_quietly(asyncio.wrap_future(future))


def settled_quietly(future: asyncio.Future[T]) -> asyncio.Future[T]:
    """``future`` itself, its exception marked retrieved when it completes (for a gather of
    durable futures, which a timed-out waiter also leaves behind)."""
    future.add_done_callback(_retrieve)
    return future


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
