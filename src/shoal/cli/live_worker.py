"""The Kafka reads of a live view (``shoal top``, ``group describe --watch``) in a process of
their own, which the view replaces after a failed refresh.

Why a process: librdkafka aborts the whole process (``rd_kafka_enq_once_del_source_return:
Assertion `eonce->refcnt > 0' failed``, librdkafka issues 4605 and 3663, unfixed in 2.16) when
a coordinator's connection drops under a DescribeConsumerGroups or ListConsumerGroupOffsets, as
it does when a group's coordinator dies; and a client keeps a dead coordinator cached until it
comes back. In a worker process the abort ends only the worker, and a new worker has new
clients that look the coordinator up again. The view itself draws what the worker answers.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Final

from shoal.cli.errors import CliError

STOP_WAIT_S: Final = 5.0
"""How long a replaced worker may take to exit before it is killed."""
START_WAIT_S: Final = 60.0
"""How long a new worker may take to start (a Python interpreter on a loaded machine), apart
from the wait for an answer."""
_READY: Final = "ready"


def _serve(conn: Connection) -> None:
    """The worker: say it is ready, then run each ``(function, args)`` it is sent and answer
    ``(ok, value)``."""
    conn.send(_READY)
    while True:
        try:
            function, args = conn.recv()
        except EOFError:  # the view has gone
            return
        try:
            conn.send((True, function(*args)))
        except Exception as exc:  # the view shows it; the worker serves on
            conn.send((False, exc))


class ClientWorker:
    """One worker process at a time; ``call`` waits at most ``wait_s`` for an answer."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        # spawn, not fork: a forked copy of a process whose librdkafka threads hold locks can
        # deadlock; the view's own clients never exist in the parent anyway.
        self._context = multiprocessing.get_context("spawn")
        self._process, self._conn = self._start()
        self._ready = False

    def _start(self) -> tuple[Any, Connection]:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(theirs,), daemon=True)
        process.start()
        theirs.close()
        return process, ours

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        try:
            if not self._ready:
                if not self._conn.poll(START_WAIT_S):
                    raise CliError(f"the Kafka client did not start within {START_WAIT_S:g} s")
                self._conn.recv()
                self._ready = True
            self._conn.send((function, args))
            if not self._conn.poll(self.wait_s):
                raise CliError(f"the Kafka client gave no answer within {self.wait_s:g} s")
            ok, value = self._conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError):
            code = self._process.exitcode
            raise CliError(
                f"the Kafka client's process ended (exit code {code}; librdkafka aborts when a "
                "group coordinator's connection drops, librdkafka issue 4605)"
            ) from None
        if not ok:
            raise value
        return value

    def renew(self) -> None:
        """A new worker, with new clients; the old one is ended (it may be stuck waiting)."""
        self.close()
        self._process, self._conn = self._start()
        self._ready = False

    def close(self) -> None:
        self._conn.close()
        self._process.join(0)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(STOP_WAIT_S)
