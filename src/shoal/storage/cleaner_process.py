"""The log cleaner's own process: a clean's record work off the broker's interpreter.

Why a process: a clean decodes and rebuilds every record of the dirty log in Python. On a
thread of the broker's process it held the interpreter's lock (the GIL) most of the time, and
every thread that gave the lock up for a system call, the event loop after each ``write`` and
``epoll_wait``, a flusher after each ``fsync``, then waited up to the switch interval (5 ms) to
get it back. A py-spy profile of the broker while it cleaned a 35 MB log showed the event loop
waiting for the GIL in half of its samples (``take_gil`` under ``os_pwritev``, ``os_writev``,
lock acquisitions), against a sixth while idle, and an acks=all producer paced at 1,000
records/s to another topic saw its latency climb from milliseconds to seconds: the loop fell
behind and the requests queued. A second process has its own interpreter, so the broker's
threads never wait for the cleaner's.

The division of work keeps the crash-safety protocol of :mod:`shoal.storage.swap` where it was:

- the broker's cleaner thread plans the clean (:func:`~shoal.storage.cleaner.plan_clean`: batch
  headers only) and sends it here as a :class:`CleanJob`;
- this process maps the dirty part and rewrites each group of segments into ``.cleaned`` files
  (fsynced, indexes saved), then asks the thread to swap the group in and waits for its answer
  (``("swap", base, old bases)`` -> ``True``/``False``): the manifest, renames and the in-memory
  swap happen in the broker's process, under the log's locks, exactly as on the thread;
- it reports its progress (``("progress", stats)``: what it read and wrote since the last report)
  before each swap and every :data:`PROGRESS_BYTES` read or written, so that the cleaner's
  metrics move during a long clean, not only at its end;
- stopping kills this process: it never renames or writes a manifest, so all it can leave is
  ``.cleaned`` files, which the thread removes (and recovery would, after a crash).

This process dies with the thread that started it (Linux ``PR_SET_PDEATHSIG``; elsewhere at
its next step once its parent is gone), and when the pipe to it closes.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, fields
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Final

from shoal.clock import Clock, SystemClock
from shoal.storage.cleaner import (
    CleanAborted,
    CleanContext,
    CleanPlan,
    CleanStats,
    ProducerLast,
    execute_clean,
)
from shoal.storage.cleaner_txn import LogTransactions
from shoal.storage.errors import StorageError
from shoal.storage.fs import FileSystem, OsFileSystem
from shoal.storage.handles import FileHandles
from shoal.storage.log import PartitionLog
from shoal.storage.offset_map import OffsetMap
from shoal.storage.segment import Segment
from shoal.storage.swap import CLEANED_SUFFIX, discard_cleaned

log = logging.getLogger(__name__)

THROTTLE_CHECK_MS: Final = 300
"""How often the throttle measures the rate (Kafka's Throttler checks every 300 ms)."""
POLL_S: Final = 0.05
"""How often the waiting thread looks at its stop flag while the process works."""
MAX_OPEN_FILES: Final = 64
"""The process reads a group's segments one at a time: a few open files suffice."""
PROGRESS_BYTES: Final = 8 * 1024 * 1024
"""Bytes read or written between two progress reports: a message a few hundred milliseconds
apart at the process's cleaning rate, so the metrics move without the pipe getting busy."""
_PR_SET_PDEATHSIG: Final = 1
_ENTRY: Final = (
    "import sys; from shoal.storage.cleaner_process import main; sys.exit(main(sys.argv[1:]))"
)
"""The process's program: ``-m`` would run this module a second time, as ``__main__``, beside
the copy the package imports, and the jobs it receives would be of the other copy's class."""


class CleanerProcessError(RuntimeError):
    """The cleaner's process died or broke its protocol (a bug, or the process was killed
    from outside): the clean is retried after the back-off."""


class Throttler:
    """Sleeps so that the bytes reported stay at about ``bytes_per_second``."""

    def __init__(
        self,
        bytes_per_second: float,
        clock: Clock,
        sleep: Callable[[float], object],
    ) -> None:
        self._rate = bytes_per_second
        self._clock = clock
        self._sleep = sleep
        self._period_start_ms = clock.monotonic_ms()
        self._bytes = 0

    def __call__(self, size: int) -> None:
        if math.isinf(self._rate):
            return
        self._bytes += size
        elapsed_ms = self._clock.monotonic_ms() - self._period_start_ms
        if elapsed_ms < THROTTLE_CHECK_MS and self._bytes < self._rate * THROTTLE_CHECK_MS / 1000:
            return
        due_ms = self._bytes / self._rate * 1000
        if due_ms > elapsed_ms:
            self._sleep((due_ms - elapsed_ms) / 1000)
        self._period_start_ms = self._clock.monotonic_ms()
        self._bytes = 0


step_hook_for_tests: Callable[[], None] | None = None
"""A test seam, not a setting: called at every batch a clean reads or writes, on the cleaner's
thread and (pickled with each job) in its process, so that a test can hold a clean at a chosen
step. Set only through :func:`shoal.testing.cleaner_steps.cleaner_step_hook`; read when a
clean starts."""


def with_step(
    throttle: Callable[[int], None], step_hook: Callable[[], None] | None
) -> Callable[[int], None]:
    """The throttle, calling ``step_hook`` first at each batch read or written."""
    if step_hook is None:
        return throttle

    def stepped(size: int) -> None:
        step_hook()
        throttle(size)

    return stepped


@dataclass(frozen=True, slots=True)
class CleanJob:
    """One clean, as the thread sends it: the plan (by segment base offsets) and settings."""

    directory: str
    name: str
    segments: tuple[int, ...]
    dirty: tuple[int, ...]
    first_dirty: int
    first_uncleanable: int
    transactions: LogTransactions
    producers: dict[int, ProducerLast]
    segment_bytes: int
    index_interval_bytes: int
    now_ms: int
    delete_retention_ms: int
    producer_id_expiration_ms: int
    dedupe_buffer_bytes: int
    load_factor: float
    io_max_bytes_per_second: float
    step_hook: Callable[[], None] | None
    """:data:`step_hook_for_tests` when the job was made (None outside tests)."""


# -- the broker's side -------------------------------------------------------------------------


class CleanerProcess:
    """The broker's handle on the cleaner's process: started at the first clean, reused."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self.cleans_done = 0
        """Jobs the process finished (any outcome it reported): 0 means it never worked."""

    def _start(self) -> Connection:
        if self._proc is not None and self._proc.poll() is None and self._conn is not None:
            return self._conn
        self.close()
        # A local pipe to our own child (a socket pair underneath), never a network socket.
        ours, theirs = Pipe(duplex=True)
        try:
            fd = theirs.fileno()
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _ENTRY, str(fd), str(os.getpid())],
                pass_fds=(fd,),
                stdin=subprocess.DEVNULL,
                # The same modules as this process: an embedding app may have put shoal on
                # sys.path at run time, and the child must not import another copy or version.
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            )
        except OSError as exc:
            ours.close()
            raise CleanerProcessError(f"could not start {sys.executable}: {exc}") from exc
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._conn = ours
        return ours

    def close(self) -> None:
        """End the process (it only ever leaves ``.cleaned`` files behind)."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        # Killed before its pipe closes: it must not take the closed pipe for an answer and
        # go on (its own clean-up of a group is the broker's to decide once a swap began).
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if conn is not None:
            conn.close()

    def clean(
        self,
        plog: PartitionLog,
        plan: CleanPlan,
        ctx: CleanContext,
        job: CleanJob,
    ) -> int:
        """Run ``job`` in the process, swapping in each group it writes; returns the new first
        dirty offset. Raises as :func:`~shoal.storage.cleaner.clean` does, and
        :class:`CleanerProcessError` if the process fails."""
        conn = self._start()
        by_base = {s.base_offset: s for s in plan.segments}
        try:
            conn.send(job)
            while True:
                message = self._receive(conn, ctx.should_stop)
                if message[0] == "progress":
                    _add_stats(ctx.stats, message[1])
                    continue
                if message[0] != "swap":
                    break
                _, base, old_bases = message
                if not isinstance(base, int) or not isinstance(old_bases, list):
                    raise CleanerProcessError(f"the cleaner's process sent {message!r}")
                conn.send(self._swap(plog, base, [by_base[b] for b in old_bases]))
        except BaseException as exc:
            # The exchange broke off (stop, a failed swap, the process gone): the process
            # may still be writing, so it goes, and what it wrote with it.
            self.close()
            plog.discard_cleaned_files()
            if isinstance(exc, (BrokenPipeError, ConnectionError, EOFError)):
                raise CleanerProcessError(f"the cleaner's process went away: {exc}") from exc
            raise
        # The process finished the job (and discarded what it did not swap in): it stays.
        self.cleans_done += 1
        _, outcome, detail, stats = message
        _add_stats(ctx.stats, stats)
        return _result(outcome, detail)

    def _receive(self, conn: Connection, should_stop: Callable[[], bool]) -> tuple[object, ...]:
        while True:
            if conn.poll(POLL_S):
                message: tuple[object, ...] = conn.recv()
                return message
            if should_stop():
                raise CleanAborted("clean stopped")
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise CleanerProcessError(f"the cleaner's process exited ({code})")

    @staticmethod
    def _swap(plog: PartitionLog, base: int, old: list[Segment]) -> bool:
        new = plog.adopt_cleaned_segment(base)
        if plog.replace_with_cleaned(old, new, durable=True):
            return True
        plog.discard_cleaned_segment(new)
        return False


def _result(outcome: object, detail: object) -> int:
    if outcome == "done" and isinstance(detail, int):
        return detail
    text = str(detail)
    if outcome == "aborted":
        raise CleanAborted(text)
    if outcome == "damaged":
        raise StorageError(text)
    if outcome == "os" and isinstance(detail, tuple):
        # The errno decides what the cleaner thread does (no space: retry; else the directory
        # fails), so it crosses the pipe with the message.
        number, message, path = detail
        if number is None:
            raise OSError(message)
        raise OSError(number, message) if path is None else OSError(number, message, path)
    raise CleanerProcessError(f"the cleaner's process failed:\n{text}")


def _add_stats(into: CleanStats, delta: object) -> None:
    if isinstance(delta, CleanStats):
        for f in fields(CleanStats):
            setattr(into, f.name, getattr(into, f.name) + getattr(delta, f.name))


# -- the process's side -------------------------------------------------------------------------


class _Progress:
    """Sends the thread what the clean read and wrote since the last report: at each swap and
    every :data:`PROGRESS_BYTES`, so the broker's metrics move while a long clean runs."""

    def __init__(self, conn: Connection, stats: CleanStats) -> None:
        self._conn = conn
        self._stats = stats
        self._sent = CleanStats()
        self._unsent_bytes = 0

    def step(self, size: int) -> None:
        self._unsent_bytes += size
        if self._unsent_bytes >= PROGRESS_BYTES:
            self.send()

    def send(self) -> None:
        self._conn.send(("progress", self.unsent()))
        self._unsent_bytes = 0

    def unsent(self) -> CleanStats:
        """What grew since the last report (then counted as reported)."""
        delta = CleanStats()
        for f in fields(CleanStats):
            now = getattr(self._stats, f.name)
            setattr(delta, f.name, now - getattr(self._sent, f.name))
            setattr(self._sent, f.name, now)
        return delta


class _ProcessTarget:
    """Writes cleaned segments here and has the broker's cleaner thread swap them in."""

    def __init__(
        self,
        conn: Connection,
        fs: FileSystem,
        handles: FileHandles,
        job: CleanJob,
        progress: _Progress,
    ) -> None:
        self._conn = conn
        self._fs = fs
        self._handles = handles
        self._job = job
        self._progress = progress

    @property
    def name(self) -> str:
        return self._job.name

    def new_cleaned_segment(self, base_offset: int) -> Segment:
        return Segment.create(
            self._fs,
            self._job.directory,
            base_offset,
            self._handles,
            index_interval_bytes=self._job.index_interval_bytes,
            now_ms=self._job.now_ms,
            suffix=CLEANED_SUFFIX,
            allow_gaps=True,
        )

    def replace_with_cleaned(self, old: list[Segment], new: Segment) -> bool:
        with self._handles.using(new.path) as f:
            f.fsync()
        new.save_indexes(self._fs)
        self._handles.close(new.path)
        new.release_active_file()
        self._progress.send()
        self._conn.send(("swap", new.base_offset, [s.base_offset for s in old]))
        return bool(self._conn.recv())

    def discard_cleaned_segment(self, segment: Segment) -> None:
        with contextlib.suppress(OSError):
            discard_cleaned(self._fs, self._handles, segment)


def _open_segment(fs: FileSystem, handles: FileHandles, job: CleanJob, base: int) -> Segment:
    segment = Segment(
        job.directory,
        base,
        handles,
        index_interval_bytes=job.index_interval_bytes,
        created_ms=job.now_ms,
        allow_gaps=True,
    )
    try:
        segment.load_or_rebuild(fs, "while cleaning")
    except FileNotFoundError as exc:
        # Retention or DeleteRecords removed it since the thread planned the clean.
        raise CleanAborted(f"{job.name}: {segment.path} was removed during the clean") from exc
    return segment


def _orphan_check(
    parent_pid: int, progress: _Progress, throttle: Callable[[int], None]
) -> Callable[[int], None]:
    """The throttle, ending this process first if the broker that started it is gone (where
    ``PR_SET_PDEATHSIG`` does not exist, macOS: an orphan must not go on writing ``.cleaned``
    files beside a restarted broker's own clean), and reporting progress after it."""

    def checked(size: int) -> None:
        if os.getppid() != parent_pid:
            os._exit(0)
        throttle(size)
        progress.step(size)

    return checked


def run_job(conn: Connection, fs: FileSystem, job: CleanJob, parent_pid: int) -> None:
    """Do ``job`` and send its outcome: ``("end", outcome, detail, stats)``."""
    handles = FileHandles(fs, max_open_files=MAX_OPEN_FILES)
    stats = CleanStats()
    progress = _Progress(conn, stats)
    outcome: tuple[str, object]
    try:
        segments = [_open_segment(fs, handles, job, base) for base in job.segments]
        by_base = {s.base_offset: s for s in segments}
        plan = CleanPlan(
            segments,
            [by_base[b] for b in job.dirty],
            job.first_dirty,
            job.first_uncleanable,
            job.transactions,
            job.producers,
            job.segment_bytes,
        )
        throttle = Throttler(job.io_max_bytes_per_second, SystemClock(), time.sleep)
        ctx = CleanContext(
            now_ms=job.now_ms,
            offset_map=OffsetMap(job.dedupe_buffer_bytes, load_factor=job.load_factor),
            delete_retention_ms=job.delete_retention_ms,
            producer_id_expiration_ms=job.producer_id_expiration_ms,
            throttle=_orphan_check(parent_pid, progress, with_step(throttle, job.step_hook)),
            stats=stats,
        )
        target = _ProcessTarget(conn, fs, handles, job, progress)
        outcome = ("done", execute_clean(target, plan, ctx))
    except CleanAborted as exc:
        outcome = ("aborted", str(exc))
    except StorageError as exc:
        outcome = ("damaged", str(exc))
    except OSError as exc:
        outcome = ("os", (exc.errno, exc.strerror or str(exc), exc.filename))
    except Exception:  # reported to the thread, which logs it and retries after the back-off
        outcome = ("bug", traceback.format_exc())
    finally:
        handles.close_all()
    conn.send(("end", *outcome, progress.unsent()))


def _die_with_parent(parent_pid: int) -> None:
    """Be killed when the thread that started us ends (a SIGKILLed broker leaves no cleaner
    writing beside its recovery)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(0)  # the parent died before the line above took effect


def main(argv: list[str]) -> int:
    fd, parent_pid = int(argv[0]), int(argv[1])
    _die_with_parent(parent_pid)
    # A terminal's Ctrl-C, or a service manager's SIGTERM to the whole process group, is the
    # broker's to handle: it stops this process itself (SIGKILL) when it shuts down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(fd)
    fs = OsFileSystem()
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return 0
        if not isinstance(job, CleanJob):
            return 2
        run_job(conn, fs, job, parent_pid)
