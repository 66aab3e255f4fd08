"""The flusher: a few threads that fsync logs, so that concurrent appenders share fsyncs.

Group commit: while one fsync of a log runs, every append to that log that asks for durability
queues behind it; the next fsync covers all of them at once. With N appenders waiting, one fsync
releases N appends, which is how acks=all throughput scales past one fsync per append.

Different logs are fsynced in parallel, by up to ``threads`` worker threads (started as work
needs them, never more than :data:`FLUSH_THREADS` by default). One log is flushed by one worker
at a time (a log asked for again while it is being flushed waits in the queue, and the next
flush covers what came meanwhile), and the queue is served in the order the logs asked, so a
log waits behind at most the work queued before it. A disk commits overlapped fsyncs of
different files together: a transaction's markers on 8 partitions cost about one fsync's time
instead of eight, and a slow fsync of one file (a large segment being written back) no longer
delays the acknowledgements of the others.

Each log's flush fails only that log's waiters (and marks the directory failed, which refuses
every later write): a failed fsync of one file never fails another file's appends, whose own
fsync may have succeeded meanwhile.

The workers also do the periodic duties of each log (INTERVAL flushes, recovery checkpoints),
only for logs that have something to do, so that idle partitions cost nothing. A ticker thread
keeps their time: every :data:`TICK_MS` while some log has a duty pending it queues those logs'
duties and wakes (or starts) workers for them, and it never fsyncs anything itself, so a slow
fsync of one log holds up that log's duties and one worker, never the ticks of the others. A
duty waits only while every one of the ``threads`` workers is busy. With no duty pending the
ticker sleeps until a log has one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from shoal.clock import Clock
from shoal.invariant import invariant
from shoal.storage.errors import StorageError
from shoal.storage.stats import FlushStats

log = logging.getLogger(__name__)

TICK_MS: Final = 50
"""Period of the periodic duties; INTERVAL flush times are honoured to about this much."""

FLUSH_THREADS: Final = 8
"""Logs fsynced at once. 8 overlapped fsyncs took 0.59 ms on the development VM's disk where
8 in a row took 1.02 ms; more threads than the disk has queues only wait in the kernel."""


RoundChoice = Callable[[int], Sequence[int]]
"""Which logs' work finishes in a round of :meth:`Flusher.run_pending`: given how many logs
have work (in the order they asked, those with waiting appenders first), the positions of the
ones that finish now, in the order they finish; the others stay queued for a later round.
Production's workers finish any subset of the logs in flight in any order; the deterministic
simulation chooses one from its seed."""


class Flushable(Protocol):
    """What the flusher asks of a log (a :class:`~shoal.storage.log.PartitionLog`).

    A Protocol rather than the log class itself: the log calls the flusher and the flusher
    calls the log, and naming the two methods here keeps that out of the import graph.
    """

    def flush(self) -> None:
        """fsync what was appended and release the appenders waiting for it."""

    def periodic(self, now_monotonic_ms: float) -> bool:
        """Do the log's due periodic work; True if some remains for a later tick."""

    def fail_after_bug(self, exc: Exception) -> None:
        """A bug broke off the log's flush: fail it, and answer its waiting appenders."""


@dataclass(slots=True)
class _Job:
    """What one log is queued for: a flush (appenders wait), its periodic duties, or both."""

    plog: Flushable
    flush: bool
    periodic: bool


