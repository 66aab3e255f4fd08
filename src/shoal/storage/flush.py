"""The flusher: one thread that fsyncs logs, so that concurrent appenders share fsyncs.

Group commit: while one fsync runs, every append that asks for durability queues behind it; the
next fsync covers all of them at once. With N appenders waiting, one fsync releases N appends,
which is how acks=all throughput scales past one fsync per append.

The thread also does the periodic duties of each log (INTERVAL flushes, recovery checkpoints),
only for logs that have something to do, so that idle partitions cost nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final, Protocol

from shoal.clock import Clock
from shoal.storage.errors import StorageError
from shoal.storage.stats import FlushStats

log = logging.getLogger(__name__)

TICK_MS: Final = 50
"""Period of the periodic duties; INTERVAL flush times are honoured to about this much."""


class Flushable(Protocol):
    """What the flusher asks of a log (a :class:`~shoal.storage.log.PartitionLog`).

    A Protocol rather than the log class itself: the log calls the flusher and the flusher
    calls the log, and naming the two methods here keeps that out of the import graph.
    """

    def flush(self) -> None:
        """fsync what was appended and release the appenders waiting for it."""

    def periodic(self, now_monotonic_ms: float) -> bool:
        """Do the log's due periodic work; True if some remains for a later tick."""


class Flusher:
    """With ``threaded=False`` no thread runs: nothing is fsynced until the owner calls
    :meth:`run_pending` (the deterministic simulation decides when the disk syncs)."""

    def __init__(self, clock: Clock, *, name: str = "shoal-flusher", threaded: bool = True) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._urgent: dict[int, Flushable] = {}
        """Logs with appenders waiting for durability: flushed as soon as possible."""
        self._dirty: dict[int, Flushable] = {}
        """Logs with periodic work pending (checkpoint due, INTERVAL flush due)."""
        self._stopping = False
        self.stats = FlushStats()
        """fsync durations and batches per fsync, written by the logs this thread flushes."""
        self._next_tick_ms = clock.monotonic_ms() + TICK_MS
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def register(self, plog: Flushable) -> None:
        self.mark_dirty(plog)

    def unregister(self, plog: Flushable) -> None:
        with self._cond:
            self._urgent.pop(id(plog), None)
            self._dirty.pop(id(plog), None)

    def request(self, plog: Flushable) -> None:
        """Flush ``plog`` as soon as the thread is free."""
        with self._cond:
            self._urgent[id(plog)] = plog
            self._cond.notify()

    def mark_dirty(self, plog: Flushable) -> None:
        with self._cond:
            self._dirty[id(plog)] = plog

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._urgent and not self._stopping:
                    timeout_ms = self._next_tick_ms - self._clock.monotonic_ms()
                    if timeout_ms <= 0:
                        break
                    self._cond.wait(timeout_ms / 1000.0)
                if self._stopping:
                    return
            self.run_pending()

    def run_pending(self) -> None:
        """One round: flush the logs with waiting appenders, then, if a tick is due, do the
        periodic duties. The thread's loop body; called directly when not ``threaded``."""
        with self._cond:
            urgent = list(self._urgent.values())
            self._urgent.clear()
            now = self._clock.monotonic_ms()
            periodic: list[Flushable] = []
            if now >= self._next_tick_ms:
                periodic = list(self._dirty.values())
                self._dirty.clear()
                self._next_tick_ms = now + TICK_MS
        for plog in urgent:
            self._guarded(plog.flush)
        for plog in periodic:
            if self._guarded(plog.periodic, now):
                self.mark_dirty(plog)
        for plog in urgent:
            self.mark_dirty(plog)  # its checkpoint may now be due

    @staticmethod
    def _guarded(work: Callable[..., object], *args: object) -> bool:
        """Run one log's work; a failing log must not stop the flusher for the others."""
        try:
            return bool(work(*args))
        except StorageError as exc:
            # The log already failed its waiters and marked its directory; nothing to retry.
            log.error("flush failed: %s", exc)
            return False
