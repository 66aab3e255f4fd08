"""Reused buffers for the page-cache reads of Fetch (:meth:`OsFile.pread_cached`).

A new ``bytearray(size)`` per read costs more than the read: CPython zero-fills it, and a
buffer of a megabyte or more is fresh memory from the kernel, faulted in page by page (a TLS
consume profile spent 7.8 % of the broker's time there; plaintext pays it too). The records
read then leave as the buffer itself (``shoal.server.gather_write``), and may stay in the
transport's hands after the write returns: uvloop and asyncio's TLS layer keep a reference to
what they have not sent or encrypted yet, and a response waits in the connection's queue
until the client reads. So a buffer is handed out again only when nothing but the pool refers
to it, which CPython's reference count tells exactly: a transport, a memoryview (a slice of
one too) or a queued response frame each holds a reference, and one that holds no reference
can no longer reach the bytes.

Limits: reads smaller than :data:`POOLED_BYTES_MIN` are not pooled (a small allocation comes
from the allocator's free lists, not from the kernel); nor are reads larger than
:data:`POOLED_BYTES_MAX` (a consumer asking for huge partitions should not make every broker
keep that much); and the pool keeps at most :data:`POOLED_BUFFERS_MAX` buffers, so it holds at
most their product in memory. When every pooled buffer is in use, a read gets a new
``bytearray`` as before.

What count means "only the pool" depends on the interpreter (CPython 3.14 stopped counting
some local variables' references, gh-130704; PyPy has no counts at all): the pool measures it
at import, the same way :meth:`ReadBuffers.take` does, on a free buffer and on one a view
holds, and turns itself off (every read allocates, as before the pool) unless the two differ
as they must. A free buffer is reused only for a read of at least half its capacity and at
most its capacity, so CPython neither frees its memory (a shrink below half reallocates) nor
copies it to grow; other sizes allocate.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Final

POOLED_BYTES_MIN: Final = 64 * 1024
"""Below this a read allocates: small allocations are cheap and not zero-filled by the kernel."""
POOLED_BYTES_MAX: Final = 8 * 1024 * 1024
"""Above this a read allocates; 8 MiB covers librdkafka's and Kafka's partition fetch sizes."""
POOLED_BUFFERS_MAX: Final = 8
"""Buffers kept: enough for the Fetch responses of a few connections in flight at once."""


def _counted(buffers: list[bytearray]) -> Iterator[tuple[bytearray, int]]:
    """Each buffer with its reference count, always taken by this one code path, so that the
    count of a buffer only ``buffers`` holds is what :func:`_pool_only_count` measured."""
    for buffer in buffers:
        yield buffer, sys.getrefcount(buffer)


def _pool_only_count() -> int | None:
    """The count :func:`_counted` gives a buffer nothing but its list refers to, on this
    interpreter; None where counts cannot tell a free buffer from a held one (no pool)."""
    if not hasattr(sys, "getrefcount"):
        return None
    free = [bytearray(1)]
    held = [bytearray(1)]
    view = memoryview(held[0])  # a holder, as a transport's unsent slice is
    ((_, free_count),) = _counted(free)
    ((_, held_count),) = _counted(held)
    view.release()
    return free_count if held_count > free_count else None


_POOL_ONLY: Final = _pool_only_count()


class ReadBuffers:
    """bytearrays of a requested size, each reused only once nothing else refers to it."""

    def __init__(
        self,
        buffers_max: int = POOLED_BUFFERS_MAX,
        bytes_min: int = POOLED_BYTES_MIN,
        bytes_max: int = POOLED_BYTES_MAX,
        only_pool_count: int | None = _POOL_ONLY,
    ) -> None:
        self._buffers: list[bytearray] = []
        self._buffers_max = buffers_max
        self._bytes_min = bytes_min
        self._bytes_max = bytes_max
        # Reads run on the event loop and on worker threads: one at a time takes a buffer.
        self._lock = threading.Lock()
        self._only = only_pool_count
        """The count of a buffer only the pool holds (:func:`_pool_only_count`); None: no pool."""

    def take(self, size: int) -> bytearray:
        """A bytearray of exactly ``size`` bytes, its content undefined (the caller fills it)."""
        if self._only is None or not self._bytes_min <= size <= self._bytes_max:
            return bytearray(size)
        with self._lock:
            for buffer, count in _counted(self._buffers):
                if count == self._only and size <= _capacity(buffer) < 2 * size:
                    _resize(buffer, size)
                    return buffer
            buffer = bytearray(size)
            if len(self._buffers) < self._buffers_max:
                self._buffers.append(buffer)
            return buffer

    @property
    def pooled(self) -> int:
        """Buffers the pool keeps (in use or not)."""
        return len(self._buffers)


def _capacity(buffer: bytearray) -> int:
    """Bytes ``buffer`` can hold without reallocating (its allocation keeps one for a NUL)."""
    return buffer.__alloc__() - 1


def _resize(buffer: bytearray, size: int) -> None:
    """Make ``buffer`` ``size`` bytes long inside its capacity (``take`` asks only that):
    CPython keeps the memory for a shrink to half or more, and a growth within the capacity
    zero-fills only the bytes added, copying nothing."""
    if len(buffer) > size:
        del buffer[size:]
    elif len(buffer) < size:
        buffer.extend(bytes(size - len(buffer)))


READ_BUFFERS: Final = ReadBuffers()
"""The process's pool, shared by every file's cached reads."""