class Flusher:
    """With ``threaded=False`` no thread runs: nothing is fsynced until the owner calls
    :meth:`run_pending` (the deterministic simulation decides when the disk syncs)."""

    def __init__(
        self,
        clock: Clock,
        *,
        name: str = "shoal-flusher",
        threaded: bool = True,
        threads: int = FLUSH_THREADS,
    ) -> None:
        invariant(threads >= 1, "the flusher needs at least one thread")
        self._clock = clock
        self._name = name
        self._max_threads = threads
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        """Workers wait on it for queued work."""
        self._tick_cond = threading.Condition(lock)
        """The ticker waits on it for the next tick, or for a log with a duty pending."""
        self._queue: dict[int, _Job] = {}
        """Logs with work to do, in the order they asked (a dict keeps insertion order)."""
        self._busy: set[int] = set()
        """Logs a worker is working on now: not taken again until it is done."""
        self._registered: dict[int, Flushable] = {}
        self._dirty: dict[int, Flushable] = {}
        """Logs with periodic work pending (checkpoint due, INTERVAL flush due): queued by the
        next tick."""
        self._stopping = False
        self.stats = FlushStats()
        """fsync durations and batches per fsync, written by the logs this flusher flushes."""
        self._next_tick_ms = clock.monotonic_ms() + TICK_MS
        self._threaded = threaded
        self._threads: list[threading.Thread] = []
        """The workers, started as work needs them."""
        self._idle = 0
        """Workers waiting for work (a request wakes one, or starts one if none is idle)."""
        self._ticker: threading.Thread | None = None
        if threaded:
            self._ticker = threading.Thread(
                target=self._keep_ticks, name=f"{name}-ticker", daemon=True
            )
            self._ticker.start()

    def register(self, plog: Flushable) -> None:
        with self._cond:
            self._registered[id(plog)] = plog
        self.mark_dirty(plog)

    def unregister(self, plog: Flushable) -> None:
        with self._cond:
            self._registered.pop(id(plog), None)
            self._queue.pop(id(plog), None)
            self._dirty.pop(id(plog), None)

    def request(self, plog: Flushable) -> None:
        """Flush ``plog`` as soon as a worker is free."""
        with self._cond:
            job = self._queue.get(id(plog))
            if job is None:
                self._queue[id(plog)] = _Job(plog, flush=True, periodic=False)
            else:
                job.flush = True
            self._wake_locked()

    def mark_dirty(self, plog: Flushable) -> None:
        with self._cond:
            if id(plog) in self._registered:
                if not self._dirty:
                    self._tick_cond.notify()  # the ticker sleeps while no duty is pending
                self._dirty[id(plog)] = plog

    def stop(self) -> None:
        """Stop the workers once the work they are doing is done (queued work is dropped:
        the owner flushes its logs itself when it closes them)."""
        with self._cond:
            self._stopping = True  # no worker is started after this
            self._cond.notify_all()
            self._tick_cond.notify_all()
            threads = list(self._threads)
        if self._ticker is not None:
            self._ticker.join()
        for thread in threads:
            thread.join()

    # -- the workers ----------------------------------------------------------------------

    def _start_worker(self) -> None:
        thread = threading.Thread(
            target=self._work,
            name=f"{self._name}-{len(self._threads)}",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()

    def _wake_locked(self, jobs: int = 1) -> None:
        """Someone must take the ``jobs`` queued: idle workers, or a new one while the pool
        is not full (work waiting beyond the idle workers means every started one is busy)."""
        waiting = len(self._queue) - sum(1 for i in self._busy if i in self._queue)
        if not waiting:
            return  # the log is being flushed: its worker takes it again when done
        if (
            self._threaded
            and not self._stopping
            and waiting > self._idle
            and len(self._threads) < self._max_threads
        ):
            self._start_worker()
        self._cond.notify(jobs)

    def _keep_ticks(self) -> None:
        """The ticker's loop: queue the pending duties every tick while some are pending. It
        never runs a job, so no fsync, however slow, delays a tick."""
        with self._cond:
            while not self._stopping:
                if not self._dirty:
                    self._tick_cond.wait()  # until a log has a duty (or the stop)
                    continue
                wait_ms = self._next_tick_ms - self._clock.monotonic_ms()
                if wait_ms > 0:
                    self._tick_cond.wait(wait_ms / 1000)
                    continue
                self._tick_locked()

    def _work(self) -> None:
        """A worker's loop: take the first queued log no other worker has, do its job."""
        while True:
            with self._cond:
                job = self._take_locked()
                while job is None:
                    if self._stopping:
                        return
                    self._idle += 1
                    try:
                        self._cond.wait()
                    finally:
                        self._idle -= 1
                    job = self._take_locked()
                if self._stopping:
                    self._busy.discard(id(job.plog))
                    return
            try:
                self._run(job)
            except Exception as exc:
                # A bug: said loudly, and the worker goes on serving the other logs (without
                # threads it is raised to the owner, where the simulation finds it). The log's
                # state is unknown, so its directory fails and its waiting appends are answered
                # with that failure; they must not wait for a flush nobody will ask for.
                log.exception("flush of %r failed unexpectedly", job.plog)
                job.plog.fail_after_bug(exc)

    def _take_locked(self) -> _Job | None:
        for key, job in self._queue.items():
            if key not in self._busy:
                del self._queue[key]
                self._busy.add(key)
                return job
        return None

    def _tick_locked(self) -> None:
        """Queue the periodic duties if a tick is due, and wake workers for them."""
        now = self._clock.monotonic_ms()
        if now < self._next_tick_ms:
            return
        self._next_tick_ms = now + TICK_MS
        for key, plog in self._dirty.items():
            job = self._queue.get(key)
            if job is None:
                self._queue[key] = _Job(plog, flush=False, periodic=True)
            else:
                job.periodic = True
        if self._dirty:
            self._wake_locked(len(self._dirty))
            self._dirty.clear()

    def _run(self, job: _Job) -> None:
        """Flush the log if asked, then its periodic duties if due, and let the log be taken
        again; a failing log must not stop the workers for the others."""
        plog = job.plog
        more = False
        try:
            if job.flush:
                plog.flush()
                more = True  # its checkpoint may now be due
            if job.periodic:
                more = plog.periodic(self._clock.monotonic_ms()) or more
        except StorageError as exc:
            # The log already failed its waiters and marked its directory; nothing to retry.
            log.error("flush failed: %s", exc)
            more = False
        finally:
            with self._cond:
                # Asked again while this ran: still queued, taken by a worker's next turn.
                self._busy.discard(id(plog))
        if more:
            self.mark_dirty(plog)

    # -- without threads ------------------------------------------------------------------

    def run_pending(self, choose: RoundChoice | None = None) -> None:
        """One round on the caller's thread: flush the logs with waiting appenders, then, if
        a tick is due, do the periodic duties, one log after another in the order they
        asked, or only the logs ``choose`` picks in its order (when not ``threaded``, the
        simulation's seam)."""
        with self._cond:
            self._tick_locked()
            jobs = [job for key, job in self._queue.items() if key not in self._busy]
        jobs.sort(key=lambda job: not job.flush)  # waiting appenders first
        if choose is not None and jobs:
            picked = list(choose(len(jobs)))
            invariant(
                len(set(picked)) == len(picked) and all(0 <= i < len(jobs) for i in picked),
                f"a round's choice must name distinct logs of the {len(jobs)}: {picked}",
            )
            jobs = [jobs[i] for i in picked]
        with self._cond:
            # Still queued as they were (a job taken meanwhile, or dropped, is not run here).
            jobs = [job for job in jobs if self._queue.get(id(job.plog)) is job]
            for job in jobs:
                del self._queue[id(job.plog)]
                self._busy.add(id(job.plog))
        for done, job in enumerate(jobs):
            try:
                self._run(job)
            except BaseException:
                with self._cond:  # the logs not reached wait for the next round
                    for rest in jobs[done + 1 :]:
                        self._busy.discard(id(rest.plog))
                        queued = self._queue.setdefault(id(rest.plog), rest)
                        queued.flush |= rest.flush
                        queued.periodic |= rest.periodic
                raise
