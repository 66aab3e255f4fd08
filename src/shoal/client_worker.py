"""Kafka client requests that can abort a process, run in a process of their own that is
replaced when it dies or hangs: the live views (``shoal top``, ``group describe --watch``) and
``shoal console``'s consumer-group requests.

Why a process: librdkafka aborts the whole process (``rd_kafka_enq_once_del_source_return:
Assertion `eonce->refcnt > 0' failed``, librdkafka issues 4605 and 3663, unfixed in 2.16) when
a coordinator's connection drops under a DescribeConsumerGroups or ListConsumerGroupOffsets, as
it does when a group's coordinator dies; and a client keeps a dead coordinator cached until it
comes back. In a worker process the abort ends only the worker, and a new worker has new
clients that look the coordinator up again.

The worker names each request before it waits for it (:func:`step`), so a worker that dies or
gives no answer is reported with the request it was in: "no answer ... during describe group
'g'", not only "no answer".
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Final

STOP_WAIT_S: Final = 5.0
"""How long a replaced worker may take to exit before it is killed."""
START_WAIT_S: Final = 60.0
"""How long a new worker may take to start (a Python interpreter on a loaded machine), apart
from the wait for an answer."""
EXIT_WAIT_S: Final = 1.0
"""How long a worker whose pipe closed may take to be reaped, for its exit code."""
_READY: Final = "ready"
_STEP: Final = "step"
_DONE: Final = "done"
_ABORT_HINT: Final = (
    "librdkafka aborts the process when a group coordinator's connection drops under a group "
    "request, librdkafka issue 4605"
)

_parent: Connection | None = None
"""In a worker: its pipe to the parent (:func:`step` writes to it). None elsewhere."""


class WorkerFailed(Exception):
    """The worker died or gave no answer in time; it has been replaced by a new one."""


def step(request: str) -> None:
    """Name the Kafka request the worker is about to wait for (``"describe group 'g'"``), so
    a death or a timeout is reported with it. Outside a worker (a one-shot command calling the
    same code) it does nothing."""
    if _parent is not None:
        _parent.send((_STEP, request))


def _serve(conn: Connection) -> None:
    """The worker: say it is ready, then run each ``(function, args)`` it is sent and answer
    ``(done, ok, value)``, after any number of ``(step, request)``."""
    global _parent
    _parent = conn
    conn.send(_READY)
    while True:
        try:
            function, args = conn.recv()
        except EOFError:  # the parent has gone
            return
        try:
            answer: tuple[str, bool, Any] = (_DONE, True, function(*args))
        except Exception as exc:  # the caller gets it raised; the worker serves on
            answer = (_DONE, False, exc)
        try:
            conn.send(answer)
        except Exception as exc:  # an answer that does not pickle: say what it was
            conn.send((_DONE, False, WorkerFailed(f"{type(exc).__name__}: {exc}")))


class ClientWorker:
    """One worker process at a time; ``call`` waits at most ``wait_s`` for an answer. Calls
    from several threads take turns. ``name`` says what the worker is in messages."""

    def __init__(self, wait_s: float, name: str = "the Kafka client") -> None:
        self.wait_s = wait_s
        self.name = name
        # spawn, not fork: a forked copy of a process whose librdkafka threads hold locks can
        # deadlock; the worker's clients never exist in the parent anyway.
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._stale = False
        self._closed = False
        self._process, self._conn = self._start()

    def _start(self) -> tuple[Any, Connection]:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(theirs,), daemon=True)
        process.start()
        theirs.close()
        self._ready = False
        self._used = False
        return process, ours

    @property
    def pid(self) -> int | None:
        """The current worker's process id."""
        pid: int | None = self._process.pid
        return pid

    def alive(self) -> bool:
        """Whether the current worker process runs (a dead one is replaced at the next call)."""
        alive: bool = self._process.is_alive()
        return alive

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` in the worker (both picklable, the function at module level):
        its result, or what it raised. :class:`WorkerFailed` when the worker died or gave no
        answer in time, after which the next call has a new worker."""
        if not self._lock.acquire(timeout=self.wait_s):
            raise WorkerFailed(f"{self.name} is busy: no turn within {self.wait_s:g} s")
        try:
            if self._closed:
                raise WorkerFailed(f"{self.name} is closed")
            if self._stale:
                self._renew()
            try:
                ok, value = self._call(function, args)
            except WorkerFailed:
                self._renew()
                raise
        finally:
            self._lock.release()
        if not ok:
            raise value
        return value

    def _call(self, function: Callable[..., Any], args: tuple[Any, ...]) -> tuple[bool, Any]:
        request = "its start"
        try:
            if not self._ready:
                if not self._conn.poll(START_WAIT_S):
                    raise WorkerFailed(f"{self.name} did not start within {START_WAIT_S:g} s")
                self._conn.recv()
                self._ready = True
            self._used = True
            request = getattr(function, "__name__", "the request")
            self._conn.send((function, args))
            deadline = time.monotonic() + self.wait_s
            while True:
                if not self._conn.poll(max(0.0, deadline - time.monotonic())):
                    raise WorkerFailed(
                        f"{self.name} gave no answer within {self.wait_s:g} s, during {request}"
                    )
                message = self._conn.recv()
                if message[0] == _STEP:
                    request = message[1]
                    continue
                _, ok, value = message
                return ok, value
        except (EOFError, BrokenPipeError, ConnectionResetError):
            self._process.join(EXIT_WAIT_S)
            raise WorkerFailed(
                f"{self.name}'s process ended (exit code {self._process.exitcode}) during "
                f"{request} ({_ABORT_HINT})"
            ) from None

    def renew(self) -> None:
        """A new worker, with new clients (an unused one is kept: it has no state to lose)."""
        with self._lock:
            self._renew()

    def mark_stale(self) -> None:
        """Renew before the next call; returns at once (an event loop may call it while
        another thread waits for the worker)."""
        self._stale = True

    def _renew(self) -> None:
        self._stale = False
        if self._closed or (not self._used and self._process.is_alive()):
            return
        self._stop()
        self._process, self._conn = self._start()

    def close(self) -> None:
        """Ends the worker, without waiting more than :data:`STOP_WAIT_S` for a call in
        progress (that call then fails; nothing starts a new worker after this)."""
        self._closed = True
        if not self._lock.acquire(timeout=STOP_WAIT_S):
            # Killed under the call, which then sees the pipe close and gives the lock back.
            self._process.kill()
            self._lock.acquire()
        try:
            self._stop()
        finally:
            self._lock.release()

    def _stop(self) -> None:
        """The old one ended (it may be stuck waiting, or stopped)."""
        self._conn.close()
        self._process.join(0)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(STOP_WAIT_S)
