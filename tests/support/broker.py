"""A real shoal broker for tests, reached from outside its event loop or run in a child process.

``run_on_loop`` / ``loop_task_count`` / ``create_topic`` act on a started
:class:`~shoal.embedded.EmbeddedBroker` from the test's thread. :class:`BrokerProcess` is the
broker in a child process (``broker_child.py`` beside this module), for tests that SIGKILL it,
and for fuzzing (a crash takes down the child, not pytest). The fixtures that start and stop
them are in ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Final, TypeVar

from shoal.embedded import EmbeddedBroker
from tests.support.zygote import ForkedChild, fork_server

T = TypeVar("T")

REPO: Final = Path(__file__).resolve().parents[2]
PROCESS_START_TIMEOUT_S: Final = 60.0
"""Start-up includes log recovery of whatever the test left in the directory; a hung start
still fails the test instead of hanging it."""
PROCESS_STOP_TIMEOUT_S: Final = 30.0
FORK_DEFAULT: Final = os.environ.get("SHOAL_TEST_BROKER_FORK", "1") != "0"
"""Children are forked from the session's zygote (zygote.py) unless this is set to 0."""


def run_on_loop(broker: EmbeddedBroker, fn: Callable[[], T]) -> T:
    """Call ``fn`` on the embedded broker's event loop thread and return its result.

    The broker's objects (connections, logs, topic store) belong to that thread; tests that
    inspect them, or count the loop's tasks, must do it there. EmbeddedBroker has no public
    accessor for its loop yet, hence the private attribute, in this one place.
    """
    loop: asyncio.AbstractEventLoop | None = broker._loop
    assert loop is not None, "the embedded broker is not running"
    result: Future[T] = Future()

    def call() -> None:
        try:
            result.set_result(fn())
        except BaseException as exc:
            result.set_exception(exc)

    loop.call_soon_threadsafe(call)
    return result.result(timeout=30)


def loop_task_count(broker: EmbeddedBroker) -> int:
    """Tasks alive on the broker's loop (connections, handlers, HTTP server, retention)."""
    return run_on_loop(broker, lambda: len(asyncio.all_tasks()))


def create_topic(broker: EmbeddedBroker, name: str, partitions: int) -> None:
    """Create a topic directly in the broker (no CreateTopics API is needed)."""

    def create() -> None:
        inner = broker.app.broker
        assert inner is not None, "the embedded broker is not started"
        inner.create_topic(name, partitions)

    run_on_loop(broker, create)


class BrokerProcess:
    """The broker in a child process on ``data_dir``; restartable, and killable with SIGKILL.

    Each start binds new ports (port 0) unless ``kafka_port`` is given, which a restart after a
    kill needs when clients must find the broker where they left it. ``broker_config`` replaces
    fields of the running broker's BrokerSettings (limits that are not settings); the other
    keyword arguments are :class:`~shoal.server.settings.Settings` fields.

    Each start forks the child from the session's fork server (tests/support/zygote.py: about
    0.1 s, where executing a fresh interpreter that imports shoal takes 1.5-1.9 s). ``fork=False``
    executes ``python -m tests.support.broker_child`` instead, for a test of the process's own
    start-up (imports, a fresh interpreter's state); ``SHOAL_TEST_BROKER_FORK=0`` makes that the
    default for a whole run.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        broker_config: dict[str, Any] | None = None,
        plant: str | None = None,
        max_open_files: int | None = None,
        fork: bool = FORK_DEFAULT,
        **settings: Any,
    ) -> None:
        self.data_dir = data_dir
        self.settings = settings
        self.broker_config = broker_config or {}
        self.plant = plant
        """A bug planted in the child before it starts (tests/reliability/planted.py): how
        the reliability checker is shown to catch what it claims to."""
        self.max_open_files = max_open_files
        """RLIMIT_NOFILE of the child (``ulimit -n``), for the descriptor-exhaustion tests."""
        self.fork = fork
        self.log_path = data_dir.with_name(data_dir.name + ".log")
        self.process: subprocess.Popen[str] | ForkedChild | None = None
        self.kafka_port = 0
        self.http_port = 0

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, *, kafka_port: int = 0) -> BrokerProcess:
        assert self.process is None, "already running"
        # ``listeners`` names the listeners itself (then kafka_listen must stay unset).
        listen = {} if "listeners" in self.settings else {"kafka_listen": f"127.0.0.1:{kafka_port}"}
        config = {
            "settings": {
                **self.settings,
                "data_dir": str(self.data_dir),
                **listen,
                "http_listen": "127.0.0.1:0",
            },
            "broker_config": self.broker_config,
            "plant": self.plant,
            "max_open_files": self.max_open_files,
        }
        if self.fork:
            self.process = fork_server().spawn(config, self.log_path)
        else:
            with open(self.log_path, "a") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "tests.support.broker_child", json.dumps(config)],
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    cwd=REPO,
                )
        ready = self._read_ready_line()
        self.kafka_port = int(ready["kafka_port"])
        self.http_port = int(ready["http_port"])
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "not running"
        return self.process.pid

    def rss_bytes(self) -> int:
        """The child's resident memory now (VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc status")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def _read_ready_line(self) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        result: Future[str] = Future()
        stdout = self.process.stdout

        def read() -> None:
            result.set_result(stdout.readline())

        threading.Thread(target=read, daemon=True).start()
        try:
            line = result.result(timeout=PROCESS_START_TIMEOUT_S)
        except TimeoutError:
            self.kill()
            raise AssertionError("the broker process did not become ready") from None
        if not line:
            code = self.process.wait(PROCESS_STOP_TIMEOUT_S)
            self._release()
            raise AssertionError(f"the broker process exited with {code} before it was ready")
        return dict(json.loads(line))

    @property
    def exit_code(self) -> int | None:
        """None while the child runs; its exit code (negative: the signal) once it has died."""
        return None if self.process is None else self.process.poll()

    def log_text(self) -> str:
        """Everything the child wrote to stderr (its log, and any crash report), all starts."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush; what the OS page cache holds survives."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait(PROCESS_STOP_TIMEOUT_S)
        self._release()

    def stop(self) -> int:
        """SIGTERM and wait for a clean shutdown; return the exit code."""
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(PROCESS_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("the broker process did not stop on SIGTERM") from None
        self._release()
        return code

    def _release(self) -> None:
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None
